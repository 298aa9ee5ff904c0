"""Pure promise rules: status, working days and cutoffs, degradation."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from shopfloor.domain.promise import (
    REASON_BACKLOG,
    REASON_LANE_FALLBACK,
    REASON_MISSED_PACK_TARGET,
    REASON_STALE_FEED,
    BusinessCalendar,
    DegradationPolicy,
    LiveSignals,
    PromiseStatus,
    adapt_level,
    availability_status,
    degrade,
    ship_date,
)


def _signals(**kw):
    base = dict(feed_age_h=1.0, backlog=0, handoff_rate_per_h=1.0, normal_processing_h=24.0, missed_pack_share=0.0)
    base.update(kw)
    return LiveSignals(**base)


def test_status_is_in_stock_limited_backorder_or_unavailable():
    assert availability_status(50, 1, 5, False) is PromiseStatus.IN_STOCK
    assert availability_status(5, 1, 5, False) is PromiseStatus.LIMITED
    assert availability_status(0, 1, 5, True) is PromiseStatus.BACKORDER
    assert availability_status(0, 1, 5, False) is PromiseStatus.UNAVAILABLE
    with pytest.raises(ValueError):
        availability_status(5, 0, 5, False)


def test_orders_after_the_cutoff_ship_the_next_working_day():
    cal = BusinessCalendar(cutoff_hour=14)
    fri_morning = datetime(2024, 5, 3, 9, tzinfo=timezone.utc)
    fri_evening = datetime(2024, 5, 3, 18, tzinfo=timezone.utc)
    assert cal.first_ship_day(fri_morning) == date(2024, 5, 3)
    assert cal.first_ship_day(fri_evening) == date(2024, 5, 6)  # Monday


def test_multi_day_processing_counts_working_days_and_skips_holidays():
    cal = BusinessCalendar(cutoff_hour=14, holidays=frozenset({date(2024, 5, 7)}))
    mon = datetime(2024, 5, 6, 9, tzinfo=timezone.utc)
    assert ship_date(cal, mon, 4) == date(2024, 5, 6)
    assert ship_date(cal, mon, 6) == date(2024, 5, 8)  # ready after the cutoff; Tuesday is a holiday
    assert ship_date(cal, mon, 24) == date(2024, 5, 8)


def test_stale_feed_removes_fast_claims_widens_and_flags():
    adj = degrade(_signals(feed_age_h=30), DegradationPolicy(stale_feed_after_h=24, stale_widen_days=2))
    assert REASON_STALE_FEED in adj.reasons and adj.provisional
    assert adj.min_ship_workdays >= 2 and adj.extra_delivery_days >= 2
    fresh = degrade(_signals(feed_age_h=2), DegradationPolicy(stale_feed_after_h=24))
    assert REASON_STALE_FEED not in fresh.reasons and fresh.extra_delivery_days == 0


def test_a_warehouse_that_never_reported_counts_as_stale():
    assert REASON_STALE_FEED in degrade(_signals(feed_age_h=None), DegradationPolicy()).reasons


def test_growing_backlog_widens_processing_by_the_wait_it_implies():
    # 120 orders waiting at 1 handoff/hour = 120 h of wait against a normal 24 h.
    adj = degrade(_signals(backlog=120), DegradationPolicy(backlog_ratio_trigger=1.5))
    assert REASON_BACKLOG in adj.reasons
    assert adj.extra_processing_h == pytest.approx(96.0)
    calm = degrade(_signals(backlog=20), DegradationPolicy(backlog_ratio_trigger=1.5))
    assert REASON_BACKLOG not in calm.reasons and calm.extra_processing_h == 0


def test_missed_pack_targets_widen_the_promise():
    adj = degrade(_signals(missed_pack_share=0.4), DegradationPolicy(missed_pack_trigger=0.25))
    assert REASON_MISSED_PACK_TARGET in adj.reasons and adj.extra_delivery_days >= 1


def test_lane_fallback_is_flagged_and_provisional():
    adj = degrade(_signals(lane_fallback=True), DegradationPolicy())
    assert REASON_LANE_FALLBACK in adj.reasons and adj.provisional


def test_adaptive_level_rises_after_misses_and_settles_at_the_target_miss_rate():
    level = 0.9
    level = adapt_level(level, 0.9, True, 0.01)
    assert level > 0.9
    # With 10% misses the level is stationary.
    level = 0.9
    for i in range(1000):
        level = adapt_level(level, 0.9, i % 10 == 0, 0.01)
    assert level == pytest.approx(0.9, abs=0.02)
