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

from ..forecast.traffic import (
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


@dataclass(frozen=True)
class PredictiveConfig:
    """Policy of :class:`PredictivePlanner` (all configuration, none buried in code).

    headroom: multiplier on the upper-quantile forecast before dividing by per-replica capacity.
    refit_every: minutes between scheduled re-forecasts (a surge above the upper forecast re-forecasts at once).
    scale_in_window: minutes a lower target must persist before replicas are removed (conservative scale-in).
    surge_factor: when the last minute exceeds ``surge_factor x`` the upper forecast, the planner also plans
        for that minute's rate continuing to grow at the recent pace for ``lag`` minutes (flash crowds).
    forecast: knobs of the online traffic forecaster.
    """

    headroom: float = 1.0
    refit_every: int = 10
    scale_in_window: int = 5
    surge_factor: float = 2.0
    forecast: OnlineForecastConfig = field(default_factory=lambda: OnlineForecastConfig(quantile=0.95))


class PredictivePlanner:
    """Upper-quantile forecast planner with the HPA signal as its floor (see the module docstring)."""

    def __init__(
        self,
        capacity: float,
        lag: int,
        config: PredictiveConfig | None = None,
        *,
        target_utilization: Fraction | float = Fraction(7, 10),
    ) -> None:
        _check_positive("capacity_per_replica", capacity)
        _check_non_negative_int("lag_minutes", lag)
        self.capacity = capacity
        self.lag = lag
        self.config = config or PredictiveConfig()
        if self.config.refit_every < 1:
            raise CapacityInputError("refit_every", "must be at least 1 minute")
        if self.config.scale_in_window < 1:
            raise CapacityInputError("scale_in_window", "must be at least 1 minute")
        _check_positive("headroom", self.config.headroom)
        self.target_utilization = Fraction(target_utilization).limit_denominator(1000)
        self.forecaster = OnlineTrafficForecaster(self.config.forecast)
        self._fc: TrafficForecast | None = None
        self._last: float | None = None
        self._prev: deque[float] = deque(maxlen=6)
        self._surge = False
        self._targets: deque[int] = deque(maxlen=self.config.scale_in_window)
        self.forecasts_made = 0

    def observe(self, demand: float) -> None:
        fc = self._fc
        if fc is not None:
            k = self.forecaster.observed - fc.origin
            if 0 <= k < len(fc.upper) and demand > fc.upper[k] * self.config.surge_factor:
                self._surge = True
        self.forecaster.observe(demand)
        self._last = demand
        self._prev.append(demand)

    def _horizon(self) -> int:
        return self.config.refit_every + self.lag + 1

    def _need_from_forecast(self, minute: int) -> int:
        n = self.forecaster.observed
        fc = self._fc
        if fc is None or self._surge or n - fc.origin >= self.config.refit_every:
            fc = self._fc = self.forecaster.forecast(self._horizon())
            self.forecasts_made += 1
        k0 = n - fc.origin
        window = fc.upper[k0 : k0 + self.lag + 1]
        peak = float(window.max()) if len(window) else 0.0
        if self._surge and self._last is not None and len(self._prev) >= 2:
            # A flash crowd: the forecast was beaten. Plan for the last minute's rate continuing to climb at the
            # pace of the last few minutes until freshly requested replicas are ready.
            oldest = self._prev[0]
            steps = max(len(self._prev) - 1, 1)
            slope = max((self._last - oldest) / steps, 0.0)
            peak = max(peak, self._last + slope * (self.lag + 1))
        self._surge = False
        return math.ceil(peak * self.config.headroom / self.capacity - 1e-9)

    def target(self, minute: int, requested: int, ready: int) -> int:
        if self._last is None:
            return requested
        floor = hpa_desired(self._last, ready, self.capacity, self.target_utilization)
        predicted = self._need_from_forecast(minute)
        raw = max(floor, predicted, 1)
        self._targets.append(raw)
        if raw >= requested:
            return raw
        return min(requested, max(self._targets))


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

    def to_dict(self) -> dict[str, Any]:
        r, p = self.reactive, self.predictive
        viol_ratio = p.violation_minutes / r.violation_minutes if r.violation_minutes else None
        cost_ratio = p.replica_minutes / r.replica_minutes if r.replica_minutes else None
        return {
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
) -> BacktestReport:
    """Replay ``demand`` through the HPA baseline and the predictive planner under identical rules."""
    import time

    values = np.asarray(demand, dtype=float)
    config = config or PredictiveConfig()
    t0 = time.perf_counter()
    reactive = simulate(values, HpaReactivePlanner(capacity), capacity=capacity, lag=lag)
    predictive = simulate(
        values, PredictivePlanner(capacity, lag, config), capacity=capacity, lag=lag, progress=progress
    )
    cfg = asdict(config)
    return BacktestReport(
        minutes=len(values),
        capacity_per_replica=capacity,
        lag_minutes=lag,
        reactive=reactive,
        predictive=predictive,
        demand=values,
        start=start,
        seconds=time.perf_counter() - t0,
        config=cfg,
    )
