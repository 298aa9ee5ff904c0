"""The capacity backtest: HPA baseline semantics, accounting, no look-ahead, and the predictive floor."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from shopfloor.planning.capacity import (
    CapacityInputError,
    HpaReactivePlanner,
    PredictiveConfig,
    PredictivePlanner,
    ReplicaSet,
    hpa_desired,
    run_backtest,
    simulate,
)


def _seasonal_trace(days: int = 4, base: float = 60.0, seed: int = 3) -> np.ndarray:
    """Bursty per-minute demand with a strong daily cycle (trough 0.2x, peak 1.8x of base, lognormal bursts)."""
    rng = np.random.default_rng(seed)
    t = np.arange(days * 1440)
    rate = base * (1.0 + 0.8 * np.sin(2 * np.pi * (t % 1440) / 1440 - np.pi / 2))
    return rng.poisson(rate * np.exp(rng.normal(0, 0.3, len(t)))).astype(float)


# --- HPA baseline on hand-checkable traces -----------------------------------------------------------------------


def test_hpa_desired_is_ceil_of_observed_over_seventy_percent_of_capacity_and_at_least_one():
    seventy = Fraction(7, 10)
    assert hpa_desired(0, 1, 10, seventy) == 1
    assert hpa_desired(7, 1, 10, seventy) == 1  # exactly 70%: no float drift
    assert hpa_desired(14, 3, 10, seventy) == 2
    assert hpa_desired(30, 1, 10, seventy) == 5  # 30/7 = 4.29
    assert hpa_desired(30.5, 2, 10, seventy) == 5  # fractional demand path


def test_hpa_scales_up_after_one_minute_of_observation_lag_and_replicas_are_ready_lag_minutes_later():
    demand = [5, 30, 30, 30, 5, 5, 5, 5, 5, 5, 5, 5]
    result = simulate(demand, HpaReactivePlanner(10), capacity=10, lag=2)
    # t=1 still sees 5 (minute 0); t=2 sees 30 -> desired ceil(30/7)=5, requested at 2, ready at 4.
    assert result.requested.tolist() == [1, 1, 5, 5, 5, 5, 5, 5, 5, 1, 1, 1]
    assert result.ready.tolist() == [1, 1, 1, 1, 5, 5, 5, 5, 5, 1, 1, 1]


def test_hpa_scale_down_waits_for_the_largest_desired_of_the_last_five_minutes():
    demand = [5, 30, 30, 30, 5, 5, 5, 5, 5, 5, 5, 5]
    result = simulate(demand, HpaReactivePlanner(10), capacity=10, lag=2)
    # Last desired=5 is computed at t=4 (seeing minute 3); the window t4..t8 still holds it, so removal at t=9.
    assert int(np.argmax(result.requested[4:] == 1)) + 4 == 9


def test_violations_count_minutes_where_demand_exceeds_capacity_times_ready_replicas():
    demand = [5, 30, 30, 30, 5, 5, 5, 5, 5, 5, 5, 10]
    result = simulate(demand, HpaReactivePlanner(10), capacity=10, lag=2)
    assert result.violation_minutes == 3  # minutes 1, 2, 3; minute 11 is exactly at capacity (10 <= 10 x 1)


def test_cost_counts_every_requested_replica_from_request_to_removal_booting_ones_included():
    demand = [5, 30, 30, 30, 5, 5, 5, 5, 5, 5, 5, 5]
    result = simulate(demand, HpaReactivePlanner(10), capacity=10, lag=2)
    assert result.replica_minutes == 1 + 1 + 5 * 7 + 1 * 3  # booting minutes 2 and 3 are paid for


def test_removal_takes_not_yet_ready_replicas_first_then_the_newest():
    rs = ReplicaSet(lag=3, initial_ready=2)
    rs.scale_to(4, minute=0)  # two booting, ready at 3
    rs.scale_to(3, minute=1)  # one booting one goes, both ready ones stay
    assert rs.requested_at() == [-3, -3, 0] and rs.ready(1) == 2
    rs.scale_to(5, minute=3)  # the minute-0 replica is ready now; two more boot
    rs.scale_to(2, minute=4)  # both booting ones go first, then the newest ready one (requested at 0)
    assert rs.requested_at() == [-3, -3] and rs.ready(4) == 2


def test_hpa_cancels_booting_replicas_before_touching_ready_ones_when_a_spike_passes():
    demand = [5, 40] + [1] * 10
    result = simulate(demand, HpaReactivePlanner(10), capacity=10, lag=8)
    # Spike seen at t=2 -> 6 requested (ready at 10); window expires at t=7 -> back to 1 before any became ready.
    assert result.requested.tolist()[:8] == [1, 1, 6, 6, 6, 6, 6, 1]
    assert result.ready.min() == 1


# --- predictive planner --------------------------------------------------------------------------------------------


def test_future_demand_cannot_change_earlier_decisions():
    demand = _seasonal_trace(days=3)
    cut = 2 * 1440 + 300
    altered = demand.copy()
    altered[cut:] = np.random.default_rng(9).integers(0, 1000, size=len(demand) - cut)
    cfg = PredictiveConfig()
    a = simulate(demand, PredictivePlanner(20, 10, cfg), capacity=20, lag=10)
    b = simulate(altered, PredictivePlanner(20, 10, cfg), capacity=20, lag=10)
    # The decision at minute ``cut`` only sees minutes < cut, so everything up to and including it is identical.
    assert np.array_equal(a.requested[: cut + 1], b.requested[: cut + 1])
    assert not np.array_equal(a.requested[cut + 1 :], b.requested[cut + 1 :])


class _Spy:
    """Wraps a planner; asserts the simulator only ever shows it minute t-1 before deciding minute t."""

    def __init__(self, inner, demand):
        self.inner, self.demand, self.seen, self.targets = inner, demand, 0, 0

    def observe(self, value):
        assert value == self.demand[self.seen]
        self.seen += 1
        self.inner.observe(value)

    def target(self, minute, requested, ready):
        assert self.seen == minute  # has seen exactly the minutes before ``minute``
        self.targets += 1
        return self.inner.target(minute, requested, ready)


def test_simulator_shows_a_planner_only_the_minutes_before_the_one_it_decides():
    demand = _seasonal_trace(days=1)
    spy = _Spy(PredictivePlanner(20, 10), demand)
    simulate(demand, spy, capacity=20, lag=10)
    # the spy's checks ran for every minute: it was shown every minute but the last, one at a time
    assert spy.seen == len(demand) - 1 and spy.targets == len(demand)


def test_with_the_relaxed_floor_off_the_predictive_target_is_never_below_the_reactive_hpa_signal():
    demand = _seasonal_trace(days=3)
    demand[3000:3030] *= 4  # a flash crowd
    planner = PredictivePlanner(20, 10, PredictiveConfig(floor_utilization=0.0))
    checked = []

    class Check:
        def observe(self, v):
            self.last = v
            planner.observe(v)

        def target(self, minute, requested, ready):
            out = planner.target(minute, requested, ready)
            if minute > 0:
                floor = hpa_desired(self.last, ready, 20, Fraction(7, 10))
                assert out >= floor
                checked.append(out - floor)
            return out

    simulate(demand, Check(), capacity=20, lag=10)
    assert len(checked) == len(demand) - 1 and max(checked) > 0  # it did plan above the floor somewhere


def test_predictive_planner_beats_reactive_on_a_seasonal_trace_at_modest_extra_cost():
    report = run_backtest(_seasonal_trace(days=4), capacity=12, lag=10).to_dict()
    assert report["predictive"]["violation_minutes"] < 0.6 * report["reactive"]["violation_minutes"]
    assert report["replica_minutes_ratio"] < 1.15


def test_predictive_planner_responds_to_a_flash_crowd_no_slower_than_reactive():
    demand = _seasonal_trace(days=3)
    demand[2 * 1440 + 600 : 2 * 1440 + 660] *= 5
    report = run_backtest(demand, capacity=20, lag=10)
    crowd = slice(2 * 1440 + 600, 2 * 1440 + 700)
    pv = int((demand[crowd] > 20 * report.predictive.ready[crowd]).sum())
    rv = int((demand[crowd] > 20 * report.reactive.ready[crowd]).sum())
    assert pv <= rv


def test_schedule_frame_has_minute_demand_requested_ready_columns():
    report = run_backtest(_seasonal_trace(days=1), capacity=20, lag=10)
    frame = report.schedule_frame()
    assert list(frame.columns) == ["minute", "demand", "requested", "ready"]
    assert len(frame) == 1440 and (frame["ready"] <= frame["requested"]).all()


@pytest.mark.parametrize("capacity", [0, -1, float("nan")])
def test_non_positive_capacity_is_rejected_naming_the_field(capacity):
    with pytest.raises(CapacityInputError) as err:
        simulate([1, 2], HpaReactivePlanner(1), capacity=capacity, lag=1)
    assert err.value.field == "capacity_per_replica"


def test_negative_lag_is_rejected_naming_the_field():
    with pytest.raises(CapacityInputError) as err:
        simulate([1, 2], HpaReactivePlanner(1), capacity=1, lag=-1)
    assert err.value.field == "lag_minutes"


def test_the_shadow_hpa_inside_the_planner_spends_exactly_what_the_reactive_baseline_spends():
    demand = _seasonal_trace(days=2)
    planner = PredictivePlanner(12, 10)
    simulate(demand, planner, capacity=12, lag=10)
    reactive = simulate(demand, HpaReactivePlanner(12), capacity=12, lag=10)
    assert planner._shadow_cost == reactive.replica_minutes


def test_a_cost_budget_keeps_replica_minutes_near_the_budget_over_target_tracking():
    from shopfloor.forecast.traffic import OnlineForecastConfig

    demand = _seasonal_trace(days=4)
    wide = OnlineForecastConfig(quantile=0.99)
    # The HPA's own floor everywhere (floor_utilization 0, no burst memory), so what the band adds is all the budget
    # acts on.
    hpa_floor = dict(forecast=wide, floor_utilization=0, burst_memory_minutes=0)
    free = run_backtest(demand, capacity=12, lag=10, config=PredictiveConfig(**hpa_floor))
    capped = run_backtest(demand, capacity=12, lag=10, config=PredictiveConfig(cost_budget=0.02, **hpa_floor))
    assert free.to_dict()["replica_minutes_ratio"] > 1.04
    assert capped.to_dict()["replica_minutes_ratio"] < 1.03


def test_the_cost_cap_keeps_replica_minutes_near_the_cap_over_the_reactive_hpa():
    from shopfloor.forecast.traffic import OnlineForecastConfig

    demand = _seasonal_trace(days=4)
    wide = OnlineForecastConfig(quantile=0.99)
    # The HPA's own floor (no relaxation, no burst memory: both are floors the cap never scales).
    hpa_floor = dict(forecast=wide, floor_utilization=0, burst_memory_minutes=0)
    free = run_backtest(demand, capacity=12, lag=10, config=PredictiveConfig(cost_cap=0, **hpa_floor))
    capped = run_backtest(
        demand, capacity=12, lag=10, config=PredictiveConfig(cost_cap=0.02, cost_cap_warmup=0, **hpa_floor),
    )
    assert free.to_dict()["replica_minutes_ratio"] > 1.04
    assert capped.to_dict()["replica_minutes_ratio"] < 1.03
    # The cap scales what the forecast adds over the HPA floor, never the floor itself.
    assert capped.to_dict()["violation_ratio"] <= 1.0


def test_the_cost_cap_does_not_bind_before_its_warm_up_ends():
    demand = _seasonal_trace(days=1)
    planner = PredictivePlanner(12, 10, PredictiveConfig(cost_cap=0.0001, cost_cap_warmup=1440))
    simulate(demand, planner, capacity=12, lag=10)
    assert planner.excess_scale == 1.0


@pytest.mark.parametrize("field,value", [("cost_cap", -0.1), ("cost_cap_step", 0.0), ("cost_cap_step", 1.5)])
def test_a_bad_cost_cap_setting_is_refused_naming_it(field, value):
    with pytest.raises(CapacityInputError) as err:
        PredictivePlanner(12, 10, PredictiveConfig(**{field: value}))
    assert err.value.field == field


def test_replicas_held_for_a_calendar_event_are_not_charged_to_the_cost_cap():
    from shopfloor.planning.campaigns import MinuteEvent

    demand = _seasonal_trace(days=2)
    config = PredictiveConfig(cost_cap=0.15, cost_cap_warmup=0)
    plain = PredictivePlanner(12, 10, config)
    simulate(demand, plain, capacity=12, lag=10)
    events = [MinuteEvent(start=s, end=s + 60, kind="deal", uplift=8.0) for s in range(600, 2 * 1440, 720)]
    with_events = PredictivePlanner(12, 10, config, events=events)
    sim = simulate(demand, with_events, capacity=12, lag=10)
    assert with_events.event_minutes_prescaled > 0
    assert sim.replica_minutes > 1.15 * with_events._shadow_cost  # the events cost far more than the cap allows...
    assert with_events.excess_scale > 0.5  # ...but the forecast's own share is not cut for it


def _ramped_crowd(days: int = 2, at: int = 1440 + 600) -> np.ndarray:
    demand = np.full(days * 1440, 40.0)
    demand[at : at + 5] = [80, 160, 240, 320, 400]  # a x10 crowd ramping over 5 minutes, then held
    demand[at + 5 : at + 90] = 400.0
    return demand


def test_a_detected_surge_is_answered_with_the_observed_rate_not_a_climb_extrapolated_over_the_boot_lag():
    demand, at = _ramped_crowd(), 1440 + 600
    default = simulate(demand, PredictivePlanner(20, 10), capacity=20, lag=10)
    climbing = simulate(demand, PredictivePlanner(20, 10, PredictiveConfig(surge_extrapolation=1.0)),
                        capacity=20, lag=10)
    hpa = simulate(demand, HpaReactivePlanner(20), capacity=20, lag=10)
    onset = slice(at, at + 5)
    # The extrapolation asks for more than the crowd will ever need (400 / 20 = 20 replicas) while it ramps ...
    assert climbing.requested[onset].max() > 25
    # ... the default asks for what the HPA signal asks for, and loses no more minutes than the extrapolation did.
    assert default.requested[onset].max() <= hpa.requested[onset].max() + 1
    crowd = slice(at, at + 90)
    lost = lambda r: int((demand[crowd] > 20 * r.ready[crowd]).sum())  # noqa: E731
    assert lost(default) <= lost(climbing) + 1
