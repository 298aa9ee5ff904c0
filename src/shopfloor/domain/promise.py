"""Delivery promises: availability status, business-day and cutoff arithmetic, degradation rules.

Pure: the statistics that feed these rules come from ``shopfloor.fulfillment``; the engine that combines them lives
in ``shopfloor.promise``. Durations are hours (floats); dates are ``datetime.date`` in the warehouse's calendar (UTC
here, as every timestamp in the system is UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from enum import StrEnum
from typing import Iterable


class PromiseStatus(StrEnum):
    IN_STOCK = "in_stock"
    LIMITED = "limited"  # available, but few units left after this purchase
    BACKORDER = "backorder"  # not on hand now; an open purchase order gives an expected date
    UNAVAILABLE = "unavailable"  # not on hand and no known incoming stock


# Reason codes carried on a promise (stable strings: clients may key on them).
REASON_STALE_FEED = "stale_feed"
REASON_BACKLOG = "growing_backlog"
REASON_MISSED_PACK_TARGET = "missed_pack_target"
REASON_LANE_FALLBACK = "lane_fallback"
REASON_PROCESSING_FALLBACK = "processing_fallback"
REASON_NO_HISTORY = "no_history"
REASON_AFTER_CUTOFF = "after_cutoff"
REASON_BACKORDER_ETA = "backorder_eta"
REASON_CALIBRATION = "calibration_adjusted"
REASON_SURGE = "volume_surge"
REASON_DRIFT = "recent_deliveries_slower"  # or faster: the median-ETA check says the statistics lag
REASON_IN_FLIGHT = "in_flight_slower"  # orders still on their way already run past what the promise assumed


def availability_status(available: int, qty: int, limited_threshold: int, backorder_known: bool) -> PromiseStatus:
    """Status for ``qty`` units when ``available`` can ship now.

    ``limited`` when the purchase leaves fewer than ``limited_threshold`` units; ``backorder`` only when incoming
    stock with an expected date is known, otherwise ``unavailable``.
    """
    if qty <= 0:
        raise ValueError("qty must be positive")
    if available >= qty:
        return PromiseStatus.LIMITED if available - qty < limited_threshold else PromiseStatus.IN_STOCK
    return PromiseStatus.BACKORDER if backorder_known else PromiseStatus.UNAVAILABLE


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """Working days of a warehouse (weekday numbers, Monday=0) and holidays; cutoff is the last order hour that
    still ships the same working day."""

    workdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})
    holidays: frozenset[date] = frozenset()
    cutoff_hour: float = 14.0

    def is_workday(self, d: date) -> bool:
        return d.weekday() in self.workdays and d not in self.holidays

    def next_workday(self, d: date) -> date:
        """``d`` itself when it is a working day, else the next one."""
        if not self.workdays:
            raise ValueError("a calendar needs at least one working day")
        while not self.is_workday(d):
            d += timedelta(days=1)
        return d

    def add_workdays(self, d: date, n: int) -> date:
        """The ``n``-th working day after ``d`` (``n=0`` gives ``next_workday(d)``)."""
        d = self.next_workday(d)
        for _ in range(max(0, n)):
            d = self.next_workday(d + timedelta(days=1))
        return d

    def first_ship_day(self, at: datetime) -> date:
        """The first working day an order placed at ``at`` can leave: today before the cutoff, else the next."""
        at = at.astimezone(timezone.utc)
        d = at.date()
        hour = at.hour + at.minute / 60 + at.second / 3600
        if self.is_workday(d) and hour < self.cutoff_hour:
            return d
        return self.next_workday(d + timedelta(days=1))


def ship_date(calendar: BusinessCalendar, at: datetime, processing_h: float) -> date:
    """The day an order placed at ``at`` leaves the warehouse when processing takes ``processing_h`` hours: the
    parcel is ready at ``at + processing_h`` and goes out that working day if it is ready before the cutoff, else
    on the next working day."""
    ready = at + timedelta(hours=max(processing_h, 0.0))
    return calendar.first_ship_day(ready)


def end_of_day(d: date) -> datetime:
    return datetime.combine(d, time(23, 59, 59), tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class DegradationPolicy:
    """When live signals say the statistics cannot be trusted as they are, and by how much to widen.

    ``stale_feed_after_h``: a warehouse whose last event is older than this gets no same-day or next-day claim
    (``min_stale_ship_days``), ``stale_widen_days`` extra days and the ``stale_feed`` flag (``None`` disables it).
    ``backlog_ratio_trigger``: backlog-implied waiting (backlog / recent handoff rate) above this many times the
    normal processing median widens processing by the excess. ``missed_pack_trigger``: a recent share of orders
    over the pack target above this widens by ``missed_pack_widen_days``. ``fallback_widen_days`` is added when the
    lane had to fall back to a broader region.
    """

    stale_feed_after_h: float | None = 24.0
    stale_widen_days: int = 2
    min_stale_ship_days: int = 2
    backlog_ratio_trigger: float = 1.5
    max_backlog_widen_h: float = 24.0 * 10
    missed_pack_trigger: float = 0.25
    missed_pack_widen_days: int = 1
    fallback_widen_days: int = 0


@dataclass(frozen=True, slots=True)
class LiveSignals:
    """What the fulfillment statistics say about one warehouse right now."""

    feed_age_h: float | None  # None: the warehouse has never sent an event
    backlog: int
    handoff_rate_per_h: float  # recent throughput
    normal_processing_h: float  # recency-weighted median processing time
    missed_pack_share: float  # recent share of orders handed off later than the pack target
    lane_fallback: bool = False
    processing_fallback: bool = False


@dataclass(frozen=True, slots=True)
class Adjustment:
    """The outcome of the degradation rules: extra hours of processing, extra days on delivery, ship floor."""

    extra_processing_h: float = 0.0
    extra_delivery_days: int = 0
    min_ship_workdays: int = 0
    provisional: bool = False
    reasons: tuple[str, ...] = field(default_factory=tuple)


def degrade(signals: LiveSignals, policy: DegradationPolicy) -> Adjustment:
    """Apply every degradation rule to one warehouse's live signals."""
    reasons: list[str] = []
    extra_h = 0.0
    extra_days = 0
    min_ship = 0
    provisional = False
    stale_after = policy.stale_feed_after_h
    if stale_after is not None and (signals.feed_age_h is None or signals.feed_age_h > stale_after):
        reasons.append(REASON_STALE_FEED)
        min_ship = max(min_ship, policy.min_stale_ship_days)
        extra_days += policy.stale_widen_days
        provisional = True
    wait_h = backlog_wait_h(signals.backlog, signals.handoff_rate_per_h)
    normal = max(signals.normal_processing_h, 1.0)
    if wait_h is not None and wait_h > policy.backlog_ratio_trigger * normal:
        extra_h += min(wait_h - normal, policy.max_backlog_widen_h)
        reasons.append(REASON_BACKLOG)
    if signals.missed_pack_share > policy.missed_pack_trigger:
        extra_days += policy.missed_pack_widen_days
        reasons.append(REASON_MISSED_PACK_TARGET)
    if signals.lane_fallback:
        extra_days += policy.fallback_widen_days
        reasons.append(REASON_LANE_FALLBACK)
        provisional = True
    if signals.processing_fallback:
        reasons.append(REASON_PROCESSING_FALLBACK)
    return Adjustment(extra_h, extra_days, min_ship, provisional, tuple(reasons))


def backlog_wait_h(backlog: int, handoff_rate_per_h: float) -> float | None:
    """Little's law: how long the current backlog takes to clear at the recent handoff rate (None: no rate)."""
    if backlog <= 0:
        return 0.0
    if handoff_rate_per_h <= 0:
        return None
    return backlog / handoff_rate_per_h


def adapt_level(level: float, target: float, missed: bool, gamma: float, lo: float = 0.5, hi: float = 0.995) -> float:
    """Adaptive conformal step: raise the quantile level after a miss, lower it a little after a hit.

    In the long run the miss rate converges to ``1 - target`` whatever the drift in the data (Gibbs & Candès 2021).
    """
    err = 1.0 if missed else 0.0
    level = level + gamma * (err - (1.0 - target))
    return min(hi, max(lo, level))


def days_between(start: datetime, end_day: date) -> int:
    return (end_day - start.astimezone(timezone.utc).date()).days


def merge_reasons(*groups: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for g in groups:
        for r in g:
            seen.setdefault(r, None)
    return list(seen)
