"""Predictive capacity planning: replicas per time slot, the reactive (HPA) baseline, and a forward-only backtest.

The model of a deployment used everywhere here (and in the backtest the issue specifies):

* At minute ``t`` a planner has seen the demand of minutes ``< t`` only, and names a target replica count.
* More replicas than now are *requested* at ``t`` and become *ready* at ``t + lag``.
* Fewer replicas are removed at once: not-yet-ready ones first, then the newest.
* Cost counts every requested replica from its request until its removal, booting ones included.
* Minute ``t`` is a violation when its demand exceeds ``capacity_per_replica x ready replicas``.

:class:`HpaReactivePlanner` is Kubernetes' HPA on one utilisation metric (target 70%, no scale-up stabilisation,
a 5-minute scale-down stabilisation window). :class:`PredictivePlanner` asks for what the upper-quantile traffic
forecast needs over the next ``lag`` minutes and never less than what the same HPA signal asks for (AWS
"predictive scaling + target tracking": the larger of the two wins), and scales in only after a window of
lower targets.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from typing import Any, Iterable, Mapping, Protocol, Sequence

import numpy as np
import pandas as pd

from .campaigns import CampaignEvent, MinuteEvent, events_on_grid, learn_uplift
from ..forecast.traffic import (
    MINUTES_PER_DAY,
    OnlineForecastConfig,
    OnlineTrafficForecaster,
    TrafficForecast,
    quantile_column,
)


class CapacityInputError(ValueError):
    """Invalid planning input. ``field`` names the offending option or column."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _check_positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise CapacityInputError(name, f"must be a positive number, got {value!r}")


def _check_non_negative_int(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 0:
        raise CapacityInputError(name, f"must be a whole number >= 0, got {value!r}")


# ---------------------------------------------------------------------------------------------------------------
# Planners
# ---------------------------------------------------------------------------------------------------------------


class ScalingPlanner(Protocol):
    """What the simulator drives. ``observe`` gets each minute's demand after it ends; ``target`` decides."""

    def observe(self, demand: float) -> None: ...

    def target(self, minute: int, requested: int, ready: int) -> int: ...


def hpa_desired(observed: float, ready: int, capacity: float, target_utilization: Fraction) -> int:
    """HPA's desired count: ``ceil(ready x utilization / target)``, at least 1, in exact arithmetic.

    ``utilization = observed / (capacity x ready)``; with no ready replica the ratio is taken as if one were ready
    (Kubernetes would not compute a ratio at all; this only matters for hand-built states).
    """
    ready = max(ready, 1)
    if float(observed).is_integer() and float(capacity).is_integer():
        # ready x (observed / (C x ready)) / (num/den) == observed x den / (C x num): exact in integers (fast path).
        num, den = target_utilization.numerator, target_utilization.denominator
        return max(1, -(-int(observed) * den // (int(capacity) * num)))
    util = Fraction(observed) / (Fraction(capacity) * ready)
    return max(1, math.ceil(ready * util / target_utilization))


class HpaReactivePlanner:
    """The reactive baseline, exactly as the issue specifies (Kubernetes HPA semantics).

    * observed load at minute ``t`` is the demand of minute ``t - 1``;
    * ``utilization = observed / (C x ready)``; ``desired = ceil(ready x utilization / 0.7)``, minimum 1;
    * scale up to ``desired`` at once; scale down to the largest ``desired`` of the last
      ``scale_down_window`` minutes (this minute included).

    Before any minute has been observed it keeps the current count.
    """

    def __init__(
        self,
        capacity: float,
        *,
        target_utilization: Fraction | float = Fraction(7, 10),
        scale_down_window: int = 5,
    ) -> None:
        _check_positive("capacity_per_replica", capacity)
        self.capacity = capacity
        self.target_utilization = Fraction(target_utilization).limit_denominator(1000)
        if not 0 < self.target_utilization <= 1:
            raise CapacityInputError("target_utilization", "must be in (0, 1]")
        if scale_down_window < 1:
            raise CapacityInputError("scale_down_window", "must be at least 1 minute")
        self._last: float | None = None
        self._desired: deque[int] = deque(maxlen=scale_down_window)

    def observe(self, demand: float) -> None:
        self._last = demand

    def target(self, minute: int, requested: int, ready: int) -> int:
        if self._last is None:
            return requested
        desired = hpa_desired(self._last, ready, self.capacity, self.target_utilization)
        self._desired.append(desired)
        if desired > requested:
            return desired
        return min(requested, max(self._desired))


class SeasonalRatioHeuristic:
    """The ten-line yardstick the capacity issue quotes, as a named baseline next to the HPA.

    Need for the next ``lag`` minutes: the last hour's mean traffic times the largest ratio, over the same clock
    minutes yesterday (``t .. t + lag``), of that minute's traffic to yesterday's mean of the hour before ``t``;
    times ``headroom``, divided by the per-replica capacity. Never below the HPA signal of the last minute; scale-in
    only to the largest target of the last 5 minutes (the HPA's window). Without a yesterday it is the HPA.
    """

    def __init__(self, capacity: float, lag: int, *, headroom: float = 1.0,
                 target_utilization: Fraction | float = Fraction(7, 10)) -> None:
        _check_positive("capacity_per_replica", capacity)
        _check_non_negative_int("lag_minutes", lag)
        _check_positive("headroom", headroom)
        self.capacity, self.lag, self.headroom = capacity, lag, headroom
        self.target_utilization = Fraction(target_utilization).limit_denominator(1000)
        self._y: list[float] = []
        self._targets: deque[int] = deque(maxlen=5)

    def observe(self, demand: float) -> None:
        self._y.append(float(demand))

    def target(self, minute: int, requested: int, ready: int) -> int:
        y = self._y
        if not y:
            return requested
        floor = hpa_desired(y[-1], ready, self.capacity, self.target_utilization)
        n, need = len(y), 0
        if n > MINUTES_PER_DAY + 60:
            a = n - MINUTES_PER_DAY
            base = sum(y[a - 60 : a]) / 60.0
            if base > 0:
                level = sum(y[-60:]) / 60.0
                peak = max(y[a : a + self.lag + 1])
                need = math.ceil(level * peak / base * self.headroom / self.capacity)
        raw = max(floor, need, 1)
        self._targets.append(raw)
        return raw if raw >= requested else min(requested, max(self._targets))


@dataclass(frozen=True)
class PredictiveConfig:
    """Policy of :class:`PredictivePlanner` (all configuration, none buried in code).

    headroom: multiplier on the upper-quantile forecast before dividing by per-replica capacity.
    refit_every: minutes between scheduled re-forecasts (a surge above the upper forecast re-forecasts at once).
    scale_in_window: minutes a lower target must persist before replicas are removed (conservative scale-in).
    surge_factor / surge_minutes: a surge (flash crowd) is one minute above ``surge_factor x`` the upper forecast,
        or ``surge_minutes`` consecutive minutes above it (0 disables). On a surge the planner re-forecasts at once
        and plans for at least the current rate (mean of the last two minutes); with ``surge_extrapolation > 0``
        also for that rate growing at the recent pace (times ``surge_extrapolation``) until newly requested
        replicas are ready. Off by default: on the selection cases it bought no violation-minutes (replicas asked
        for at detection are ready only a few minutes before the HPA's, asked for on the ramp's top) and cost
        replica-minutes (the extrapolation overshoots a x3-x10 ramp several-fold).
    cost_budget: keep replica-minutes within ``1 + cost_budget`` of what target tracking alone (a shadow HPA fed
        the same observed minutes) has spent so far, by scaling the forecast band (upper - mean) by a factor in
        [band_scale_min, band_scale_max], nudged by ``band_step`` each minute; 0 disables (band scale stays 1).
    upper_cap_over_mean: if > 0, the band never exceeds this multiple of the mean forecast.
    trend_ratio / trend_window: also treat as a surge a climb where the mean of the last half of the last
        ``trend_window`` minutes exceeds ``trend_ratio x`` the first half's (and 3 Poisson sigmas); 0 disables.
    cost_cap: a bound on what forecasting may add: while the planner's replica-minutes so far exceed ``1 +
        cost_cap`` times the shadow HPA's, the share of the forecast's need above the HPA floor that is acted on
        falls by ``cost_cap_step`` a minute (and climbs back by as much when under), between 0 and 1; 0 disables.
        Calendar events are not scaled (they are an explicit request). Costs are compared from minute
        ``cost_cap_warmup`` on (the first day, with no yesterday to forecast from, is not held against the planner).
    event_lead_minutes: known calendar events are pre-scaled for from ``lag + event_lead_minutes`` before start.
    echo_factor: the *surge echo* (0 disables): when one of the previous ``echo_days`` days had a surge starting
        at about this clock time (its 3-minute mean more than ``echo_factor x`` that day's mean of the hour before,
        and above that hour's noise), the planner asks for today's last-hour level times that day's surge ratio,
        times ``echo_headroom``, from ``lag + echo_early`` minutes before the echoed onset. If no surge shows by
        ``echo_confirm`` minutes after it, the echo is dropped (a false alarm costs about ``lag + echo_early +
        echo_confirm`` minutes of those replicas); if it shows, the echo holds until replicas asked for on the
        observed surge are ready (``lag + 1`` minutes after it showed). One echoed onset is acted on once:
        further echoes wait ``echo_cooldown`` minutes.
    echo_base_mismatch: the echo is not armed when yesterday's reference hour and today's last hour differ more
        than this factor (an outage yesterday: the surge ratio would be against an empty hour); 0 disables. A
        reference hour only partly dark still passes (up to this factor).
    floor_utilization / floor_relax_from / relaxed_band_quantile: the *relaxed floor*. Outside a surge, where the
        HPA signal asks for more than ``floor_relax_from`` replicas, the reactive floor serves the last minute at
        ``floor_utilization`` (0.85) instead of the HPA's 70 % (never below ``floor_relax_from``), and the forecast's
        band there is read at ``relaxed_band_quantile``: at a few replicas the HPA's rounding is the cheap
        headroom, at many the 70 % target is more standing headroom than the band needs. 0 keeps the HPA's floor.
    surge_regime_minutes / surge_regime_factor: for this many minutes after a minute above ``surge_regime_factor
        x`` the upper forecast (or a confirmed echo) the floor is the HPA's own, not the relaxed one.
    burst_memory_minutes / burst_memory_drop: the *burst memory* (0 disables). Outside a surge regime the floor is
        never below the replicas the largest minute of the last ``burst_memory_minutes`` needed at full use, unless
        traffic has left that level (the last 5 minutes' mean times ``burst_memory_drop`` is below it: a crowd or a
        one-off burst is over). Web traffic's noise comes in clusters: a minute that beat the plan is the best
        predictor of the next one for the following half hour, a signal the 3-day error pool of the band is too
        slow to follow and the HPA's 5-minute window too short to keep.
    boot_aware: replicas asked for now are ready ``lag`` minutes later, so scaling *up* is for the forecast at the
        end of the boot window; replicas already there are kept for the minutes before it (never added for them).
    forecast: knobs of the online traffic forecaster. The default keeps surge-sized errors (above 3x the band's
        quantile) out of the band's error pool (``OnlineForecastConfig.outlier_factor``), so a flash crowd does
        not widen the band for the three days after it.
    """

    headroom: float = 1.0
    refit_every: int = 10
    scale_in_window: int = 5
    surge_factor: float = 2.0
    surge_minutes: int = 0
    surge_extrapolation: float = 0.0
    trend_ratio: float = 0.0
    upper_cap_over_mean: float = 0.0
    cost_budget: float = 0.0
    band_step: float = 0.005
    band_scale_min: float = 0.05
    band_scale_max: float = 2.0
    trend_window: int = 6
    event_lead_minutes: int = 5
    cost_cap: float = 0.15
    cost_cap_step: float = 0.01
    cost_cap_warmup: int = 1440
    echo_factor: float = 2.0
    echo_days: int = 1
    echo_early: int = 5
    echo_confirm: int = 5
    echo_headroom: float = 1.2
    echo_cooldown: int = 150
    echo_base_mismatch: float = 20.0
    floor_utilization: float = 0.85
    floor_relax_from: int = 3
    relaxed_band_quantile: float = 0.98
    surge_regime_minutes: int = 60
    surge_regime_factor: float = 2.0
    burst_memory_minutes: int = 20
    burst_memory_drop: float = 3.0
    boot_aware: bool = True
    forecast: OnlineForecastConfig = field(
        default_factory=lambda: OnlineForecastConfig(quantile=0.96, outlier_factor=3.0)
    )


class PredictivePlanner:
    """Upper-quantile forecast planner with the HPA signal as its floor (see the module docstring)."""

    def __init__(
        self,
        capacity: float,
        lag: int,
        config: PredictiveConfig | None = None,
        *,
        target_utilization: Fraction | float = Fraction(7, 10),
        events: Sequence[MinuteEvent] = (),
    ) -> None:
        _check_positive("capacity_per_replica", capacity)
        _check_non_negative_int("lag_minutes", lag)
        self.capacity = capacity
        self.lag = lag
        self.config = config or PredictiveConfig()
        _check_non_negative_int("event_lead_minutes", self.config.event_lead_minutes)
        # Campaign calendar: events by start; a kind's learned uplift is cached until another of its events ends.
        self.events = sorted(events, key=lambda e: e.start)
        self._next_event = 0
        self._active: list[MinuteEvent] = []
        self._event_base: dict[int, tuple[float, float]] = {}
        self._uplift_cache: dict[str, tuple[int, float | None]] = {}
        self.event_minutes_prescaled = 0
        if self.config.refit_every < 1:
            raise CapacityInputError("refit_every", "must be at least 1 minute")
        if self.config.scale_in_window < 1:
            raise CapacityInputError("scale_in_window", "must be at least 1 minute")
        _check_positive("headroom", self.config.headroom)
        if not self.config.cost_cap >= 0:
            raise CapacityInputError("cost_cap", f"must be >= 0, got {self.config.cost_cap}")
        if not 0 < self.config.cost_cap_step <= 1:
            raise CapacityInputError("cost_cap_step", f"must be in (0, 1], got {self.config.cost_cap_step}")
        self.target_utilization = Fraction(target_utilization).limit_denominator(1000)
        fu = self.config.floor_utilization
        if not 0 <= fu <= 1:
            raise CapacityInputError("floor_utilization", f"must be in [0, 1], got {fu}")
        self._floor_utilization = Fraction(fu).limit_denominator(1000) if fu > 0 else self.target_utilization
        self.forecaster = OnlineTrafficForecaster(self.config.forecast)
        self._fc: TrafficForecast | None = None
        self._last: float | None = None
        self._prev: deque[float] = deque(maxlen=max(self.config.trend_window, 2))
        self._surge = False
        self._over = 0  # consecutive minutes above the upper forecast
        self._targets: deque[int] = deque(maxlen=self.config.scale_in_window)
        self.forecasts_made = 0
        # Cost budget: a shadow of the reactive HPA on the same observations, and a scale on the forecast band.
        self._shadow = HpaReactivePlanner(capacity, target_utilization=self.target_utilization)
        self._shadow_count = 1
        self._shadow_cost = 0
        self._own_cost = 0
        self.band_scale = 1.0
        self.excess_scale = 1.0
        self._cap_shadow_cost = 0
        self._cap_own_cost = 0
        # Surge echo (see PredictiveConfig): state "idle" | "armed" | "live", with the echoed onset and its need.
        if self.config.echo_factor < 0 or self.config.echo_days < 0:
            raise CapacityInputError("echo_factor" if self.config.echo_factor < 0 else "echo_days", "must be >= 0")
        _check_positive("echo_headroom", self.config.echo_headroom)
        self._y: list[float] = []
        self._echo_state = "idle"
        self._regime_until = 0
        self._echo_onset = 0
        self._echo_need = 0.0
        self._echo_base = 0.0
        self._echo_ratio = 1.0
        self._echo_until = 0
        self._echo_quiet_until = 0
        self.echoes_armed = 0
        self.echoes_confirmed = 0

    def observe(self, demand: float) -> None:
        fc = self._fc
        if fc is not None:
            k = self.forecaster.observed - fc.origin
            if 0 <= k < len(fc.upper):
                above = demand > fc.upper[k]
                self._over = self._over + 1 if above else 0
                if demand > fc.upper[k] * self.config.surge_factor or (
                    self.config.surge_minutes and self._over >= self.config.surge_minutes
                ):
                    self._surge = True
                if self.config.surge_regime_minutes > 0 and demand > fc.upper[k] * self.config.surge_regime_factor:
                    self._regime_until = self.forecaster.observed + 1 + self.config.surge_regime_minutes
        self.forecaster.observe(demand)
        self._shadow.observe(demand)
        self._y.append(float(demand))
        self._last = demand
        self._prev.append(demand)
        if self.config.trend_ratio > 0 and len(self._prev) == self._prev.maxlen:
            # A sustained climb (one-off ramps that no previous day predicts): the last half of the window is
            # well above the first half, by more than Poisson-like noise.
            prev = list(self._prev)
            half = len(prev) // 2
            early, late = sum(prev[:half]) / half, sum(prev[half:]) / (len(prev) - half)
            if late > early * self.config.trend_ratio and late - early > 3.0 * math.sqrt(early + 1.0):
                self._surge = True

    def _horizon(self) -> int:
        return self.config.refit_every + self.lag + 1

    def _need_from_forecast(self, minute: int, requested: int = 0, relaxed: bool = False) -> int:
        n = self.forecaster.observed
        fc = self._fc
        if fc is None or self._surge or n - fc.origin >= self.config.refit_every:
            fc = self._fc = self.forecaster.forecast(self._horizon())
            self.forecasts_made += 1
        k0 = n - fc.origin
        means = fc.mean[k0 : k0 + self.lag + 1]
        uppers = fc.upper[k0 : k0 + self.lag + 1]
        if relaxed and self.config.relaxed_band_quantile > 0:
            z = max(self.forecaster.error_quantile(self.config.relaxed_band_quantile), 0.0)
            uppers = means + z * np.sqrt(means + 1.0)
        window = means + self.band_scale * (uppers - means)
        peak = float(window.max()) if len(window) else 0.0
        if self.config.boot_aware and len(window) > 1:
            # Replicas asked for now are ready only at t + lag: scaling *up* is for the end of the window; the
            # minutes before it are served by replicas already requested, which are kept (not added) for them.
            up = float(window[-1])
            keep = min(peak, requested * self.capacity / max(self.config.headroom, 1e-9))
            peak = max(up, keep)
        if self.config.upper_cap_over_mean > 0:
            # Cap the noise band at a multiple of the mean forecast: on very bursty series the upper quantile of
            # one minute would otherwise keep far more replicas than the target-tracking floor for little gain.
            if len(means):
                peak = min(peak, float(means.max()) * self.config.upper_cap_over_mean)
        if self._surge and self._last is not None and len(self._prev) >= 2:
            # A flash crowd: the forecast was beaten. Plan for at least the current rate (last two minutes), and,
            # with ``surge_extrapolation`` > 0, for it climbing at the pace of the last few minutes until freshly
            # requested replicas are ready.
            prev = list(self._prev)
            now_rate = sum(prev[-2:]) / len(prev[-2:])
            half = len(prev) // 2
            slope = max((sum(prev[half:]) / (len(prev) - half) - sum(prev[:half]) / half) / max(half, 1), 0.0)
            peak = max(peak, now_rate + slope * (self.lag + 1) * self.config.surge_extrapolation)
        self._surge = False
        return math.ceil(peak * self.config.headroom / self.capacity - 1e-9)

    def target(self, minute: int, requested: int, ready: int) -> int:
        if self._last is None:
            self._shadow_count = max(self._shadow_count, requested)
            self._track_budget(minute, requested)
            return requested
        floor = hpa_desired(self._last, ready, self.capacity, self.target_utilization)
        relaxed = False
        if (
            floor > self.config.floor_relax_from
            and self._floor_utilization != self.target_utilization
            and len(self._y) >= self._regime_until
        ):
            # Outside a surge and above a few replicas, the HPA's 70 % target is more standing headroom than the
            # forecast's band needs: the floor serves the last minute at ``floor_utilization`` and the band (read
            # at ``relaxed_band_quantile``) carries the rest. Inside a surge the HPA's own floor holds.
            floor = max(self.config.floor_relax_from,
                        hpa_desired(self._last, ready, self.capacity, self._floor_utilization))
            relaxed = True
        floor = max(floor, self._burst_floor())
        predicted = self._need_from_forecast(minute, requested, relaxed)
        if predicted > floor and self.excess_scale < 1.0:
            predicted = floor + math.ceil(self.excess_scale * (predicted - floor) - 1e-9)
        forecast_need = max(floor, predicted, self._need_from_echo(), 1)
        raw = max(forecast_need, self._need_from_calendar())
        self._targets.append(raw)
        out = raw if raw >= requested else min(requested, max(self._targets))
        # The cost cap judges what forecasting spends: replicas held for a calendar event were asked for explicitly.
        self._track_budget(minute, out, out if raw == forecast_need else forecast_need)
        return out

    def _burst_floor(self) -> int:
        """Replicas for the largest minute of the last ``burst_memory_minutes`` (see ``PredictiveConfig``), or 0."""
        w = self.config.burst_memory_minutes
        y = self._y
        if w <= 0 or len(y) < w or len(y) < self._regime_until:
            return 0
        peak = max(y[-w:])
        drop = self.config.burst_memory_drop
        if drop > 0 and sum(y[-5:]) / 5.0 * drop < peak:
            return 0  # traffic has left the burst's level: the crowd (or one-off burst) is over
        return math.ceil(peak / self.capacity - 1e-9)

    def _echo_signal(self, n: int) -> tuple[int, float, float] | None:
        """The earliest surge onset on a previous day (up to ``echo_days`` back) within the next ``lag +
        echo_early`` clock minutes: (minutes ahead, that day's surge ratio, that day's base), or None."""
        cfg = self.config
        y = self._y
        look = self.lag + cfg.echo_early
        best: tuple[int, float, float] | None = None
        for day in range(1, cfg.echo_days + 1):
            a = n - day * MINUTES_PER_DAY
            if a - 60 < 0:
                break
            hi = a + look + self.lag + 2
            seg = y[a - 1 : hi + 1]
            base = sum(y[a - 60 : a]) / 60.0
            threshold = cfg.echo_factor * (base + 1.0)
            if max(seg[: look + 3]) <= threshold:
                continue
            arr = np.asarray(seg, dtype=float)
            smooth = (arr[:-2] + arr[1:-1] + arr[2:]) / 3.0  # 3-minute means centred on a .. hi - 1
            noise = 4.0 * math.sqrt(base + 1.0)
            hits = np.flatnonzero((smooth[: look + 1] > threshold) & (smooth[: look + 1] - base > noise))
            if not len(hits):
                continue
            ahead = int(hits[0])
            ratio = float(smooth[ahead : ahead + self.lag + 2].max()) / max(base, 1.0)
            if best is None or ahead < best[0]:
                best = (ahead, ratio, base)
        return best

    def _need_from_echo(self) -> int:
        """Replicas for a surge echoed from a previous day (see ``PredictiveConfig.echo_factor``)."""
        cfg = self.config
        if cfg.echo_factor <= 0 or cfg.echo_days < 1:
            return 0
        n = len(self._y)
        if n < MINUTES_PER_DAY + 60:
            return 0
        if self._echo_state == "idle" and n >= self._echo_quiet_until:
            signal = self._echo_signal(n)
            level = sum(self._y[-60:]) / 60.0
            if signal is not None and cfg.echo_base_mismatch > 0:
                # Yesterday's reference hour must look like today's: after an outage (or with a surge already
                # running today) the "surge ratio" is against a different baseline and would ask for hundreds of
                # replicas.
                base = signal[2]
                if max(level, base) + 1.0 > cfg.echo_base_mismatch * (min(level, base) + 1.0):
                    signal = None
            if signal is not None:
                ahead, ratio, _ = signal
                self._echo_state = "armed"
                self._echo_onset = n + ahead
                self._echo_base = level
                self._echo_ratio = ratio
                self._echo_need = level * ratio * cfg.echo_headroom
                self._echo_quiet_until = self._echo_onset + cfg.echo_cooldown
                self.echoes_armed += 1
        if self._echo_state == "armed":
            recent = (self._y[-1] + self._y[-2]) / 2.0
            base = self._echo_base
            if recent > base * (1.0 + 0.3 * (self._echo_ratio - 1.0)) and recent - base > 3.0 * math.sqrt(base + 1.0):
                self._echo_state = "live"
                self._echo_until = n + self.lag + 1
                if self.config.surge_regime_minutes > 0:
                    self._regime_until = max(self._regime_until, n + self.config.surge_regime_minutes)
                self.echoes_confirmed += 1
            elif n > self._echo_onset + cfg.echo_confirm:
                # A false alarm: no surge came. Its replicas go at once (the scale-in hold is for noisy forecasts,
                # and this one has been refuted), so a false echo costs a bounded number of replica-minutes.
                self._echo_state = "idle"
                self._targets.clear()
                return 0
        if self._echo_state == "live" and n >= self._echo_until:
            self._echo_state = "idle"
            return 0
        if self._echo_state == "idle":
            return 0
        return math.ceil(self._echo_need / self.capacity - 1e-9)

    def _learned_uplift(self, kind: str) -> float | None:
        n = self.forecaster.observed
        ended = sum(1 for e in self.events if e.kind == kind and e.end <= n)
        cached = self._uplift_cache.get(kind)
        if cached is None or cached[0] != ended:
            past = [e for e in self.events if e.kind == kind and e.end <= n]
            cached = (ended, learn_uplift(self.forecaster.history(), past, kind) if past else None)
            self._uplift_cache[kind] = cached
        return cached[1]

    def _need_from_calendar(self) -> int:
        """Replicas for known events: from ``lead = lag + event_lead_minutes`` before each start until ``lead``
        after it (or its end), the mean traffic forecast as it stood when pre-scaling began (so the event's own
        traffic is not counted twice) times the event's uplift (given, or learned from the kind's past events)."""
        if not self.events:
            return 0
        n = self.forecaster.observed
        lead = self.lag + self.config.event_lead_minutes
        while self._next_event < len(self.events) and self.events[self._next_event].start - lead <= n:
            self._active.append(self.events[self._next_event])
            self._next_event += 1
        # Pre-scaling covers the onset: once the event has been live for a boot lag, replicas asked for on its
        # observed traffic are ready and the forecast and reactive floor carry it (an unknown uplift guessed too
        # high would otherwise be paid for the whole event).
        self._active = [e for e in self._active if min(e.end, e.start + lead) > n]
        need = 0.0
        for ev in self._active:
            uplift = ev.uplift if ev.uplift is not None else self._learned_uplift(ev.kind)
            if uplift is None:
                continue
            key = id(ev)
            if key not in self._event_base:
                fc = self.forecaster.forecast(self.lag + 1)
                k = int(fc.mean.argmax())
                z = max(float(fc.upper[k] - fc.mean[k]), 0.0) / math.sqrt(float(fc.mean[k]) + 1.0)
                self._event_base[key] = (float(fc.mean[k]), z)
            base, z = self._event_base[key]
            # The event's mean, with the forecaster's noise band at that level (Poisson-like: it grows as a root).
            expected = base * uplift
            need = max(need, expected + z * math.sqrt(expected + 1.0))
        if need <= 0:
            return 0
        self.event_minutes_prescaled += 1
        return math.ceil(need * self.config.headroom / self.capacity - 1e-9)

    def _track_budget(self, minute: int, decided: int, forecast_decided: int | None = None) -> None:
        """Steer the band scale so replica-minutes stay within ``cost_budget`` of target tracking alone.

        The shadow HPA sees the same observed minutes and, like the real one, decides from demand alone, so its
        replica-minutes so far are exactly what the reactive baseline would have spent.
        """
        self._shadow_count = max(1, self._shadow.target(minute, self._shadow_count, self._shadow_count))
        self._shadow_cost += self._shadow_count
        self._own_cost += max(decided, 1)
        cap = self.config.cost_cap
        if cap > 0 and minute >= self.config.cost_cap_warmup:
            self._cap_shadow_cost += self._shadow_count
            self._cap_own_cost += max(decided if forecast_decided is None else forecast_decided, 1)
            step = self.config.cost_cap_step
            if self._cap_own_cost > (1.0 + cap) * self._cap_shadow_cost:
                self.excess_scale = max(0.0, self.excess_scale - step)
            else:
                self.excess_scale = min(1.0, self.excess_scale + step)
        budget = self.config.cost_budget
        if budget <= 0:
            return
        step = self.config.band_step
        if self._own_cost > (1.0 + budget) * self._shadow_cost:
            self.band_scale = max(self.config.band_scale_min, self.band_scale * (1.0 - step))
        else:
            self.band_scale = min(self.config.band_scale_max, self.band_scale * (1.0 + step))


# ---------------------------------------------------------------------------------------------------------------
# Simulation (the replica model shared by both planners)
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class SimulationResult:
    """Per-minute ``requested`` and ``ready`` replica counts plus the two headline figures."""

    requested: np.ndarray
    ready: np.ndarray
    violation_minutes: int
    replica_minutes: int

    def summary(self) -> dict[str, int]:
        return {"violation_minutes": self.violation_minutes, "replica_minutes": self.replica_minutes}


class ReplicaSet:
    """Replicas as their request minutes, oldest first. Removal takes not-ready ones first, then the newest."""

    def __init__(self, lag: int, initial_ready: int = 1) -> None:
        self.lag = lag
        # Initial replicas were requested long enough ago to be ready at minute 0.
        self._requested_at: list[int] = [-lag] * initial_ready

    def __len__(self) -> int:
        return len(self._requested_at)

    def ready(self, minute: int) -> int:
        return bisect.bisect_right(self._requested_at, minute - self.lag)

    def scale_to(self, target: int, minute: int) -> None:
        current = len(self._requested_at)
        if target > current:
            self._requested_at.extend([minute] * (target - current))
            return
        for _ in range(current - target):
            # Not-yet-ready replicas are the most recently requested (one lag for all), so "not ready first,
            # then newest" is the tail of the list in both cases; the explicit split documents the rule.
            n_ready = self.ready(minute)
            if n_ready < len(self._requested_at):
                self._requested_at.pop()  # a booting one
            else:
                self._requested_at.pop()  # the newest ready one

    def requested_at(self) -> list[int]:
        return list(self._requested_at)


def simulate(
    demand: Sequence[float] | np.ndarray,
    planner: ScalingPlanner,
    *,
    capacity: float,
    lag: int,
    initial_replicas: int = 1,
    min_replicas: int = 1,
    progress: Any = None,
) -> SimulationResult:
    """Replay ``demand`` (one value per minute) strictly forward through ``planner``.

    At minute ``t`` the planner first observes minute ``t - 1`` and then sets its target; it is never given the
    demand array. ``progress``, if given, is called with the number of minutes done every 1,440 minutes.
    """
    _check_positive("capacity_per_replica", capacity)
    _check_non_negative_int("lag_minutes", lag)
    values = np.asarray(demand, dtype=float)
    if values.ndim != 1:
        raise CapacityInputError("demand", "must be one-dimensional")
    if (values < 0).any() or not np.isfinite(values).all():
        raise CapacityInputError("demand", "must be finite and >= 0")
    replicas = ReplicaSet(lag, initial_ready=max(initial_replicas, min_replicas))
    n = len(values)
    requested = np.zeros(n, dtype=np.int64)
    ready = np.zeros(n, dtype=np.int64)
    for t in range(n):
        if t > 0:
            planner.observe(float(values[t - 1]))
        target = max(int(planner.target(t, len(replicas), replicas.ready(t))), min_replicas)
        replicas.scale_to(target, t)
        requested[t] = len(replicas)
        ready[t] = replicas.ready(t)
        if progress is not None and (t + 1) % 1440 == 0:
            progress(t + 1)
    violations = int((values > capacity * ready).sum())
    return SimulationResult(
        requested=requested, ready=ready, violation_minutes=violations, replica_minutes=int(requested.sum())
    )


@dataclass
class BacktestReport:
    """Both planners on one trace, with the predictive planner's ratios to the reactive baseline."""

    minutes: int
    capacity_per_replica: float
    lag_minutes: int
    reactive: SimulationResult
    predictive: SimulationResult
    demand: np.ndarray
    start: datetime | None = None
    seconds: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)
    predictive_seconds: float = 0.0
    with_calendar: SimulationResult | None = None
    events: int = 0
    heuristic: SimulationResult | None = None

    def ratios(self, result: SimulationResult | None = None) -> tuple[float | None, float | None]:
        """(violation-minutes, replica-minutes) of ``result`` (default: the predictive run) over the reactive."""
        p, r = result or self.predictive, self.reactive
        viol = p.violation_minutes / r.violation_minutes if r.violation_minutes else None
        cost = p.replica_minutes / r.replica_minutes if r.replica_minutes else None
        return viol, cost

    def to_dict(self) -> dict[str, Any]:
        r, p = self.reactive, self.predictive
        viol_ratio, cost_ratio = self.ratios()
        calendar = None
        if self.with_calendar is not None:
            cv, cc = self.ratios(self.with_calendar)
            calendar = dict(self.with_calendar.summary(), events=self.events, violation_ratio=cv,
                            replica_minutes_ratio=cc)
        heuristic = None
        if self.heuristic is not None:
            hv, hc = self.ratios(self.heuristic)
            heuristic = dict(self.heuristic.summary(), violation_ratio=hv, replica_minutes_ratio=hc)
        return {
            "with_calendar": calendar,
            "seasonal_ratio_heuristic": heuristic,
            "predictive_replay_seconds": round(self.predictive_seconds, 2),
            "minutes": self.minutes,
            "start": self.start.isoformat() if self.start else None,
            "capacity_per_replica": self.capacity_per_replica,
            "lag_minutes": self.lag_minutes,
            "reactive": r.summary(),
            "predictive": p.summary(),
            "violation_ratio": viol_ratio,
            "replica_minutes_ratio": cost_ratio,
            "violation_reduction_pct": None if viol_ratio is None else round(100 * (1 - viol_ratio), 2),
            "extra_replica_minutes_pct": None if cost_ratio is None else round(100 * (cost_ratio - 1), 2),
            "seconds": round(self.seconds, 2),
            "predictive_config": self.config,
        }

    def schedule_frame(self) -> pd.DataFrame:
        """The predictive planner's schedule: ``minute, demand, requested, ready``."""
        if self.start is not None:
            minute = pd.date_range(self.start, periods=self.minutes, freq="min").strftime("%Y-%m-%dT%H:%M:%SZ")
        else:
            minute = np.arange(self.minutes)
        return pd.DataFrame(
            {
                "minute": minute,
                "demand": self.demand.astype(np.int64) if np.all(self.demand == np.round(self.demand)) else self.demand,
                "requested": self.predictive.requested,
                "ready": self.predictive.ready,
            }
        )


def run_backtest(
    demand: Sequence[float] | np.ndarray,
    *,
    capacity: float,
    lag: int,
    config: PredictiveConfig | None = None,
    start: datetime | None = None,
    progress: Any = None,
    events: Sequence[MinuteEvent] = (),
    heuristic: bool = False,
) -> BacktestReport:
    """Replay ``demand`` through the HPA baseline and the predictive planner under identical rules.

    With ``events`` (a campaign calendar on the trace's minute grid) the predictive planner is replayed twice,
    without and with the calendar, so that the calendar's effect is measured on the same trace. With
    ``heuristic`` the :class:`SeasonalRatioHeuristic` yardstick is replayed too (``BacktestReport.heuristic``).
    """
    import time

    values = np.asarray(demand, dtype=float)
    config = config or PredictiveConfig()
    t0 = time.perf_counter()
    reactive = simulate(values, HpaReactivePlanner(capacity), capacity=capacity, lag=lag)
    t1 = time.perf_counter()
    predictive = simulate(
        values, PredictivePlanner(capacity, lag, config), capacity=capacity, lag=lag, progress=progress
    )
    predictive_seconds = time.perf_counter() - t1
    with_calendar = None
    if events:
        with_calendar = simulate(
            values, PredictivePlanner(capacity, lag, config, events=events), capacity=capacity, lag=lag
        )
    heuristic_run = None
    if heuristic:
        heuristic_run = simulate(values, SeasonalRatioHeuristic(capacity, lag), capacity=capacity, lag=lag)
    cfg = asdict(config)
    return BacktestReport(
        heuristic=heuristic_run,
        minutes=len(values),
        capacity_per_replica=capacity,
        lag_minutes=lag,
        reactive=reactive,
        predictive=predictive,
        demand=values,
        start=start,
        seconds=time.perf_counter() - t0,
        config=cfg,
        predictive_seconds=predictive_seconds,
        with_calendar=with_calendar,
        events=len(events),
    )


# ---------------------------------------------------------------------------------------------------------------
# Live plan: replicas per time slot for the next hours
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CapacityPolicy:
    """Planning policy (built from Settings by :func:`policy_from_settings`).

    capacity_per_minute: requests one replica serves per minute at the p99 SLO (the checkout benchmark's
        measured requests/s x 60).
    lag_minutes: time from asking for a replica to it serving traffic (image pull, start, readiness).
    headroom: multiplier on the upper-quantile forecast.
    quantile: which upper quantile of minute demand to plan for.
    slot_minutes / horizon_minutes: the plan's grain and length.
    scale_in_slots: a lower slot count only takes effect after this many slots (conservative scale-in).
    """

    capacity_per_minute: float
    lag_minutes: int = 10
    headroom: float = 1.0
    quantile: float = 0.95
    target_utilization: float = 0.7
    slot_minutes: int = 15
    horizon_minutes: int = 180
    min_replicas: int = 1
    max_replicas: int = 50
    scale_in_slots: int = 1

    def validate(self) -> "CapacityPolicy":
        _check_positive("capacity_per_replica", self.capacity_per_minute)
        _check_non_negative_int("lag_minutes", self.lag_minutes)
        _check_positive("headroom", self.headroom)
        if not 0.5 <= self.quantile < 1:
            raise CapacityInputError("quantile", f"must be in [0.5, 1), got {self.quantile}")
        if not 0 < self.target_utilization <= 1:
            raise CapacityInputError("target_utilization", "must be in (0, 1]")
        if self.slot_minutes < 1 or self.horizon_minutes < self.slot_minutes:
            raise CapacityInputError("horizon_minutes", "must be at least one slot long")
        if self.min_replicas < 1 or self.max_replicas < self.min_replicas:
            raise CapacityInputError("max_replicas", "need 1 <= min_replicas <= max_replicas")
        _check_non_negative_int("scale_in_slots", self.scale_in_slots)
        return self


def policy_from_settings(settings: Any, **overrides: Any) -> CapacityPolicy:
    """A :class:`CapacityPolicy` from ``shopfloor.config.Settings`` (``capacity_*`` fields), with overrides."""
    values = dict(
        capacity_per_minute=settings.capacity_per_replica_rps * 60.0,
        lag_minutes=settings.capacity_lag_minutes,
        headroom=settings.capacity_headroom,
        quantile=settings.capacity_forecast_quantile,
        target_utilization=settings.capacity_target_utilization,
        slot_minutes=settings.capacity_slot_minutes,
        horizon_minutes=settings.capacity_horizon_minutes,
        min_replicas=settings.capacity_min_replicas,
        max_replicas=settings.capacity_max_replicas,
        scale_in_slots=settings.capacity_scale_in_slots,
    )
    values.update({k: v for k, v in overrides.items() if v is not None})
    return CapacityPolicy(**values).validate()


@dataclass(frozen=True)
class CapacitySlot:
    """Replicas that must be *ready* from ``start`` to ``end``; ask for them at ``request_at`` (= start - lag, but
    not before the plan was made: the first slots' replicas are asked for at once)."""

    start: datetime
    end: datetime
    request_at: datetime
    replicas: int
    forecast_mean_rpm: float
    forecast_upper_rpm: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "request_at": self.request_at.isoformat(),
            "replicas": self.replicas,
            "forecast_mean_rpm": round(self.forecast_mean_rpm, 2),
            "forecast_upper_rpm": round(self.forecast_upper_rpm, 2),
        }


@dataclass(frozen=True)
class PlannedEvent:
    """A calendar event the plan pre-scales for: replicas ready from ``start`` (asked for at ``request_at``).

    ``uplift_source`` is ``given`` (from the calendar), ``learned`` (median of the kind's past events in the
    history) or ``none`` (no uplift known: ``replicas`` is None and nothing is pre-scaled).
    """

    start: datetime
    end: datetime
    request_at: datetime
    kind: str
    uplift: float | None
    uplift_source: str
    baseline_rpm: float
    replicas: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "request_at": self.request_at.isoformat(),
            "kind": self.kind,
            "uplift": None if self.uplift is None else round(self.uplift, 3),
            "uplift_source": self.uplift_source,
            "baseline_rpm": round(self.baseline_rpm, 2),
            "replicas": self.replicas,
        }


@dataclass(frozen=True)
class CapacityPlan:
    """The next hours' replica schedule plus the reactive floor the live autoscaler keeps applying."""

    generated_at: datetime
    policy: CapacityPolicy
    slots: list[CapacitySlot]
    reactive_floor_now: int
    last_minute_requests: float
    observed_minutes: int
    forecast: pd.DataFrame = field(repr=False, compare=False, default_factory=pd.DataFrame)
    events: list[PlannedEvent] = field(default_factory=list)

    @property
    def peak_replicas(self) -> int:
        return max((s.replicas for s in self.slots), default=self.policy.min_replicas)

    def windows(self) -> list[CapacitySlot]:
        """Consecutive slots with the same replica count merged into one window (for cron triggers)."""
        merged: list[CapacitySlot] = []
        for slot in self.slots:
            if merged and merged[-1].replicas == slot.replicas and merged[-1].end == slot.start:
                prev = merged[-1]
                merged[-1] = CapacitySlot(
                    start=prev.start,
                    end=slot.end,
                    request_at=prev.request_at,
                    replicas=prev.replicas,
                    forecast_mean_rpm=max(prev.forecast_mean_rpm, slot.forecast_mean_rpm),
                    forecast_upper_rpm=max(prev.forecast_upper_rpm, slot.forecast_upper_rpm),
                )
            else:
                merged.append(slot)
        return merged

    def to_dict(self) -> dict[str, Any]:
        p = self.policy
        return {
            "generated_at": self.generated_at.isoformat(),
            "observed_minutes": self.observed_minutes,
            "last_minute_requests": self.last_minute_requests,
            "reactive_floor_now": self.reactive_floor_now,
            "peak_replicas": self.peak_replicas,
            "policy": {
                "capacity_per_replica_rpm": p.capacity_per_minute,
                "capacity_per_replica_rps": round(p.capacity_per_minute / 60.0, 3),
                "lag_minutes": p.lag_minutes,
                "headroom": p.headroom,
                "quantile": p.quantile,
                "target_utilization": p.target_utilization,
                "slot_minutes": p.slot_minutes,
                "horizon_minutes": p.horizon_minutes,
                "min_replicas": p.min_replicas,
                "max_replicas": p.max_replicas,
            },
            "slots": [s.to_dict() for s in self.slots],
            "windows": [s.to_dict() for s in self.windows()],
            "events": [e.to_dict() for e in self.events],
        }


def plan_capacity(
    series: pd.Series,
    policy: CapacityPolicy,
    *,
    now: datetime,
    history_days: int = 8,
    events: Sequence[CampaignEvent] = (),
) -> CapacityPlan:
    """Plan replicas per slot for ``policy.horizon_minutes`` after ``now`` from a per-minute request series.

    ``series`` is indexed by UTC minute (absent minutes are zero traffic); only minutes before ``now`` are used.
    Each slot gets ``ceil(max upper-quantile forecast in the slot x headroom / capacity)`` replicas, never below
    the HPA signal of the last observed minute for the first slot nor ``min_replicas``, capped at
    ``max_replicas``. A drop in the count is delayed by ``scale_in_slots`` slots.

    ``events`` (a campaign calendar) that have not ended by ``now`` are planned too (:func:`plan_events`): slots
    they overlap get at least the event's replicas, and the plan lists them (their KEDA cron triggers).
    """
    from ..forecast.traffic import to_minute_grid

    policy.validate()
    now = _utc_minute(now)
    if series.index.tz is None:
        series = series.tz_localize("UTC")
    series = series[series.index < pd.Timestamp(now)]
    if not series.empty:
        series = series[series.index >= pd.Timestamp(now) - pd.Timedelta(days=history_days)]
    if series.empty:
        series = pd.Series([0.0], index=pd.DatetimeIndex([pd.Timestamp(now) - pd.Timedelta(minutes=1)]))
    grid = to_minute_grid(series)
    # Minutes between the last recorded rollup and ``now`` had no traffic recorded: count them as zero.
    gap = int((pd.Timestamp(now) - grid.index[-1]) / pd.Timedelta(minutes=1)) - 1
    values = np.concatenate([grid.to_numpy(dtype=float), np.zeros(max(gap, 0))])

    forecaster = OnlineTrafficForecaster(OnlineForecastConfig(quantile=policy.quantile))
    horizon = policy.horizon_minutes
    past_forecasts: list[tuple[int, np.ndarray]] = []
    for i, v in enumerate(values):
        if i % 10 == 0 and i >= forecaster.config.level_minutes:
            forecaster.forecast(15)  # builds the short-horizon error pool the upper quantile is read from
        if i % 30 == 0 and i >= MINUTES_PER_DAY and i + 1 < len(values):
            past_forecasts.append((i, forecaster.forecast(horizon).mean))
        forecaster.observe(v)
    fc = forecaster.forecast(horizon + policy.lag_minutes)
    upper = _horizon_aware_upper(fc, values, past_forecasts, policy)
    last = float(values[-1])
    tu = Fraction(policy.target_utilization).limit_denominator(1000)
    floor_now = hpa_desired(last, 1, policy.capacity_per_minute, tu)

    slots: list[CapacitySlot] = []
    raw_counts: list[int] = []
    for start_k in range(0, policy.horizon_minutes, policy.slot_minutes):
        end_k = min(start_k + policy.slot_minutes, policy.horizon_minutes)
        slot_upper = float(upper[start_k:end_k].max())
        mean = float(fc.mean[start_k:end_k].max())
        need = math.ceil(slot_upper * policy.headroom / policy.capacity_per_minute - 1e-9)
        if start_k == 0:
            need = max(need, floor_now)
        raw_counts.append(min(max(need, policy.min_replicas), policy.max_replicas))
        start = now + timedelta(minutes=start_k)
        slots.append(
            CapacitySlot(
                start=start,
                end=now + timedelta(minutes=end_k),
                request_at=max(now, start - timedelta(minutes=policy.lag_minutes)),  # never before the plan
                replicas=0,
                forecast_mean_rpm=mean,
                forecast_upper_rpm=slot_upper,
            )
        )
    held = []
    for i, count in enumerate(raw_counts):
        window = raw_counts[max(0, i - policy.scale_in_slots) : i + 1]
        held.append(max(window))
    planned = plan_events(values, now, events, policy) if events else []
    for ev in planned:
        if ev.replicas is None:
            continue
        for i, slot in enumerate(slots):
            if slot.start < ev.end and slot.end > ev.start:
                held[i] = max(held[i], ev.replicas)
    slots = [
        CapacitySlot(s.start, s.end, s.request_at, n, s.forecast_mean_rpm, s.forecast_upper_rpm)
        for s, n in zip(slots, held)
    ]
    return CapacityPlan(
        events=planned,
        generated_at=now,
        policy=policy,
        slots=slots,
        reactive_floor_now=floor_now,
        last_minute_requests=last,
        observed_minutes=len(values),
        forecast=fc.to_frame(now),
    )


def plan_events(
    values: np.ndarray, now: datetime, events: Sequence[CampaignEvent], policy: CapacityPolicy
) -> list[PlannedEvent]:
    """Replicas for each calendar event that has not ended by ``now``.

    ``values`` are the per-minute counts of the minutes just before ``now``. Baseline: the median over the last 7
    days of the mean traffic in the hour before the event's clock time (the hour before an event is how its
    uplift is measured, see :mod:`shopfloor.planning.campaigns`), or the last hour when no day has it. Replicas:
    ``ceil(baseline x uplift x headroom / C)`` within ``[min_replicas, max_replicas]``.
    """
    n = len(values)
    grid_start = now - timedelta(minutes=n)
    on_grid = events_on_grid(events, grid_start, n + 10 * 365 * MINUTES_PER_DAY)
    past = [e for e in on_grid if e.end <= n]
    out: list[PlannedEvent] = []
    for event in events:
        if event.end <= now:
            continue
        g = events_on_grid([event], grid_start, n + 10 * 365 * MINUTES_PER_DAY)
        if not g:
            continue
        ev = g[0]
        if event.uplift is not None:
            uplift, source = event.uplift, "given"
        else:
            uplift = learn_uplift(values, past, event.kind)
            source = "learned" if uplift is not None else "none"
        hours = []
        for day in range(1, 8):
            lo = ev.start - day * MINUTES_PER_DAY - 60
            if 0 <= lo and lo + 60 <= n:
                hours.append(float(values[lo : lo + 60].mean()))
        baseline = float(np.median(hours)) if hours else float(values[-60:].mean()) if n else 0.0
        replicas = None
        if uplift is not None:
            need = math.ceil(baseline * uplift * policy.headroom / policy.capacity_per_minute - 1e-9)
            replicas = min(max(need, policy.min_replicas), policy.max_replicas)
        out.append(
            PlannedEvent(
                start=event.start,
                end=event.end,
                request_at=event.start - timedelta(minutes=policy.lag_minutes),
                kind=event.kind,
                uplift=uplift,
                uplift_source=source,
                baseline_rpm=baseline,
                replicas=replicas,
            )
        )
    return out


def _horizon_aware_upper(
    fc: TrafficForecast,
    values: np.ndarray,
    past_forecasts: list[tuple[int, np.ndarray]],
    policy: CapacityPolicy,
) -> np.ndarray:
    """Upper band per minute ahead that widens with the horizon.

    The forecaster's own band is calibrated on its first 15 minutes; hours ahead the level has drifted more. The
    replay kept a forecast every 30 minutes, so the standardised errors of those at each slot's horizons are
    known: their ``quantile`` gives that slot's band (never narrower than the short-horizon one). Slots with
    fewer than 50 scored errors keep the short-horizon band.
    """
    upper = fc.upper.copy()
    if not past_forecasts:
        return upper
    n = len(values)
    for start_k in range(0, policy.horizon_minutes, policy.slot_minutes):
        end_k = min(start_k + policy.slot_minutes, policy.horizon_minutes)
        errs = []
        for origin, mean in past_forecasts:
            lo, hi = origin + start_k, min(origin + end_k, n)
            if hi <= lo:
                continue
            m = mean[start_k : start_k + (hi - lo)]
            errs.append((values[lo:hi] - m) / np.sqrt(m + 1.0))
        if not errs:
            continue
        pool = np.concatenate(errs)
        if len(pool) < 50:
            continue
        z = max(float(np.quantile(pool, policy.quantile)), 0.0)
        m = fc.mean[start_k:end_k]
        upper[start_k:end_k] = np.maximum(upper[start_k:end_k], m + z * np.sqrt(m + 1.0))
    return upper


def _utc_minute(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise CapacityInputError("now", "must be timezone-aware (UTC)")
    return value.astimezone(timezone.utc).replace(second=0, microsecond=0)


# ---------------------------------------------------------------------------------------------------------------
# Cache-warm list
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WarmUrlTemplates:
    """URL templates for the cache-warm list. ``{sku}`` and ``{country}`` are filled in (URL-encoded); a product
    URL gets ``default_country``."""

    product: str = "/v1/products/{sku}?country={country}"
    promise: str = "/v1/promise?sku={sku}&country={country}"
    default_country: str = "US"


@dataclass(frozen=True)
class WarmEntry:
    url: str
    kind: str
    sku: str
    region: str | None
    expected_demand: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cache_warm_list(
    demand_forecast: pd.DataFrame,
    *,
    window_start: datetime,
    window_end: datetime,
    top_n: int = 50,
    value_col: str = "mean",
    templates: WarmUrlTemplates | None = None,
) -> list[WarmEntry]:
    """The product and promise URLs expected to be hottest in ``[window_start, window_end)``.

    ``demand_forecast`` is a long forecast frame: ``unique_id`` is ``sku`` or ``sku/region``, ``ds`` the period,
    and ``value_col`` (default ``mean``) the expected demand. Demand is summed over the window; the ``top_n``
    SKUs get their product URL, and each of their hottest (sku, region) pairs a promise URL, hottest first.
    """
    from urllib.parse import quote

    templates = templates or WarmUrlTemplates()
    if top_n < 1:
        raise CapacityInputError("top_n", "must be at least 1")
    for col in ("unique_id", "ds", value_col):
        if col not in demand_forecast.columns:
            raise CapacityInputError(col, f"missing column {col!r} in the demand forecast frame")
    if demand_forecast.empty:
        return []
    frame = demand_forecast[["unique_id", "ds", value_col]].copy()
    ds = pd.to_datetime(frame["ds"])
    if ds.dt.tz is None:
        ds = ds.dt.tz_localize("UTC")
    frame["ds"] = ds
    start, end = pd.Timestamp(window_start), pd.Timestamp(window_end)
    frame = frame[(frame["ds"] >= start) & (frame["ds"] < end)]
    if frame.empty:
        return []
    parts = frame["unique_id"].astype(str).str.split("/", n=1, expand=True)
    frame["sku"] = parts[0]
    frame["region"] = parts[1] if parts.shape[1] > 1 else None
    frame[value_col] = pd.to_numeric(frame[value_col], errors="coerce").fillna(0).clip(lower=0)
    per_pair = frame.groupby(["sku", "region"], dropna=False)[value_col].sum().reset_index()
    per_sku = per_pair.groupby("sku")[value_col].sum().sort_values(ascending=False, kind="stable")
    entries: list[WarmEntry] = []
    for sku, total in per_sku.head(top_n).items():
        if total <= 0:
            break
        url = templates.product.format(sku=quote(str(sku), safe=""),
                                      country=quote(templates.default_country.upper(), safe=""))
        entries.append(WarmEntry(url, "product", sku, None, float(total)))
    hot = per_pair[per_pair["sku"].isin(per_sku.head(top_n).index)].sort_values(
        [value_col, "sku"], ascending=[False, True], kind="stable"
    )
    for row in hot.head(top_n).itertuples(index=False):
        value = float(getattr(row, value_col))
        if value <= 0:
            break
        region = row.region if isinstance(row.region, str) and row.region else None
        country = region if region and len(region) == 2 and region.isalpha() else templates.default_country
        url = templates.promise.format(sku=quote(str(row.sku), safe=""), country=quote(country.upper(), safe=""))
        entries.append(WarmEntry(url, "promise", row.sku, region, value))
    entries.sort(key=lambda e: (-e.expected_demand, e.kind, e.url))
    return entries


def demand_frame_from_recent_counts(
    counts: Mapping[str, float] | pd.DataFrame,
    *,
    window_start: datetime,
    window_minutes: int,
    lookback_minutes: int,
) -> pd.DataFrame:
    """Fallback "forecast" when no demand model has run: recent order counts scaled to the next window.

    ``counts`` maps ``unique_id`` (``sku`` or ``sku/region``) to units ordered in the last ``lookback_minutes``,
    or is a frame with ``unique_id`` and ``count``. Returns a long frame (``unique_id``, ``ds``, ``mean``) with one
    row per id at ``window_start``: the recent rate times the window length (a naive, level-only forecast).
    """
    if lookback_minutes <= 0 or window_minutes <= 0:
        raise CapacityInputError("lookback_minutes", "lookback and window must be positive")
    if isinstance(counts, pd.DataFrame):
        for col in ("unique_id", "count"):
            if col not in counts.columns:
                raise CapacityInputError(col, f"missing column {col!r} in recent counts")
        items: Iterable[tuple[str, float]] = zip(counts["unique_id"].astype(str), counts["count"].astype(float))
    else:
        items = ((str(k), float(v)) for k, v in counts.items())
    rows = [
        {"unique_id": uid, "ds": pd.Timestamp(window_start), "mean": c * window_minutes / lookback_minutes}
        for uid, c in items
    ]
    return pd.DataFrame(rows, columns=["unique_id", "ds", "mean"])


__all__ = [
    "BacktestReport",
    "CapacityInputError",
    "CapacityPlan",
    "CapacityPolicy",
    "CapacitySlot",
    "HpaReactivePlanner",
    "PredictiveConfig",
    "PlannedEvent",
    "PredictivePlanner",
    "SeasonalRatioHeuristic",
    "plan_events",
    "ReplicaSet",
    "SimulationResult",
    "WarmEntry",
    "WarmUrlTemplates",
    "cache_warm_list",
    "demand_frame_from_recent_counts",
    "hpa_desired",
    "plan_capacity",
    "policy_from_settings",
    "quantile_column",
    "run_backtest",
    "simulate",
]
