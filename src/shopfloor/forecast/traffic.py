"""Traffic (request-rate) forecasting at minute and 5-minute grain.

Two forecasters, one frame convention (Nixtla long frames: ``unique_id``, ``ds``, ``y`` in; the model alias plus
quantile columns such as ``q_0.9`` out):

* :func:`forecast_traffic_mstl` fits statsforecast's ``MSTL`` with daily and weekly seasonality. It is the
  batch model: good for the next hours' plan, too heavy to refit every few minutes over two months of minutes.
* :class:`OnlineTrafficForecaster` is the online model used by the capacity planner and its backtest. It keeps
  the series as it arrives and re-forecasts in microseconds: the recent level times the growth that the same
  time of day showed on the previous days (daily seasonality, with the same weekday last week weighted in for
  the weekly cycle), and an upper quantile from its own recent standardised errors. It never sees a value
  before it has been passed to :meth:`OnlineTrafficForecaster.observe`, which is what makes backtests honest.

Reading traces: :func:`read_request_trace` loads a ``minute,count`` CSV onto a full minute grid where missing
minutes are zero demand (the server saw no requests), with errors that name the offending field.
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..validation import TIME_WITH_UTC_OFFSET, not_a_file

MINUTES_PER_DAY = 1440
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY


class TraceError(ValueError):
    """A traffic trace that cannot be used. ``field`` names the offending column or option."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# ---------------------------------------------------------------------------------------------------------------
# Input: traces and long frames
# ---------------------------------------------------------------------------------------------------------------


#: The longest span of minutes a trace may cover (two years): past it the minute grid (every minute from the first
#: to the last) and the replays grow without bound, usually because of one stray timestamp.
MAX_TRACE_MINUTES = 731 * MINUTES_PER_DAY

_ACCESS_LOG_TIME = "%d/%b/%Y:%H:%M:%S %z"


def _parse_minutes(column: pd.Series, tz: str) -> tuple[pd.Series, bool]:
    """The ``minute`` column as UTC timestamps, and whether the file wrote them naive (in ``tz``).

    Accepted: timestamps with a UTC offset or ``Z`` (every row, then ``tz`` is not used; ISO 8601 or a web server's
    access-log form ``01/Jul/1995:00:00:00 -0400``), naive timestamps read in
    ``tz`` (a zone with daylight saving: the repeated hour after the clocks go back is told apart by row order
    when the file holds it twice, and refused otherwise), and Unix epoch seconds or milliseconds."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        values = pd.to_numeric(column, errors="coerce")
        finite = values[np.isfinite(values)]
        low = float(finite.min()) if len(finite) else 0.0
        high = float(finite.max()) if len(finite) else 0.0
        if low >= 1e8 and high < 1e11:
            unit = "s"
        elif low >= 1e11 and high < 1e14:
            unit = "ms"
        else:
            raise TraceError("minute", f"numbers are read as Unix epoch seconds or milliseconds (1973 onwards); "
                                       f"these run from {low:g} to {high:g}: write timestamps such as "
                                       f"2024-01-01 00:00:00 instead")
        parsed = pd.to_datetime(values, unit=unit, utc=True, errors="coerce")
        _refuse_unparsed(parsed, column)
        return parsed, False
    text = column.astype(str).str.strip()
    with_offset = text.str.contains(TIME_WITH_UTC_OFFSET, regex=True)
    if with_offset.any() and not with_offset.all():
        row = int((~with_offset).to_numpy().argmax())
        raise TraceError("minute", f"row {row + 2} ({column.iloc[row]!r}) has no UTC offset while row "
                                   f"{int(with_offset.to_numpy().argmax()) + 2} has one: write every timestamp "
                                   "with its offset, or none")
    if with_offset.all():
        parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
        if parsed.isna().any():  # a web server's access-log time: 01/Jul/1995:00:00:00 -0400
            parsed = pd.to_datetime(text, errors="coerce", utc=True, format=_ACCESS_LOG_TIME)
        if parsed.isna().any():
            parsed = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
        _refuse_unparsed(parsed, column)
        return parsed, False
    bare = text.str.fullmatch(r"\d{4}-\d{2}-\d{2}")
    if bare.any() and not bare.all():
        # midnight written as a bare date (some exports drop a zero time): pandas would take one format for all
        parsed = pd.concat([pd.to_datetime(text[~bare], errors="coerce"),
                            pd.to_datetime(text[bare], format="%Y-%m-%d")]).reindex(text.index)
    else:
        parsed = pd.to_datetime(text, errors="coerce")
    _refuse_unparsed(parsed, column)
    if parsed.dt.tz is not None:  # a zone name pandas reads (2024-01-01 00:00:00 UTC)
        return parsed.dt.tz_convert("UTC"), False
    local = parsed.dt.floor("min")
    try:
        aware = local.dt.tz_localize(tz, ambiguous="raise", nonexistent="raise")
    except Exception:  # noqa: BLE001 - the zone's clock changes: look at them one kind at a time
        aware = _localize_across_clock_changes(local, tz, column)
    return aware.dt.tz_convert("UTC"), True


def _localize_across_clock_changes(local: pd.Series, tz: str, column: pd.Series) -> pd.Series:
    try:
        local.dt.tz_localize(tz, ambiguous="NaT", nonexistent="raise")
    except Exception:  # noqa: BLE001 - pytz and zoneinfo raise different types
        gap = local.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT").isna()
        gap &= local.dt.tz_localize(tz, ambiguous=np.ones(len(local), dtype=bool), nonexistent="NaT").isna()
        row = int(gap.to_numpy().argmax())
        raise TraceError("minute", f"row {row + 2} ({column.iloc[row]!r}) does not exist in {tz} (the clocks "
                                   "went forward over it): the file is not in that zone's local time; write "
                                   "timestamps with their UTC offset or pass the zone the file was written in, "
                                   "e.g. a fixed offset such as Etc/GMT+5") from None
    try:
        return local.dt.tz_localize(tz, ambiguous="infer")
    except Exception:  # noqa: BLE001 - the repeated hour is not written twice, in order
        row = int(local.dt.tz_localize(tz, ambiguous="NaT").isna().to_numpy().argmax())
        raise TraceError("minute", f"row {row + 2} ({column.iloc[row]!r}) occurs twice in {tz} (the clocks went "
                                   "back) and the file does not tell the two apart: write timestamps with their "
                                   "UTC offset (2024-11-03T01:30:00-04:00) or pass a fixed-offset zone such as "
                                   "Etc/GMT+5") from None


def _refuse_unparsed(parsed: pd.Series, column: pd.Series) -> None:
    if parsed.isna().any():
        row = int(parsed.isna().to_numpy().argmax())
        value = column.iloc[row]
        raise TraceError("minute", f"row {row + 2} has an unparseable timestamp "
                                   f"{value if isinstance(value, str) else str(value)!r}")


def read_request_trace(path: str | Path, *, tz: str = "UTC") -> pd.Series:
    """Read a ``minute,count`` CSV into a per-minute series on a complete grid (missing minutes are 0).

    ``minute`` is a timestamp with a UTC offset, a naive timestamp in ``tz`` (converted to UTC), or Unix epoch
    seconds or milliseconds. Raises :class:`TraceError` naming the field when the file is missing, a column is
    absent, a value does not parse, a naive minute falls in a clock change that cannot be resolved, counts are
    negative, minutes repeat, or the trace spans more than two years (``MAX_TRACE_MINUTES``).
    """
    path = Path(path)
    if not path.is_file():
        raise TraceError("trace", f"{path} {not_a_file(path)}")
    try:
        raw = pd.read_csv(path)
    except Exception as exc:  # pandas raises many types for unreadable files
        raise TraceError("trace", f"cannot read CSV {path}: {exc}") from exc
    for col in ("minute", "count"):
        if col not in raw.columns:
            raise TraceError(col, f"missing column {col!r} in {path} (columns: {', '.join(map(str, raw.columns))})")
    if raw.empty:
        raise TraceError("trace", f"{path} has no rows")
    with warnings.catch_warnings():  # pandas' parser warnings: a value that does not parse is refused by row
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)
        minutes, naive = _parse_minutes(raw["minute"], tz)
    counts = pd.to_numeric(raw["count"], errors="coerce")
    if counts.isna().any():
        row = int(counts.isna().to_numpy().argmax())
        value = raw["count"].iloc[row]
        raise TraceError("count", f"row {row + 2} is empty" if pd.isna(value) else
                         f"row {row + 2} is not a number: {str(value)!r}")
    if (counts < 0).any():
        row = int((counts < 0).to_numpy().argmax())
        raise TraceError("count", f"row {row + 2} is negative: {counts.iloc[row]}")
    minutes = minutes.dt.floor("min")
    if minutes.duplicated().any():
        dup = minutes[minutes.duplicated()].iloc[0]
        raise TraceError("minute", f"minute {dup.isoformat()} appears more than once")
    first, last = minutes.min(), minutes.max()
    span = int((last - first) / pd.Timedelta(minutes=1)) + 1
    if span > MAX_TRACE_MINUTES:
        raise TraceError("minute", f"the trace spans {span:,} minutes ({first.isoformat()} .. {last.isoformat()}), "
                                   f"more than {MAX_TRACE_MINUTES:,} (two years): cut it, or look for a stray "
                                   "timestamp")
    series = pd.Series(counts.to_numpy(dtype=float), index=pd.DatetimeIndex(minutes), name="y").sort_index()
    grid = to_minute_grid(series)
    # Remember how the file wrote its minutes, so outputs keyed by minute can be written the same way.
    grid.attrs["source_tz"] = tz if naive else None
    return grid


def format_minutes_like_source(index: pd.DatetimeIndex, source_tz: str | None) -> list[str]:
    """Minute labels as the trace wrote them: naive local ``YYYY-MM-DD HH:MM:SS`` in ``source_tz`` when the file
    had naive timestamps, ISO 8601 UTC (``...Z``) otherwise."""
    if source_tz:
        return list(index.tz_convert(source_tz).tz_localize(None).strftime("%Y-%m-%d %H:%M:%S"))
    return list(index.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ"))


def to_minute_grid(series: pd.Series) -> pd.Series:
    """Reindex a per-minute series onto every minute between its first and last (absent minutes are 0)."""
    if series.empty:
        return series.astype(float)
    idx = pd.date_range(series.index.min(), series.index.max(), freq="min")
    return series.reindex(idx, fill_value=0.0).astype(float).rename("y")


def to_long_frame(series: pd.Series, unique_id: str = "requests") -> pd.DataFrame:
    """A per-minute (or any grain) series as a Nixtla long frame (``unique_id``, ``ds``, ``y``)."""
    return pd.DataFrame({"unique_id": unique_id, "ds": series.index, "y": series.to_numpy(dtype=float)})


def aggregate_frame(frame: pd.DataFrame, freq: str = "5min") -> pd.DataFrame:
    """Sum a long frame to a coarser grain (``"5min"``, ``"h"``): request counts add up."""
    out = (
        frame.set_index("ds")
        .groupby("unique_id")["y"]
        .resample(freq, label="left", closed="left")
        .sum()
        .reset_index()
    )
    return out[["unique_id", "ds", "y"]]


def quantile_column(q: float) -> str:
    """The frame column name for quantile ``q`` (``0.9`` -> ``"q_0.9"``)."""
    return f"q_{round(q, 4):g}"


# ---------------------------------------------------------------------------------------------------------------
# Batch model: statsforecast MSTL
# ---------------------------------------------------------------------------------------------------------------


def forecast_traffic_mstl(
    frame: pd.DataFrame,
    *,
    horizon: int,
    freq: str = "5min",
    quantiles: Sequence[float] = (0.9,),
    weekly: bool = True,
) -> pd.DataFrame:
    """Fit MSTL (daily + weekly seasonality, AutoETS trend) per series and forecast ``horizon`` steps.

    ``frame`` is a long frame at grain ``freq`` (``"min"`` or ``"5min"``). Weekly seasonality is used only when
    the series holds at least two weeks. Returns ``unique_id``, ``ds``, ``MSTL`` and one ``q_<q>`` column per
    upper quantile in ``quantiles`` (values must lie in (0.5, 1)). Forecasts are clipped at zero.
    """
    from statsforecast import StatsForecast
    from statsforecast.models import MSTL, AutoETS

    if horizon < 1:
        raise TraceError("horizon", "must be at least 1")
    for q in quantiles:
        if not 0.5 < q < 1:
            raise TraceError("quantiles", f"{q} is not an upper quantile in (0.5, 1)")
    step = pd.Timedelta(pd.tseries.frequencies.to_offset(freq)).total_seconds() / 60
    day = int(round(MINUTES_PER_DAY / step))
    week = int(round(MINUTES_PER_WEEK / step))
    shortest = int(frame.groupby("unique_id").size().min())
    seasons = [day]
    if weekly and shortest >= 2 * week:
        seasons.append(week)
    if shortest < 2 * day:
        raise TraceError("frame", f"MSTL needs at least two days of history ({2 * day} rows); got {shortest}")
    model = MSTL(season_length=seasons, trend_forecaster=AutoETS(model="ZZN"))
    sf = StatsForecast(models=[model], freq=freq, n_jobs=1)
    levels = sorted({int(round((2 * q - 1) * 100)) for q in quantiles})
    data = frame[["unique_id", "ds", "y"]].copy()
    data["ds"] = pd.to_datetime(data["ds"]).dt.tz_localize(None) if _is_tz(data["ds"]) else data["ds"]
    fc = sf.forecast(df=data, h=horizon, level=levels)
    fc = fc.reset_index() if "unique_id" not in fc.columns else fc
    out = fc[["unique_id", "ds", "MSTL"]].copy()
    for q in quantiles:
        level = int(round((2 * q - 1) * 100))
        out[quantile_column(q)] = fc[f"MSTL-hi-{level}"].to_numpy()
    num = [c for c in out.columns if c not in ("unique_id", "ds")]
    out[num] = out[num].clip(lower=0)
    if _is_tz(frame["ds"]):
        out["ds"] = pd.to_datetime(out["ds"]).dt.tz_localize("UTC")
    return out


def _is_tz(col: pd.Series) -> bool:
    return getattr(pd.to_datetime(col).dt, "tz", None) is not None


# ---------------------------------------------------------------------------------------------------------------
# Online model
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrafficForecast:
    """Forecast for the ``len(mean)`` minutes starting at minute index ``origin`` (0 = first observed minute)."""

    origin: int
    mean: np.ndarray
    upper: np.ndarray
    quantile: float

    def to_frame(self, start: datetime, unique_id: str = "requests", alias: str = "OnlineSeasonal") -> pd.DataFrame:
        """As a long frame: ``unique_id``, ``ds`` (UTC minutes from ``start``), ``<alias>``, ``q_<quantile>``."""
        start = pd.Timestamp(start)
        start = start.tz_localize(timezone.utc) if start.tzinfo is None else start.tz_convert(timezone.utc)
        ds = pd.date_range(start, periods=len(self.mean), freq="min")
        return pd.DataFrame(
            {"unique_id": unique_id, "ds": ds, alias: self.mean, quantile_column(self.quantile): self.upper}
        )


@dataclass(frozen=True)
class OnlineForecastConfig:
    """Knobs of :class:`OnlineTrafficForecaster` (defaults tuned on generic web traffic, not one trace).

    level_minutes: the recent window whose mean is the current level.
    fast_level_minutes: a shorter window whose mean replaces the level when higher (0 disables).
    history_days: how many previous days vote on the time-of-day growth (their median is used).
    smooth_minutes: half-width of the moving average applied to past days before taking ratios.
    quantile: the upper quantile reported (of one minute's demand).
    residual_minutes: how many recent standardised errors the quantile is taken from.
    drop_factor: when the fast window's mean falls below ``1 / drop_factor`` of the slow one, by more than three
        Poisson sigmas of the fast mean (a surge has ended, not a noisy lull), the fast mean is the level (0
        disables).
    min_base: past-day windows with less mean traffic (plus ``base_pseudo_count``) than this do not vote (outages).
    base_pseudo_count: added to both sides of each past day's ratio, so that a quiet hour with a few requests a
        minute still votes without its ratio exploding (a surge out of a near-empty night is still planned for).
    recurring_rank / recurring_factor: a surge that came back at this time of day on at least ``recurring_rank``
        of the previous days (0 disables) replaces the median when it is more than ``recurring_factor`` x the
        median: daily deals and newsletters recur on most days but not on all, and the median would drop them.
    recurring_smooth / recurring_tolerance: for that test past days are smoothed over only +-``recurring_smooth``
        minutes and widened by a running max of +-``recurring_tolerance`` minutes (a surge that starts a few
        minutes earlier today is covered from its first minute). ``recurring_tolerance <= smooth_minutes``.
    recurring_dispersion: the recurring surge's noise test (three sigmas at today's level) widens Poisson's sigma
        by the series' over-dispersion (:meth:`OnlineTrafficForecaster.dispersion`); False keeps Poisson's.
    outlier_factor: a standardised error above ``outlier_factor x`` the current upper quantile (at least the normal
        one) is a surge the forecast could not know of, not noise: it is counted (``outliers``) but kept out of the
        pool the upper quantile is read from, so that one flash crowd does not widen the band, and cost replicas,
        for the ``residual_minutes`` after it. 0 (default) pools every error.
    """

    level_minutes: int = 20
    fast_level_minutes: int = 5
    history_days: int = 7
    smooth_minutes: int = 7
    quantile: float = 0.9
    residual_minutes: int = 3 * MINUTES_PER_DAY
    min_base: float = 1.0
    drop_factor: float = 2.0
    recurring_rank: int = 2
    recurring_factor: float = 2.5
    recurring_smooth: int = 2
    recurring_tolerance: int = 3
    base_pseudo_count: float = 1.0
    recurring_dispersion: bool = True
    outlier_factor: float = 0.0


class OnlineTrafficForecaster:
    """Per-minute request forecaster updated one minute at a time (see the module docstring).

    Usage: call :meth:`observe` with each completed minute's count, and :meth:`forecast` whenever a new plan is
    wanted. Errors are scored against every forecast's first minutes as actuals arrive, so the upper quantile
    adapts online (wider on bursty days, narrower on calm ones).
    """

    def __init__(self, config: OnlineForecastConfig | None = None) -> None:
        self.config = config or OnlineForecastConfig()
        if not 0.5 <= self.config.quantile < 1:
            raise TraceError("quantile", f"{self.config.quantile} is not in [0.5, 1)")
        if not 0 <= self.config.recurring_tolerance <= self.config.smooth_minutes:
            raise TraceError("recurring_tolerance", "must be within 0..smooth_minutes")
        if self.config.base_pseudo_count < 0:
            raise TraceError("base_pseudo_count", "must be >= 0")
        if not self.config.outlier_factor >= 0:
            raise TraceError("outlier_factor", f"must be >= 0, got {self.config.outlier_factor}")
        self._y = np.zeros(MINUTES_PER_WEEK, dtype=float)
        self._n = 0
        # Ring buffer of standardised errors; the quantile is refreshed at most every 30 new errors.
        self._errors = np.zeros(self.config.residual_minutes, dtype=float)
        self._n_errors = 0
        self._pending: deque[tuple[int, float]] = deque()  # (minute index, predicted mean) awaiting actuals
        self._q_cache: tuple[int, float] | None = None
        self._zq_cache: dict[float, tuple[int, float]] = {}
        self.outliers = 0
        self._z_normal = float(_normal_ppf(self.config.quantile))

    @property
    def observed(self) -> int:
        """How many minutes have been observed."""
        return self._n

    def history(self) -> np.ndarray:
        """A copy of every observed minute, oldest first."""
        return self._y[: self._n].copy()

    def observe(self, value: float) -> None:
        """Record the count of the next minute (after it has fully elapsed)."""
        if self._n == len(self._y):
            self._y = np.concatenate([self._y, np.zeros(len(self._y), dtype=float)])
        value = float(value)
        self._y[self._n] = value
        while self._pending and self._pending[0][0] <= self._n:
            idx, pred = self._pending.popleft()
            if idx == self._n:
                err = (value - pred) / math.sqrt(pred + 1.0)
                if self._is_outlier(err):
                    self.outliers += 1
                    continue
                self._errors[self._n_errors % len(self._errors)] = err
                self._n_errors += 1
        self._n += 1

    def observe_many(self, values: Iterable[float]) -> None:
        for v in values:
            self.observe(v)

    def _is_outlier(self, err: float) -> bool:
        """An error too large to be noise (see ``OnlineForecastConfig.outlier_factor``)."""
        f = self.config.outlier_factor
        if f <= 0 or self._n_errors < 30 or err <= f * self._z_normal:
            return False
        return err > f * max(self._error_quantile(), self._z_normal)

    def _error_quantile(self) -> float:
        if self._q_cache is not None and self._n_errors - self._q_cache[0] < 30:
            return self._q_cache[1]
        if self._n_errors < 30:
            # Before enough errors exist, assume Poisson-like noise (z of the quantile, plus a margin).
            return float(_normal_ppf(self.config.quantile)) * 1.5
        pool = self._errors[: min(self._n_errors, len(self._errors))]
        z = float(np.quantile(pool, self.config.quantile))
        self._q_cache = (self._n_errors, z)
        return z

    def error_quantile(self, q: float) -> float:
        """The ``q`` quantile of the recent standardised errors (the band's z at another level than the
        configured one; Poisson-like with a margin before enough errors exist), cached like the configured one."""
        if q == self.config.quantile:
            return self._error_quantile()
        cache = self._zq_cache.get(q)
        if cache is not None and self._n_errors - cache[0] < 30:
            return cache[1]
        if self._n_errors < 30:
            return float(_normal_ppf(q)) * 1.5
        pool = self._errors[: min(self._n_errors, len(self._errors))]
        z = float(np.quantile(pool, q))
        self._zq_cache[q] = (self._n_errors, z)
        return z

    def dispersion(self) -> float:
        """How much wider the recent standardised forecast errors are than Poisson noise: the error quantile over
        the normal quantile at ``quantile``, at least 1 (1 before enough errors exist)."""
        if self._n_errors < 30:
            return 1.0
        return max(1.0, self._error_quantile() / float(_normal_ppf(self.config.quantile)))

    def level(self) -> float:
        """Current level: mean of the last ``level_minutes`` minutes, or of the last ``fast_level_minutes`` when
        that is higher (rises are followed fast, falls smoothly) or ``drop_factor`` times lower (a crowd left).
        0 before any data."""
        m = min(self.config.level_minutes, self._n)
        if m == 0:
            return 0.0
        slow = float(self._y[self._n - m : self._n].mean())
        f = min(self.config.fast_level_minutes, self._n)
        if f <= 0:
            return slow
        fast = float(self._y[self._n - f : self._n].mean())
        if (
            self.config.drop_factor > 0
            and fast * self.config.drop_factor < slow
            and slow - fast > 3.0 * math.sqrt(slow / f + 1.0)
        ):
            # A crowd has left (traffic fell several-fold within minutes, by far more than the fast window's
            # Poisson noise): follow it down now rather than paying for the slow window's memory of the surge.
            return fast
        return max(slow, fast)

    def seasonal_ratio(self, horizon: int, level: float | None = None) -> np.ndarray:
        """Median over previous days of (smoothed traffic at each future minute) / (traffic in the level window).

        Where a surge recurred (see ``recurring_rank``) the recurring value replaces the median; given today's
        ``level``, only where the surge stands out of Poisson noise at that level.
        """
        cfg = self.config
        n, m, w = self._n, cfg.level_minutes, cfg.smooth_minutes
        ratios = []
        peaks = []
        weights = []
        kernel = np.ones(2 * w + 1) / (2 * w + 1)
        tol = cfg.recurring_tolerance
        narrow = np.ones(2 * cfg.recurring_smooth + 1) / (2 * cfg.recurring_smooth + 1)
        for day in range(1, cfg.history_days + 1):
            anchor = n - day * MINUTES_PER_DAY
            lo = anchor - max(m, w)
            hi = anchor + horizon + w
            if lo < 0 or hi > n:
                continue
            base = float(self._y[anchor - m : anchor].mean())
            if base + cfg.base_pseudo_count < cfg.min_base:
                continue
            seg = self._y[anchor - w : anchor + horizon + w]
            smooth = np.convolve(seg, kernel, mode="valid")[:horizon]
            k = cfg.base_pseudo_count
            ratios.append((smooth + k) / (base + k))
            if cfg.recurring_rank >= 1:
                # Onsets kept sharp (short mean) and widened by the timing tolerance (a running max), so a surge
                # that starts a few minutes earlier today is still covered from its first minute.
                lo2 = anchor - w
                sharp = np.convolve(self._y[lo2 : anchor + horizon + w], narrow, mode="same")
                seg2 = sharp[w - tol : w + horizon + tol]
                widened = seg2[:horizon].copy()
                for j in range(1, 2 * tol + 1):  # running max over +-tol minutes (a sliding window, unrolled)
                    np.maximum(widened, seg2[j : j + horizon], out=widened)
                peaks.append((widened + k) / (base + k))
            # The same weekday last week carries the weekly pattern (weekend vs weekday shape): weight it double.
            weights.append(2.0 if day == 7 else 1.0)
        if not ratios:
            return np.ones(horizon)
        stack = np.vstack(ratios)
        if len(ratios) == 1:
            return stack[0]
        median = _weighted_median(stack, np.asarray(weights))
        rank = cfg.recurring_rank
        if rank >= 1 and len(ratios) >= rank:
            # A surge that came back at this time of day on at least ``rank`` of the previous days (a daily deal,
            # a newsletter) is planned for even when it did not come every day: the median would drop it.
            kth = np.sort(np.vstack(peaks), axis=0)[-rank]
            surge = kth > cfg.recurring_factor * median
            if level is not None:
                # In requests at today's level, the recurring surge must stand out of one minute's noise by three
                # sigmas: at one or two requests a minute a 2.5x "surge" is just noise. The sigma is Poisson's,
                # widened by the series' own over-dispersion (how much wider its recent forecast errors are than
                # Poisson's), so on a bursty series a burst that happened to come back twice is not a "surge".
                sigmas = 3.0 * self.dispersion() if cfg.recurring_dispersion else 3.0
                surge &= (kth - median) * level > sigmas * np.sqrt(median * level + 1.0)
            median = np.where(surge, kth, median)
        return median

    def forecast(self, horizon: int) -> TrafficForecast:
        """Mean and upper-quantile forecasts of the next ``horizon`` minutes (from minute index ``observed``)."""
        if horizon < 1:
            raise TraceError("horizon", "must be at least 1")
        lvl = self.level()
        ratio = self.seasonal_ratio(horizon, lvl)
        mean = np.maximum(lvl * ratio, 0.0)
        z = max(self._error_quantile(), 0.0)
        upper = mean + z * np.sqrt(mean + 1.0)
        # Score the first minutes of every forecast later (keeps the error pool about the horizons we act on).
        for k in range(min(horizon, 15)):
            self._pending.append((self._n + k, float(mean[k])))
        return TrafficForecast(origin=self._n, mean=mean, upper=upper, quantile=self.config.quantile)


def _weighted_median(stack: np.ndarray, weights: np.ndarray) -> np.ndarray:
    order = np.argsort(stack, axis=0)
    sorted_vals = np.take_along_axis(stack, order, axis=0)
    sorted_w = weights[order]
    cum = np.cumsum(sorted_w, axis=0)
    half = weights.sum() / 2.0
    idx = (cum >= half).argmax(axis=0)
    return sorted_vals[idx, np.arange(stack.shape[1])]


def _normal_ppf(q: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(q)


def forecast_traffic_online(
    series: pd.Series,
    *,
    horizon: int,
    config: OnlineForecastConfig | None = None,
    unique_id: str = "requests",
) -> pd.DataFrame:
    """Replay a per-minute series through :class:`OnlineTrafficForecaster` and forecast the next ``horizon``.

    Returns a long frame (``unique_id``, ``ds``, ``OnlineSeasonal``, ``q_<quantile>``) starting one minute after
    the series' last minute.
    """
    if series.empty:
        raise TraceError("series", "no traffic observed yet")
    model = OnlineTrafficForecaster(config)
    values = series.to_numpy(dtype=float)
    # Replay in one pass, forecasting every 5 minutes, so the error pool behind the quantile is populated.
    for i, v in enumerate(values):
        if i % 5 == 0 and i >= model.config.level_minutes:
            model.forecast(15)
        model.observe(v)
    fc = model.forecast(horizon)
    start = pd.Timestamp(series.index[-1]) + pd.Timedelta(minutes=1)
    return fc.to_frame(start.to_pydatetime(), unique_id=unique_id)
