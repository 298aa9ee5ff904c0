"""The lost-sales simulator on hand-checkable cases, the demand model, and the no-look-ahead property."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from shopfloor.planning.demand_model import RollingDemandModel
from shopfloor.planning.forecast_outlook import PeriodicForecastModel
from shopfloor.planning.restock_backtest import DemandPanel, run_restock_backtest
from shopfloor.planning.restock_sim import ForecastQuantilePolicy, NormalSafetyStockPolicy, simulate


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


def _trailing_mean_forecaster(ids, last_day, history, horizon):
    return np.repeat(history[:, -28:].mean(axis=1, keepdims=True), horizon, axis=1)


def _blend_policy(n):
    model = PeriodicForecastModel([str(i) for i in range(n)], date(2020, 1, 1), 8, _trailing_mean_forecaster,
                                  forecast_from=150)
    return ForecastQuantilePolicy(n, lead_time=7, review_days=1, target_fill=0.95, demand_model=model,
                                  calibrate_from=149)


@pytest.mark.parametrize("make_policy", [
    lambda n: ForecastQuantilePolicy(n, lead_time=7, review_days=1, target_fill=0.95),
    lambda n: ForecastQuantilePolicy(n, lead_time=7, review_days=1, target_fill=0.95, spread="nb_shrunk"),
    _blend_policy,
    lambda n: NormalSafetyStockPolicy(n, lead_time=7, review_days=1, z=1.64),
], ids=["ses-error-variance", "ses-nb-shrunk", "forecast-blend", "baseline"])
def test_changing_future_demand_does_not_change_earlier_decisions(make_policy):
    demand = _panel(1)
    cut = 300
    altered = demand.copy()
    altered[:, cut + 1:] = np.random.default_rng(99).poisson(20, size=altered[:, cut + 1:].shape)
    wd = np.arange(demand.shape[1]) % 7
    a = simulate(demand, wd, make_policy(demand.shape[0]), lead_time=7, start=200)
    b = simulate(altered, wd, make_policy(demand.shape[0]), lead_time=7, start=200)
    assert np.array_equal(a.orders[:, : cut + 1], b.orders[:, : cut + 1])
    assert np.array_equal(a.levels[:, : cut + 1], b.levels[:, : cut + 1])
    assert not np.array_equal(a.orders, b.orders)  # the change is real, so the check can fail


def test_demand_model_learns_level_weekday_profile_and_near_poisson_dispersion():
    rng = np.random.default_rng(3)
    days = 600
    weekday = np.arange(days) % 7
    lam = np.where(weekday == 5, 20.0, 10.0)
    model = RollingDemandModel(1, 8)
    for t in range(days):
        model.observe(rng.poisson(lam[t], size=1), int(weekday[t]))
    means = model.daily_means(7)[0]
    sat = (5 - (weekday[-1] + 1)) % 7
    assert means[sat] == pytest.approx(20, rel=0.25)
    assert np.delete(means, sat).mean() == pytest.approx(10, rel=0.2)
    assert model.dispersion()[0] > 20  # Poisson data: little extra-Poisson variation


def test_forecast_policy_steers_towards_its_fill_target_on_synthetic_demand():
    demand = _panel(5, n=30, days=700)
    panel_days = demand.shape[1]
    for target in (0.90, 0.97):
        pol = ForecastQuantilePolicy(30, lead_time=7, review_days=1, target_fill=target)
        res = simulate(demand, np.arange(panel_days) % 7, pol, lead_time=7, start=250, warmup=91)
        assert abs(res.fill_rate - target) < 0.02


def test_backtest_reports_both_policies_and_the_baseline_curve():
    import pandas as pd

    demand = _panel(7, n=10, days=300)
    panel = DemandPanel([f"s{i}" for i in range(10)], pd.date_range("2020-01-01", periods=300), demand)
    out = run_restock_backtest(panel, service_levels=(0.9,), test_days=100, warmup_days=28, z_grid=(0.0, 1.0, 2.0, 3.0),
                               forecaster=_trailing_mean_forecaster)
    assert len(out["baseline_curve"]) == 4
    t = out["targets"][0]
    assert 0 < t["ours"]["fill_rate"] <= 1 and t["baseline_at_target_z"]["z"] == pytest.approx(1.2816, abs=1e-3)
    fills = [c["fill_rate"] for c in out["baseline_curve"]]
    assert fills == sorted(fills)  # more safety stock never lowers the fill rate here
    with pytest.raises(ValueError, match="service level"):
        run_restock_backtest(panel, service_levels=(1.2,))


class _RecordingPolicy(ForecastQuantilePolicy):
    """Our policy, recording every order decision the simulator asked it for."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def shortfall(self, level, position):
        out = super().shortfall(level, position)
        self.calls.append((level.copy(), np.asarray(position).copy(), self._reorder_point.copy(), out))
        return out


def test_simulated_orders_follow_capped_base_stock():
    rng = np.random.default_rng(11)
    level = np.repeat(rng.uniform(1, 12, size=(8, 1)), 500, axis=1)
    level[:, 320:] *= 2.5  # a level shift: the policy's level jumps while stock is still healthy
    demand = rng.poisson(level)
    pol = _RecordingPolicy(8, lead_time=7, review_days=1, target_fill=0.95, order_cap=1.25)
    res = simulate(demand, np.arange(500) % 7, pol, lead_time=7, start=250)
    assert len(pol.calls) == 250
    binding = 0
    for t, (lvl, pos, rop, out) in enumerate(pol.calls):
        plain = np.maximum(lvl - pos, 0)
        cap = np.maximum(np.ceil(1.25 * lvl / 8), 1)
        assert np.all(out <= plain)
        assert np.all(out <= np.maximum(cap, rop - pos))
        assert np.all(pos + out >= np.minimum(lvl, rop))  # never left below the reorder point
        assert np.array_equal(res.orders[:, 250 + t], np.ceil(out).astype(np.int64))
        binding += int(np.sum(out < plain))
    assert binding > 0  # the cap did bind somewhere (after the shift)
    uncapped = ForecastQuantilePolicy(8, lead_time=7, review_days=1, target_fill=0.95, order_cap=0)
    plain_res = simulate(demand, np.arange(500) % 7, uncapped, lead_time=7, start=250)
    assert plain_res.orders[:, 320:340].max() > res.orders[:, 320:340].max()
