"""The surge echo: a surge seen at this clock time on a previous day is planned for before it starts today."""

from __future__ import annotations

import numpy as np
import pytest

from shopfloor.planning.capacity import CapacityInputError, PredictiveConfig, PredictivePlanner, simulate

DAY = 1440
ONSET = 600  # clock minute of the surge


def _flat(days: int, level: float = 40.0) -> np.ndarray:
    return np.full(days * DAY, level)


def _with_surge(values: np.ndarray, day: int, factor: float = 5.0, length: int = 90, shift: int = 0) -> np.ndarray:
    out = values.copy()
    lo = day * DAY + ONSET + shift
    out[lo : lo + length] *= factor
    return out


def _run(demand: np.ndarray, config: PredictiveConfig, capacity: float = 20.0, lag: int = 10):
    planner = PredictivePlanner(capacity, lag, config)
    return planner, simulate(demand, planner, capacity=capacity, lag=lag)


def _violations(demand, result, lo, hi, capacity=20.0):
    return int((demand[lo:hi] > capacity * result.ready[lo:hi]).sum())


def test_a_surge_seen_only_yesterday_at_this_clock_time_is_ready_for_when_it_starts_today():
    demand = _with_surge(_with_surge(_flat(3), day=1), day=2)
    today = 2 * DAY + ONSET
    planner, echo = _run(demand, PredictiveConfig())
    _, without = _run(demand, PredictiveConfig(echo_factor=0))
    assert _violations(demand, echo, today, today + 30) == 0
    # Without the echo one previous day is not enough to plan for it: the first boot lag is lost.
    assert _violations(demand, without, today, today + 30) >= 8
    assert planner.echoes_confirmed >= 1
    # Pre-scaling starts no earlier than lag + echo_early minutes before the echoed onset.
    cfg = planner.config
    assert echo.requested[today - 10 - cfg.echo_early - 2] == without.requested[today - 10 - cfg.echo_early - 2]


def test_a_surge_that_comes_a_few_minutes_earlier_than_yesterday_is_still_covered():
    demand = _with_surge(_with_surge(_flat(3), day=1), day=2, shift=-4)
    _, echo = _run(demand, PredictiveConfig())
    today = 2 * DAY + ONSET - 4
    assert _violations(demand, echo, today, today + 30) == 0


def _ramped_surge(values: np.ndarray, day: int, shift: int, factor: float = 5.0, ramp: int = 4) -> np.ndarray:
    out = values.copy()
    lo = day * DAY + ONSET + shift
    profile = np.concatenate([1.0 + (factor - 1.0) * np.arange(1, ramp + 1) / ramp, np.full(90 - ramp, factor)])
    out[lo : lo + 90] *= profile
    return out


def test_a_surge_that_comes_up_to_the_confirm_window_later_than_yesterday_is_still_covered():
    cfg = PredictiveConfig()
    demand = _ramped_surge(_ramped_surge(_flat(3), day=1, shift=0), day=2, shift=cfg.echo_confirm)
    planner, echo = _run(demand, cfg)
    today = 2 * DAY + ONSET + cfg.echo_confirm
    assert planner.echoes_confirmed >= 1
    assert _violations(demand, echo, today, today + 30) == 0


def test_an_echoed_surge_that_does_not_come_is_dropped_after_the_confirm_window():
    demand = _with_surge(_flat(3), day=1)  # yesterday only; today stays flat
    planner, echo = _run(demand, PredictiveConfig())
    _, without = _run(demand, PredictiveConfig(echo_factor=0))
    today = 2 * DAY + ONSET
    cfg = planner.config
    assert planner.echoes_armed >= 1 and planner.echoes_confirmed == 0
    assert echo.requested[today - 5] > without.requested[today - 5]  # it did pre-scale
    settle = today + cfg.echo_confirm + cfg.scale_in_window + 2
    assert (echo.requested[settle : settle + 120] == without.requested[settle : settle + 120]).all()
    # A false alarm costs a bounded number of extra replica-minutes.
    extra = int(echo.requested[2 * DAY :].sum() - without.requested[2 * DAY :].sum())
    surge_replicas = int(np.ceil(40 * 5 * cfg.echo_headroom / 20))
    assert 0 < extra <= surge_replicas * (10 + cfg.echo_early + cfg.echo_confirm + cfg.scale_in_window + 2)


def test_an_echoed_surge_is_held_until_replicas_asked_for_on_it_are_ready():
    # Today's surge comes but is smaller than the echoed one: the echo's replicas stay for the first boot lag
    # (so nothing is lost while reactive replicas boot), then give way to the observed level.
    demand = _with_surge(_flat(3), day=1, factor=6.0)
    demand = _with_surge(demand, day=2, factor=4.0)
    planner, echo = _run(demand, PredictiveConfig())
    today = 2 * DAY + ONSET
    echo_need = int(np.ceil(40 * 6.0 * planner.config.echo_headroom / 20 - 1e-9))
    assert (echo.requested[today : today + 10] >= echo_need - 1).all()
    assert echo.requested[today + 40] < echo_need - 1


def test_echo_headroom_covers_a_surge_somewhat_larger_than_yesterdays():
    demand = _with_surge(_flat(3), day=1, factor=5.0)
    demand = _with_surge(demand, day=2, factor=5.5)
    today = 2 * DAY + ONSET
    _, tight = _run(demand, PredictiveConfig(echo_headroom=1.0))
    _, roomy = _run(demand, PredictiveConfig(echo_headroom=1.2))
    assert _violations(demand, roomy, today, today + 30) < _violations(demand, tight, today, today + 30)


def test_noise_at_a_few_requests_a_minute_does_not_arm_the_echo():
    rng = np.random.default_rng(1)
    demand = rng.poisson(2.0, 4 * DAY).astype(float)
    planner, _ = _run(demand, PredictiveConfig())
    assert planner.echoes_armed == 0


@pytest.mark.parametrize("field,value", [("echo_headroom", 0.0), ("echo_factor", -1.0)])
def test_a_bad_echo_setting_is_refused_naming_it(field, value):
    with pytest.raises(CapacityInputError) as err:
        PredictivePlanner(20, 10, PredictiveConfig(**{field: value}))
    assert err.value.field == field


# --- the ten-line yardstick, kept as a named baseline ------------------------------------------------------


def test_the_seasonal_ratio_heuristic_plans_yesterdays_surge_from_the_last_hours_level():
    from shopfloor.planning.capacity import SeasonalRatioHeuristic

    demand = _with_surge(_flat(3), day=1)
    result = simulate(demand, SeasonalRatioHeuristic(20, 10), capacity=20, lag=10)
    today = 2 * DAY + ONSET
    # Yesterday's surge (5x the hour before) enters its look-ahead 10 minutes before the onset: 40 x 5 / 20.
    assert result.ready[today] >= 10
    assert _violations(demand, result, today, today + 30) == 0


def test_the_seasonal_ratio_heuristic_is_the_hpa_when_there_is_no_yesterday():
    from shopfloor.planning.capacity import HpaReactivePlanner, SeasonalRatioHeuristic

    demand = _with_surge(_flat(1), day=0)
    heuristic = simulate(demand, SeasonalRatioHeuristic(20, 10), capacity=20, lag=10)
    hpa = simulate(demand, HpaReactivePlanner(20), capacity=20, lag=10)
    assert (heuristic.requested == hpa.requested).all()
