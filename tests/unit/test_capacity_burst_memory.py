"""The burst memory: outside a surge, the floor keeps the replicas the largest recent minute needed."""

from __future__ import annotations

import math

from shopfloor.planning.capacity import PredictiveConfig, PredictivePlanner

C = 40.0
LAG = 10


def _targets(config: PredictiveConfig, demand: list[float]) -> list[int]:
    """Feed ``demand`` minute by minute (observe, then decide) and return each minute's target."""
    planner = PredictivePlanner(C, LAG, config)
    requested, out = 1, []
    for v in demand:
        planner.observe(v)
        requested = planner.target(len(out), requested, requested)
        out.append(requested)
    return out


def _config(minutes: int, **changes) -> PredictiveConfig:
    # The surge regime and the echo are off so that the rule is seen alone.
    return PredictiveConfig(burst_memory_minutes=minutes, surge_regime_minutes=0, echo_factor=0.0, **changes)


QUIET, BURST = 25.0, 70.0  # one replica serves the quiet level; the burst minute needs two
BEFORE = 200


def _one_burst(after: float = QUIET, tail: int = 60) -> list[float]:
    return [QUIET] * BEFORE + [BURST] + [after] * tail


def test_after_a_burst_minute_the_floor_keeps_its_replicas_for_the_memory_window():
    need = math.ceil(BURST / C)
    with_memory = _targets(_config(30), _one_burst())
    # Minutes burst+1 .. burst+29 still have the burst minute among their last 30 observed minutes.
    assert all(t >= need for t in with_memory[BEFORE : BEFORE + 30])


def test_without_the_memory_the_planner_lets_the_burst_replicas_go_within_the_window():
    need = math.ceil(BURST / C)
    without = _targets(_config(0), _one_burst())
    assert min(without[BEFORE + 15 : BEFORE + 30]) < need


def test_the_memory_ends_when_the_burst_leaves_the_window():
    with_memory = _targets(_config(30), _one_burst())
    # Past the window plus the scale-in hold, the quiet level's single replica is back.
    assert with_memory[BEFORE + 30 + 10 :] == [1] * len(with_memory[BEFORE + 30 + 10 :])


def test_the_memory_is_released_at_once_when_traffic_falls_several_fold_below_the_burst():
    # After the burst the traffic falls to 5 a minute: 5 x 3 < 70, the crowd is over, nothing is kept for it.
    demand = [QUIET] * BEFORE + [BURST] + [5.0] * 60
    with_memory = _targets(_config(30), demand)
    without = _targets(_config(0), demand)
    assert with_memory[BEFORE + 12 : BEFORE + 30] == without[BEFORE + 12 : BEFORE + 30]


def test_the_memory_is_idle_during_a_surge_regime_where_the_hpas_own_floor_holds():
    planner = PredictivePlanner(C, LAG, PredictiveConfig(burst_memory_minutes=30, echo_factor=0.0))
    for v in [QUIET] * BEFORE + [BURST]:
        planner.observe(v)
    planner._regime_until = len(planner._y) + 60  # as a surge minute sets it
    assert planner._burst_floor() == 0
    planner._regime_until = 0
    assert planner._burst_floor() == math.ceil(BURST / C)
