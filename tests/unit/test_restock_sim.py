"""The lost-sales simulator on hand-checkable cases, and the baseline's no-look-ahead property."""

from __future__ import annotations

import numpy as np
import pytest

from shopfloor.planning.restock_sim import NormalSafetyStockPolicy, simulate


class FixedLevel:
    """A policy with a constant order-up-to level that records what it was shown."""

    def __init__(self, levels):
        self.levels = np.asarray(levels)
        self.seen: list[np.ndarray] = []

    def observe(self, demand, weekday, sales=None):
        self.seen.append(np.array(demand))

    def order_up_to(self):
        return self.levels


def test_constant_demand_below_the_level_never_loses_a_sale():
    demand = np.full((1, 20), 3)
    res = simulate(demand, np.arange(20) % 7, FixedLevel([10]), lead_time=2, start=1)
    assert res.fill_rate == 1.0
    assert res.orders[0, 1:].tolist() == [3] * 19  # each day re-orders what was sold


def test_hand_checked_lost_sales_with_lead_time_one():
    # level 5, lead time 1: an order placed at the end of day t arrives at the start of day t+2.
    demand = np.array([[0, 4, 4, 4, 0]])
    res = simulate(demand, np.zeros(5, dtype=int), FixedLevel([5]), lead_time=1, start=1)
    # day1: on hand 5 -> sell 4, 1 left, position 1, order 4 (arrives day3)
    # day2: on hand 1 -> sell 1, lose 3, 0 left, position 4, order 1 (arrives day4)
    # day3: +4 -> sell 4, 0 left, position 1, order 4 (arrives day5)
    # day4: +1 -> no demand, 1 left, position 5, no order
    assert res.sales.tolist() == [9.0] and res.demand.tolist() == [12.0]
    assert res.orders[0, 1:].tolist() == [4, 1, 4, 0]
    assert res.avg_on_hand == pytest.approx((1 + 0 + 0 + 1) / 4)
    assert res.fill_rate == pytest.approx(9 / 12)


def test_moq_and_pack_size_apply_to_simulated_orders():
    demand = np.full((1, 10), 1)
    res = simulate(demand, np.zeros(10, dtype=int), FixedLevel([6]), lead_time=2, start=1, moq=4, pack_size=3)
    placed = res.orders[0][res.orders[0] > 0]
    assert len(placed) and all(q >= 4 and q % 3 == 0 for q in placed)


def test_warmup_days_are_not_scored():
    demand = np.array([[9, 9, 9, 1, 1]])
    res = simulate(demand, np.zeros(5, dtype=int), FixedLevel([2]), lead_time=0, start=1, warmup=2)
    assert res.demand.tolist() == [2.0] and res.scored_days == 2


def test_policy_is_only_shown_days_that_already_happened():
    demand = np.arange(30).reshape(1, 30)
    pol = FixedLevel([5])
    simulate(demand, np.zeros(30, dtype=int), pol, lead_time=3, start=10)
    assert [int(s[0]) for s in pol.seen] == list(range(30))


def _panel(seed: int, n: int = 12, days: int = 400):
    rng = np.random.default_rng(seed)
    lam = rng.gamma(2.0, 2.0, size=(n, 1)) * (1 + 0.3 * np.sin(np.arange(days) / 20))
    return rng.poisson(lam).astype(np.int64)


def test_baseline_decisions_never_depend_on_later_demand():
    demand = _panel(1)
    cut = 300
    altered = demand.copy()
    altered[:, cut + 1:] = np.random.default_rng(99).poisson(20, size=altered[:, cut + 1:].shape)
    wd = np.arange(demand.shape[1]) % 7
    runs = [simulate(d, wd, NormalSafetyStockPolicy(12, lead_time=7, review_days=1, z=1.64), lead_time=7, start=200)
            for d in (demand, altered)]
    a, b = runs
    assert np.array_equal(a.orders[:, : cut + 1], b.orders[:, : cut + 1])
    assert np.array_equal(a.levels[:, : cut + 1], b.levels[:, : cut + 1])
    assert not np.array_equal(a.orders, b.orders)  # the change is real, so the check can fail


def test_simulation_can_start_from_a_given_stock():
    demand = np.full((1, 10), 2)
    res = simulate(demand, np.zeros(10, dtype=int), FixedLevel([4]), lead_time=1, start=1,
                   initial_on_hand=np.array([0]))
    assert res.sales[0] < res.demand[0]  # nothing on the shelf on the first day
