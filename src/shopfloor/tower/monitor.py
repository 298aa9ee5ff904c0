"""Anomaly detection on the funnel: per-minute metrics from the rollups, one streaming detector each.

``FunnelMonitor.tick()`` judges every complete minute it has not seen yet (oldest first), stores alerts in the
``alerts`` table and remembers each metric's latest score, which :class:`MonitorSignals` exposes to rules as
``anomaly_score_<metric>``. On its first tick it replays ``warmup_minutes`` of history to learn the baseline
(alerts from the replay are not stored), so a restarted worker does not start blind.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Callable, Mapping

from ..domain.clock import Clock
from ..store.tower import TowerRepository
from .anomaly import Alert, SeasonalRobustDetector, StreamingDetector
from .funnel import checkout_success_rate, minute_of

MinuteRows = Mapping[str, Mapping[str, float]]


def _count(stage: str) -> Callable[[MinuteRows], float | None]:
    return lambda rows: float(rows.get(stage, {}).get("count", 0))


def _ratio(num: str, den: str) -> Callable[[MinuteRows], float | None]:
    def f(rows: MinuteRows) -> float | None:
        d = rows.get(den, {}).get("count", 0)
        return rows.get(num, {}).get("count", 0) / d if d else None

    return f


def _latency(stage: str) -> Callable[[MinuteRows], float | None]:
    def f(rows: MinuteRows) -> float | None:
        r = rows.get(stage, {})
        return r["latency_ms_sum"] / r["latency_count"] if r.get("latency_count") else None

    return f


def _checkout_success(rows: MinuteRows) -> float | None:
    def n(stage: str) -> float:
        return rows.get(stage, {}).get("count", 0)

    return checkout_success_rate(n("checkout_attempt"), n("checkout_succeeded"), n("checkout_refused"))


DEFAULT_METRICS: dict[str, Callable[[MinuteRows], float | None]] = {
    "traffic": _count("page_view"),
    "product_views": _count("product_view"),
    "add_to_cart_rate": _ratio("add_to_cart", "product_view"),
    "checkout_success_rate": _checkout_success,
    "checkout_latency_ms": _latency("checkout_attempt"),
    "page_load_ms": _latency("page_view"),
}


class FunnelMonitor:
    def __init__(self, repo: TowerRepository, clock: Clock, *,
                 metrics: Mapping[str, Callable[[MinuteRows], float | None]] | None = None,
                 detector_factory: Callable[[str], StreamingDetector] | None = None,
                 warmup_minutes: int = 7 * 24 * 60) -> None:
        self.repo, self.clock = repo, clock
        self.metrics = dict(metrics or DEFAULT_METRICS)
        factory = detector_factory or (lambda name: SeasonalRobustDetector(name))
        self.detectors = {name: factory(name) for name in self.metrics}
        self.warmup_minutes = warmup_minutes
        self.last_minute: datetime | None = None
        self.scores: dict[str, float] = {}

    def tick(self) -> list[Alert]:
        """Judge every complete minute since the last tick; store and return the alerts."""
        upto = minute_of(self.clock.now())  # the current minute is still filling up
        warming = self.last_minute is None
        since = upto - timedelta(minutes=self.warmup_minutes) if warming else self.last_minute + timedelta(minutes=1)
        if since >= upto:
            return []
        by_minute: dict[datetime, dict[str, dict]] = defaultdict(dict)
        for row in self.repo.funnel_series(since, upto):
            by_minute[row["minute"]][row["stage"]] = row
        alerts: list[Alert] = []
        if warming and not by_minute:
            # No history at all: start judging from now on; a week of invented zeros would teach nothing.
            self.last_minute = upto - timedelta(minutes=1)
            return []
        minute = min(by_minute) if warming else since
        while minute < upto:
            rows = by_minute.get(minute, {})
            for name, metric in self.metrics.items():
                value = metric(rows)
                if value is None:
                    continue
                det = self.detectors[name]
                alert = det.update(minute, value)
                score = getattr(det, "last_score", None)
                if score is not None:
                    self.scores[name] = score
                if alert is not None and not warming:
                    alerts.append(alert)
            minute += timedelta(minutes=1)
        self.last_minute = upto - timedelta(minutes=1)
        for a in alerts:
            self.repo.add_alert(at=a.timestamp, source="detector", metric=a.metric, kind=a.kind,
                                observed=a.observed, expected=a.expected, lower=a.lower, upper=a.upper,
                                score=a.score,
                                message=f"{a.metric} {a.observed:.4g} outside [{a.lower:.4g}, {a.upper:.4g}]")
        return alerts


class MonitorSignals:
    """``anomaly_score_<metric>`` signals from a monitor's latest scores."""

    def __init__(self, monitor: FunnelMonitor) -> None:
        self.monitor = monitor

    def values(self, names: set[str]) -> dict[str, float | None]:
        prefix = "anomaly_score_"
        return {n: self.monitor.scores.get(n[len(prefix):]) if n.startswith(prefix) else None for n in names}
