"""The live planner answers what the backtested planner asks for, minute by minute."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from shopfloor.planning.campaigns import CampaignEvent, events_on_grid
from shopfloor.planning.capacity import CapacityInputError, CapacityPolicy, PredictivePlanner, simulate
from shopfloor.planning.capacity_live import LivePlanner

ANCHOR = datetime(2026, 11, 20, 0, 0, tzinfo=timezone.utc)
CAPACITY = 50.0


def _trace(days: int = 3, seed: int = 3) -> np.ndarray:
    """A daily cycle with a surge on the afternoon of the last day."""
    rng = np.random.default_rng(seed)
    t = np.arange(days * 1440)
    rate = 300 + 250 * np.sin(2 * np.pi * (t % 1440) / 1440 - 1.2)
    rate[(days - 1) * 1440 + 900 : (days - 1) * 1440 + 990] *= 4
    return rng.poisson(np.clip(rate, 5, None)).astype(float)


def _policy(**kw) -> CapacityPolicy:
    return CapacityPolicy(capacity_per_minute=CAPACITY, lag_minutes=10, min_replicas=1, max_replicas=500, **kw)


def _backtest_requests(values: np.ndarray, events=()) -> np.ndarray:
    planner = PredictivePlanner(CAPACITY, 10, events=events)
    return simulate(np.append(values, 0.0), planner, capacity=CAPACITY, lag=10).requested


def test_every_minute_the_live_answer_is_the_backtests_request():
    values = _trace()
    expected = _backtest_requests(values)
    live = LivePlanner(_policy(), settle_minutes=0)
    got = [live.decide_grid(ANCHOR, values[:n]).planner_replicas for n in range(len(values) + 1)]
    assert got == expected.tolist()
    assert live.rebuilds == 1  # one replay, advanced a minute per call
    assert max(got) > 2 * min(got)  # the trace moves the answer (the check is not of a constant)


def test_unsettled_minutes_are_replayed_on_a_copy_and_a_grown_minute_changes_nothing_kept():
    values = _trace(days=2)
    expected = _backtest_requests(values)
    live = LivePlanner(_policy(), settle_minutes=2)
    for n in range(1500, 2880, 37):
        partial = values[:n].copy()
        partial[-1] *= 0.3  # the last minute's rollup is still being written ...
        live.decide_grid(ANCHOR, partial)
        assert live.decide_grid(ANCHOR, values[:n]).planner_replicas == expected[n]  # ... and then complete
    assert live.rebuilds == 1


def test_a_late_rollup_for_a_replayed_minute_restarts_the_replay():
    values = _trace(days=2)
    live = LivePlanner(_policy(), settle_minutes=2)
    live.decide_grid(ANCHOR, values[:2000])
    changed = values.copy()
    changed[1500] += 5000  # a minute already replayed is now larger
    got = live.decide_grid(ANCHOR, changed[:2100]).planner_replicas
    assert live.rebuilds == 2
    assert got == _backtest_requests(changed[:2100])[-1]


def test_the_anchor_is_history_days_before_the_utc_day_and_moves_at_midnight():
    live = LivePlanner(_policy(), history_days=8)
    now = datetime(2026, 11, 28, 15, 7, tzinfo=timezone.utc)
    assert live.anchor_for(now, None) == datetime(2026, 11, 20, tzinfo=timezone.utc)
    assert live.anchor_for(now + timedelta(hours=9), None) == datetime(2026, 11, 21, tzinfo=timezone.utc)
    first = datetime(2026, 11, 25, 9, 30, tzinfo=timezone.utc)  # a store recording for three days only
    assert live.anchor_for(now, first) == first


def test_decide_reads_a_series_with_gaps_as_zero_traffic_and_ignores_minutes_from_now_on():
    values = _trace(days=2)
    values[2000:2060] = 0.0  # an hour with no rollups at all
    idx = pd.date_range(ANCHOR, periods=len(values), freq="min")
    series = pd.Series(values, index=idx)
    series = series[series > 0]
    future = pd.Series([1e6] * 10, index=pd.date_range(ANCHOR + timedelta(minutes=2600), periods=10, freq="min"))
    now = ANCHOR + timedelta(minutes=2600, seconds=40)
    live = LivePlanner(_policy(), settle_minutes=0, history_days=8)
    decision = live.decide(pd.concat([series, future]), now)
    assert decision.anchor == ANCHOR and decision.replayed_minutes == 2600
    assert decision.planner_replicas == _backtest_requests(values[:2600])[-1]


def test_the_answer_is_capped_at_max_replicas_and_says_so():
    values = _trace(days=2) * 20
    live = LivePlanner(CapacityPolicy(capacity_per_minute=CAPACITY, lag_minutes=10, max_replicas=30),
                       settle_minutes=0)
    decision = live.decide_grid(ANCHOR, values[:2000])
    assert decision.planner_replicas > 30 and decision.desired_replicas == 30 and decision.capped
    assert decision.to_dict()["capped_at_max_replicas"] is True


def test_a_calendar_event_is_pre_scaled_for_as_in_the_backtest():
    values = _trace(days=3)
    start = ANCHOR + timedelta(minutes=2 * 1440 + 600)
    calendar = [CampaignEvent(start=start, end=start + timedelta(minutes=60), kind="newsletter", uplift=3.0)]
    grid = events_on_grid(calendar, ANCHOR, len(values) + 1)
    expected = _backtest_requests(values, grid)
    live = LivePlanner(_policy(), settle_minutes=0, events=calendar)
    n = 2 * 1440 + 595  # five minutes before the event: replicas are already asked for
    got = [live.decide_grid(ANCHOR, values[:k]).planner_replicas for k in range(n - 30, n + 1)]
    assert got == expected[n - 30 : n + 1].tolist()
    without = _backtest_requests(values)
    assert expected[n] > without[n]  # the calendar changed the answer at that minute


def test_bad_input_names_the_field():
    live = LivePlanner(_policy())
    with pytest.raises(CapacityInputError) as err:
        live.decide(pd.Series([1.0], index=pd.DatetimeIndex([ANCHOR])), ANCHOR.replace(tzinfo=None))
    assert err.value.field == "now"
    with pytest.raises(CapacityInputError) as err:
        live.decide(pd.Series([-1.0], index=pd.DatetimeIndex([ANCHOR])), ANCHOR + timedelta(minutes=5))
    assert err.value.field == "series"
    with pytest.raises(CapacityInputError) as err:
        LivePlanner(_policy(), history_days=0)
    assert err.value.field == "history_days"
