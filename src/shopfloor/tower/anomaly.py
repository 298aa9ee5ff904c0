"""Streaming anomaly detection against a seasonal baseline.

The detector judges each point using only what it saw before that point, so the same object runs online (one
``update`` per new observation) and in backtests (``detect`` loops ``update`` over a series).

Model (robust and explainable, every number in an alert can be recomputed by hand):

* ``level``: the median of the last ``level_window`` observations (spikes shorter than half the window do not
  move it; a level shift is absorbed after about half a window, so a shift alerts once at its onset, not forever).
* ``seasonal offset``: the median, over the last ``season_periods`` periods (default: days), of how far values in
  the same time-of-day slot sat from the level at the time. Slots come from the timestamp, not the row index, so
  missing timestamps do not shift the season. The offset is used only once at least two periods have been seen
  and it shrinks the mean absolute residual (it must earn its place).
* ``scale``: 1.4826 x MAD of recent residuals (a robust standard deviation), with a floor for flat series.
* ``score`` = |observed - expected| / scale. Alert when the score reaches the bar: the larger of ``threshold``
  and ``novelty`` x the ``novelty_quantile`` of the last ``score_window`` scores (so a metric whose residuals are
  heavy-tailed must beat its own recent extremes, not a textbook Gaussian bound). The alert carries the expected
  range ``expected +- bar x scale``. ``holdoff`` (points) optionally re-arms only for a worse score after an alert. A run of ``shift_run`` residuals on one side, each beyond
  ``shift_threshold`` scales, alerts as a level shift (kind ``level_shift``) before the spike test would.
* After a gap longer than ``max_gap_factor`` typical steps the level window is cleared (the old level is stale);
  the seasonal profile and the scale are kept.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Iterable, Protocol, Sequence

import numpy as np

MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class Alert:
    """One anomalous observation, with everything needed to explain it."""

    metric: str
    timestamp: datetime
    observed: float
    expected: float
    lower: float
    upper: float
    score: float
    kind: str = "spike"  # spike | dip | level_shift

    def as_dict(self) -> dict:
        data = asdict(self)
        data["timestamp"] = self.timestamp.isoformat()
        return data


class StreamingDetector(Protocol):
    """Anything that judges a point from the past alone and returns an alert or ``None``."""

    metric: str

    def update(self, timestamp: datetime, value: float) -> Alert | None: ...


def _as_utc(ts: datetime) -> datetime:
    if ts.tzinfo is None:
        return ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc)


class _Ring:
    """A fixed-size numeric ring buffer (cheap append, numpy view of the filled part)."""

    __slots__ = ("_buf", "_n", "_i")

    def __init__(self, size: int) -> None:
        self._buf = np.empty(size, dtype=float)
        self._n = 0
        self._i = 0

    def append(self, value: float) -> None:
        self._buf[self._i] = value
        self._i = (self._i + 1) % len(self._buf)
        if self._n < len(self._buf):
            self._n += 1

    def values(self) -> np.ndarray:
        return self._buf[: self._n] if self._n < len(self._buf) else self._buf

    def clear(self) -> None:
        self._n = 0
        self._i = 0

    def __len__(self) -> int:
        return self._n


def _small_median(values) -> float:
    """Median of a short sequence without numpy's per-call overhead (level windows hold a dozen points)."""
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


def _median(arr: np.ndarray) -> float:
    n = arr.size
    k = n // 2
    part = np.partition(arr, (k - 1, k) if n % 2 == 0 and n > 1 else k)
    return float(part[k]) if n % 2 else float((part[k - 1] + part[k]) / 2.0)


def robust_scale(residuals: np.ndarray, floor: float) -> float:
    """1.4826 x MAD, falling back to the mean absolute deviation (x 1.2533) when over half the values tie."""
    if residuals.size == 0:
        return floor
    centre = _median(residuals)
    dev = np.abs(residuals - centre)
    mad = _median(dev) * MAD_TO_SIGMA
    if mad <= 0.0:
        mad = float(np.mean(dev)) * 1.2533
    return max(mad, floor)


class SeasonalRobustDetector:
    """Seasonal median profile + rolling median level + MAD scale; see the module docstring for the model."""

    def __init__(
        self,
        metric: str = "value",
        *,
        threshold: float = 6.0,
        level_window: int = 12,
        scale_window: int = 1000,
        min_history: int = 60,
        period_s: int = 86_400,
        slots_per_period: int = 48,
        season_periods: int = 7,
        season_gain_required: float = 0.9,
        shift_run: int = 6,
        shift_threshold: float = 4.0,
        max_gap_factor: float = 12.0,
        direction: str = "both",
        rescale_every: int = 8,
        novelty: float = 1.0,
        novelty_quantile: float = 0.999,
        score_window: int = 2000,
        holdoff: int = 0,
    ) -> None:
        if direction not in ("both", "up", "down"):
            raise ValueError("direction must be 'both', 'up' or 'down'")
        if threshold <= 0 or shift_threshold <= 0:
            raise ValueError("threshold and shift_threshold must be > 0")
        if level_window < 1 or scale_window < 10 or min_history < 2:
            raise ValueError("level_window >= 1, scale_window >= 10 and min_history >= 2 are required")
        self.metric = metric
        self.threshold = threshold
        self.level_window = level_window
        self.min_history = min_history
        self.period_s = period_s
        self.slots_per_period = slots_per_period
        self.season_periods = season_periods
        self.season_gain_required = season_gain_required
        self.shift_run = shift_run
        self.shift_threshold = shift_threshold
        self.max_gap_factor = max_gap_factor
        self.direction = direction

        self._level: deque[float] = deque(maxlen=level_window)
        self._resid_plain = _Ring(scale_window)  # value - level
        self._resid_seasonal = _Ring(scale_window)  # value - level - seasonal offset
        self._slots: list[deque[tuple[float, float]]] = [deque() for _ in range(slots_per_period)]
        self._first_ts: float | None = None
        self._last_ts: float | None = None
        self._steps = _Ring(64)
        self._typical: float | None = None
        self._seen = 0
        self._recent_signed: deque[float] = deque(maxlen=max(shift_run, 1))
        self._abs_sum = 0.0
        self._slot_cache: dict[int, tuple[int, float | None]] = {}
        self.last_score: float | None = None  # the latest point's score (exposed as a rules signal)
        self._scales: tuple[float, float | None, bool] | None = None
        self._since_rescale = 0
        self.rescale_every = rescale_every
        self.novelty = novelty
        self.novelty_quantile = novelty_quantile
        self.holdoff = holdoff
        self._scores = _Ring(score_window)
        self._score_bar = 0.0
        self._since_alert = 1 << 30
        self._last_alert_score = 0.0

    # -- internals -------------------------------------------------------------------------------
    def _slot(self, t: float) -> int:
        return int((t % self.period_s) // (self.period_s / self.slots_per_period))

    def _seasonal_offset(self, slot: int, t: float) -> float | None:
        """Median offset of this time-of-day slot over earlier periods (not today's points: those are in the level).

        Computed once per visit to a slot and held while time stays in it, which keeps updates cheap.
        """
        visit = int(t // (self.period_s / self.slots_per_period))
        cached = self._slot_cache.get(slot)
        if cached is not None and cached[0] == visit:
            return cached[1]
        entries = self._slots[slot]
        horizon = t - self.season_periods * self.period_s
        while entries and entries[0][0] < horizon:
            entries.popleft()
        cutoff = t - self.period_s / 2
        past = [d for ts, d in entries if ts < cutoff]
        offset = _small_median(past) if len(past) >= 2 else None
        self._slot_cache[slot] = (visit, offset)
        return offset

    def _typical_step(self) -> float | None:
        """Median spacing of recent timestamps, refreshed every 32 points."""
        if len(self._steps) < 3:
            return None
        if self._typical is None or self._seen % 32 == 0:
            self._typical = _median(self._steps.values())
        return self._typical

    # -- public ----------------------------------------------------------------------------------
    def update(self, timestamp: datetime, value: float) -> Alert | None:
        """Judge ``value`` at ``timestamp`` from the past alone, then learn from it."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        ts = _as_utc(timestamp)
        t = ts.timestamp()
        value = float(value)
        if self._last_ts is not None:
            step = t - self._last_ts
            if step <= 0:
                return None  # out-of-order or duplicate timestamp: ignored, never judged twice
            typical = self._typical_step()
            if typical is not None and step > self.max_gap_factor * typical:
                self._level.clear()
                self._recent_signed.clear()
            self._steps.append(step)
        if self._first_ts is None:
            self._first_ts = t
        self._last_ts = t

        alert = None
        slot = self._slot(t)
        offset = self._seasonal_offset(slot, t)
        if len(self._level) >= min(self.level_window, 3):
            level = _small_median(self._level)
            seasonal_ready = (
                offset is not None
                and t - self._first_ts >= 2 * self.period_s
                and len(self._resid_seasonal) >= 30
            )
            use_season = False
            plain_scale, seasonal_scale, season_helps = self._current_scales(seasonal_ready)
            scale = plain_scale
            if seasonal_ready and seasonal_scale is not None and season_helps:
                use_season = True
                scale = seasonal_scale
            expected = level + (offset if use_season else 0.0)
            residual = value - expected
            if self._seen >= self.min_history:
                alert = self._judge(ts, value, expected, residual, scale)
            self._resid_plain.append(value - level)
            self._resid_seasonal.append(value - level - (offset or 0.0))
            self._slots[slot].append((t, value - level))
        self._level.append(value)
        self._abs_sum += abs(value)
        self._seen += 1
        return alert

    def _current_scales(self, seasonal_ready: bool) -> tuple[float, float | None, bool]:
        """Robust residual scales, refreshed every ``rescale_every`` points (they move slowly).

        The seasonal offset must earn its place: it is used when it cuts the mean absolute residual by the
        ``season_gain_required`` factor (mean, not median, so that a sharp daily edge that touches few points
        still counts).
        """
        self._since_rescale += 1
        if (
            self._scales is None
            or self._since_rescale >= self.rescale_every
            or (seasonal_ready and self._scales[1] is None)
        ):
            floor = 1e-6 * (self._abs_sum / max(self._seen, 1)) + 1e-9
            plain_resid = self._resid_plain.values()
            plain = robust_scale(plain_resid, floor)
            seasonal, helps = None, False
            if seasonal_ready:
                seasonal_resid = self._resid_seasonal.values()
                seasonal = robust_scale(seasonal_resid, floor)
                l1_plain = float(np.mean(np.abs(plain_resid - _median(plain_resid))))
                l1_seasonal = float(np.mean(np.abs(seasonal_resid - _median(seasonal_resid))))
                helps = l1_seasonal < self.season_gain_required * l1_plain
            self._scales = (plain, seasonal, helps)
            self._since_rescale = 0
            if self.novelty > 0 and len(self._scores) >= 100:
                self._score_bar = self.novelty * float(np.quantile(self._scores.values(), self.novelty_quantile))
        return self._scales

    def _judge(self, ts: datetime, value: float, expected: float, residual: float, scale: float) -> Alert | None:
        score = abs(residual) / scale
        self.last_score = score
        signed = residual / scale
        self._recent_signed.append(signed)
        self._scores.append(score)
        self._since_alert += 1
        if self.direction == "up" and residual < 0 or self.direction == "down" and residual > 0:
            return None
        bar = max(self.threshold, self._score_bar)
        if self._since_alert <= self.holdoff:
            bar = max(bar, self._last_alert_score)
        lower, upper = expected - bar * scale, expected + bar * scale
        if score >= bar:
            self._since_alert = 0
            self._last_alert_score = score
            return Alert(self.metric, ts, value, expected, lower, upper, score, "spike" if residual > 0 else "dip")
        run = self._recent_signed
        if (
            self.shift_run > 0
            and len(run) == self.shift_run
            and (all(s >= self.shift_threshold for s in run) or all(s <= -self.shift_threshold for s in run))
        ):
            run.clear()  # one alert per shift; the rolling level absorbs it within half a window
            return Alert(self.metric, ts, value, expected, lower, upper, score, "level_shift")
        return None


class RollingZScoreDetector:
    """The classic baseline: z = (x - mean) / std over the previous ``window`` points; alert when |z| >= threshold."""

    def __init__(self, metric: str = "value", *, window: int = 100, threshold: float = 3.0, min_history: int = 60):
        self.metric = metric
        self.window = window
        self.threshold = threshold
        self.min_history = min_history
        self._buf = _Ring(window)
        self._seen = 0
        self._last_ts: float | None = None

    def update(self, timestamp: datetime, value: float) -> Alert | None:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        ts = _as_utc(timestamp)
        t = ts.timestamp()
        if self._last_ts is not None and t <= self._last_ts:
            return None
        self._last_ts = t
        alert = None
        if len(self._buf) >= 2 and self._seen >= self.min_history:
            past = self._buf.values()
            mean = float(past.mean())
            std = float(past.std(ddof=1))
            if std > 0:
                z = (value - mean) / std
                if abs(z) >= self.threshold:
                    lower, upper = mean - self.threshold * std, mean + self.threshold * std
                    alert = Alert(self.metric, ts, value, mean, lower, upper, abs(z), "spike" if z > 0 else "dip")
        self._buf.append(float(value))
        self._seen += 1
        return alert


def detect(
    detector: StreamingDetector, timestamps: Sequence[datetime] | Iterable[datetime], values: Iterable[float]
) -> list[Alert]:
    """Feed a whole series to a streaming detector in time order and collect its alerts."""
    alerts: list[Alert] = []
    for ts, value in zip(timestamps, values):
        alert = detector.update(ts, value)
        if alert is not None:
            alerts.append(alert)
    return alerts
