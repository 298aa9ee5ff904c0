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


# --- the sales-fed baseline (equal information with the agent) ----------------------------------------------
def _levels(feed: str, demand, initial_on_hand, *, window=4, lead_time=1, z=1.0, start=4):
    pol = NormalSafetyStockPolicy(demand.shape[0], lead_time=lead_time, review_days=1, z=z, window=window, feed=feed)
    res = simulate(demand, np.zeros(demand.shape[1], dtype=int), pol, lead_time=lead_time, start=start,
                   initial_on_hand=np.asarray(initial_on_hand))
    return res


def test_sales_fed_baseline_never_sees_demand_lost_to_a_stock_out():
    # history 2,2,2,2; day 4 demands 10 with 3 on the shelf (7 lost), day 5 demands 2 with nothing (2 lost).
    # window 4, L + R = 2, z = 1:
    #   demand-fed after day 4 sees {2,2,2,10}: mu 4, sd 4 -> 4*2 + 4*sqrt(2) = 13.66 -> 14; day 5 {2,2,10,2}: 14
    #   sales-fed after day 4 sees {2,2,2,3}: mu 2.25, sd 0.5 -> 4.5 + 0.5*sqrt(2) = 5.21 -> 6;
    #   day 5 {2,2,3,0}: mu 1.75, sd 1.258 -> 3.5 + 1.258*sqrt(2) = 5.28 -> 6
    demand = np.array([[2, 2, 2, 2, 10, 2]])
    by_demand, by_sales = _levels("demand", demand, [3]), _levels("sales", demand, [3])
    assert by_demand.levels[0, 4:].tolist() == [14, 14]
    assert by_sales.levels[0, 4:].tolist() == [6, 6]
    assert by_sales.sales.tolist() == by_demand.sales.tolist() == [3.0]  # same days, same stock: 3 sold, 9 lost


def test_sales_fed_baseline_equals_the_demand_fed_one_when_nothing_is_lost():
    demand = _panel(4, n=5, days=120)
    wd = np.arange(120) % 7
    runs = [simulate(demand, wd, NormalSafetyStockPolicy(5, lead_time=7, review_days=1, z=4.0, feed=feed),
                     lead_time=7, start=60, initial_on_hand=np.full(5, 10_000)) for feed in ("demand", "sales")]
    assert runs[0].fill_rate == 1.0
    assert np.array_equal(runs[0].levels, runs[1].levels)


def test_baseline_feed_must_be_demand_or_sales():
    with pytest.raises(ValueError, match="feed"):
        NormalSafetyStockPolicy(1, lead_time=1, review_days=1, z=1.0, feed="forecast")
