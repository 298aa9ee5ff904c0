"""Restock demand from the forecast package: periodic re-forecasting, the blend, the error-variance spread, and
no look-ahead on the new path."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from shopfloor.planning.demand_model import HorizonErrorVariance, RollingDemandModel
from shopfloor.planning.forecast_outlook import (
    DEFAULT_FORECAST_WEIGHT,
    ForecastCache,
    PeriodicForecastModel,
    forecast_package_means,
)
from shopfloor.planning.restock_backtest import DemandPanel, run_restock_backtest
from shopfloor.planning.restock_service import outlooks_from_history
from shopfloor.planning.restock_sim import ForecastQuantilePolicy, simulate

DAY0 = date(2024, 1, 1)


class RecordingForecaster:
    """Forecasts the trailing 14-day mean flat, and records every history it was given."""

    def __init__(self):
        self.calls: list[tuple[date, np.ndarray, int]] = []

    def __call__(self, ids, last_day, history, horizon):
        self.calls.append((last_day, np.array(history), horizon))
        return np.repeat(history[:, -14:].mean(axis=1, keepdims=True), horizon, axis=1)


def _demand(seed: int, n: int = 6, days: int = 120) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.poisson(rng.gamma(2.0, 2.0, size=(n, 1)), size=(n, days)).astype(float)


def test_periodic_model_forecasts_every_cadence_days_from_exactly_what_it_observed():
    demand = _demand(1, days=60)
    fc = RecordingForecaster()
    model = PeriodicForecastModel([f"s{i}" for i in range(6)], DAY0, 8, fc, cadence=7, forecast_from=30)
    for t in range(60):
        model.observe(demand[:, t], (DAY0 + timedelta(days=t)).weekday())
    assert [c[0] for c in fc.calls] == [DAY0 + timedelta(days=d) for d in (29, 36, 43, 50, 57)]
    for last_day, hist, horizon in fc.calls:
        t = (last_day - DAY0).days
        assert np.array_equal(hist, demand[:, : t + 1])  # everything up to that day, nothing after it
        assert horizon == 8 + 7 - 1


def test_periodic_model_keeps_its_own_copy_of_the_demand():
    fc = RecordingForecaster()
    model = PeriodicForecastModel(["a"], DAY0, 2, fc, cadence=3, forecast_from=3)
    day = np.array([5.0])
    for t in range(3):
        model.observe(day, t % 7)
        day[0] = 99.0  # the caller reuses its buffer
    assert fc.calls[0][1].tolist() == [[5.0, 99.0, 99.0]]


def test_periodic_model_reads_the_forecast_slice_of_the_day_and_blends_with_ses():
    horizon = 8 + 7 - 1

    def steps(ids, last_day, history, h):  # value = days ahead of the origin
        return np.tile(np.arange(1, h + 1, dtype=float), (len(ids), 1))

    demand = np.full((2, 40), 4.0)
    pure = PeriodicForecastModel(["a", "b"], DAY0, 8, steps, cadence=7, forecast_from=21, weight=1.0)
    half = PeriodicForecastModel(["a", "b"], DAY0, 8, steps, cadence=7, forecast_from=21, weight=0.5)
    ses = RollingDemandModel(2, 8)
    for t in range(24):  # last forecast after day index 20; three more days observed
        for m in (pure, half):
            m.observe(demand[:, t], t % 7)
        ses.observe(demand[:, t], t % 7)
    assert pure.daily_means(8)[0].tolist() == list(range(4, 12))
    assert np.allclose(half.daily_means(8), 0.5 * pure.daily_means(8) + 0.5 * ses.daily_means(8))
    assert pure.horizon == horizon


def test_before_the_first_forecast_the_means_are_the_ses_models():
    demand = _demand(2, days=20)
    fc = RecordingForecaster()
    model = PeriodicForecastModel([str(i) for i in range(6)], DAY0, 8, fc, forecast_from=50)
    ses = RollingDemandModel(6, 8)
    for t in range(20):
        model.observe(demand[:, t], t % 7)
        ses.observe(demand[:, t], t % 7)
    assert not fc.calls and np.allclose(model.daily_means(8), ses.daily_means(8))


def test_forecast_cache_reuses_a_forecast_only_for_identical_history():
    fc = RecordingForecaster()
    cache = ForecastCache(fc)
    hist = np.ones((2, 20))
    cache(["a", "b"], DAY0, hist, 5)
    cache(["a", "b"], DAY0, hist.copy(), 5)
    changed = hist.copy()
    changed[1, 3] = 7
    cache(["a", "b"], DAY0, changed, 5)
    assert cache.calls == 2 and len(fc.calls) == 2


def test_error_variance_is_the_mean_square_of_completed_horizon_errors():
    ev = HorizonErrorVariance(2, 2, halflife=1e9)
    demand = [np.array([1.0, 0.0]), np.array([3.0, 0.0]), np.array([0.0, 0.0]), np.array([5.0, 0.0])]
    for d in demand:
        ev.record(d, np.array([2.0, 0.0]))  # every forecast: 2 units over the next two days
    # forecasts made after day 0 and day 1 have completed windows (days 1-2 and 2-3): errors 1 and 3
    assert ev.variance(np.array([2.0, 0.0]))[0] == pytest.approx((1 + 9) / 2)
    assert ev.variance(np.array([2.0, 0.0]))[1] == 0.0


def test_error_variance_never_goes_below_poisson_and_falls_back_for_series_without_errors():
    ev = HorizonErrorVariance(2, 3, start_day=100)
    for _ in range(10):
        ev.record(np.array([1.0, 1.0]), np.array([3.0, 3.0]))
    m = np.array([4.0, 4.0])
    assert np.allclose(ev.variance(m), m + m * m / ev.default_dispersion)  # nothing calibrated yet
    assert np.all(np.isfinite(ev.dispersion(m)))
    exact = HorizonErrorVariance(1, 1)
    for _ in range(5):
        exact.record(np.array([3.0]), np.array([3.0]))  # perfect forecasts
    assert exact.variance(np.array([3.0]))[0] == 3.0 and np.isinf(exact.dispersion(np.array([3.0]))[0])


def _panel(seed: int, n: int = 12, days: int = 400):
    rng = np.random.default_rng(seed)
    lam = rng.gamma(2.0, 2.0, size=(n, 1)) * (1 + 0.3 * np.sin(np.arange(days) / 20))
    return rng.poisson(lam).astype(np.int64)


@pytest.mark.parametrize("weight", [0.5, 1.0])
def test_forecast_driven_policy_decisions_never_depend_on_later_demand(weight):
    demand = _panel(1)
    cut = 300
    altered = demand.copy()
    altered[:, cut + 1:] = np.random.default_rng(99).poisson(20, size=altered[:, cut + 1:].shape)
    wd = np.arange(demand.shape[1]) % 7
    runs = []
    for d in (demand, altered):
        fc = RecordingForecaster()
        model = PeriodicForecastModel([f"s{i}" for i in range(12)], DAY0, 8, fc, weight=weight, forecast_from=150)
        pol = ForecastQuantilePolicy(12, lead_time=7, review_days=1, target_fill=0.95, demand_model=model,
                                     calibrate_from=149)
        runs.append((simulate(d, wd, pol, lead_time=7, start=200), fc))
    (a, fa), (b, fb) = runs
    assert np.array_equal(a.orders[:, : cut + 1], b.orders[:, : cut + 1])
    assert np.array_equal(a.levels[:, : cut + 1], b.levels[:, : cut + 1])
    assert not np.array_equal(a.orders, b.orders)  # the change is real, so the check can fail
    for last_day, hist, _ in fa.calls:  # the forecaster only ever saw days up to its origin
        assert hist.shape[1] == (last_day - DAY0).days + 1


def test_forecast_policy_with_error_variance_steers_to_its_fill_target():
    demand = _panel(5, n=30, days=700)
    fc = RecordingForecaster()
    for target in (0.90, 0.97):
        model = PeriodicForecastModel([str(i) for i in range(30)], DAY0, 8, fc, forecast_from=150)
        pol = ForecastQuantilePolicy(30, lead_time=7, review_days=1, target_fill=target, demand_model=model,
                                     calibrate_from=149)
        res = simulate(demand, np.arange(700) % 7, pol, lead_time=7, start=250, warmup=91)
        assert abs(res.fill_rate - target) < 0.02


def test_backtest_blend_calls_the_forecaster_at_weekly_origins_and_shares_them_across_targets():
    demand = _panel(7, n=10, days=300)
    panel = DemandPanel([f"s{i}" for i in range(10)], pd.date_range("2020-01-01", periods=300), demand)
    fc = RecordingForecaster()
    out = run_restock_backtest(panel, service_levels=(0.9, 0.95), test_days=100, warmup_days=28,
                               z_grid=(0.0, 1.0, 2.0), calibration_days=56, forecaster=fc)
    start = 300 - 100 - 28
    origins = list(range(start - 56, 300, 7))
    assert [(d - panel.dates[0].date()).days for d, _, _ in fc.calls] == origins  # once, not once per target
    assert out["forecast_calls"] == len(origins) and out["demand_model"] == "blend"
    assert all(abs(t["fill_error_pts"]) < 5 for t in out["targets"])
    ses = run_restock_backtest(panel, service_levels=(0.9,), test_days=100, warmup_days=28, z_grid=(0.0, 2.0),
                               demand="ses", forecaster=RecordingForecaster())
    assert ses["forecast_calls"] == 0
    with pytest.raises(ValueError, match="demand"):
        run_restock_backtest(panel, demand="oracle")
    with pytest.raises(ValueError, match="order_cap"):
        run_restock_backtest(panel, order_cap=0.5)
    assert out["order_cap"] == 1.25 and "capped at 1.25" in out["policy"]
    plain = run_restock_backtest(panel, service_levels=(0.9,), test_days=100, warmup_days=28, z_grid=(0.0, 2.0),
                                 demand="ses", order_cap=0)
    assert plain["order_cap"] == 0 and "uncapped" in plain["policy"]


def test_planner_outlooks_blend_the_forecast_with_ses_and_calibrate_on_request():
    rng = np.random.default_rng(4)
    history = {("TEA", "W1"): rng.poisson(6, 120).astype(float), ("MUG", "W1"): rng.poisson(1, 120).astype(float)}
    horizons = {k: 8 for k in history}
    last = date(2026, 3, 1)
    fc = RecordingForecaster()
    blend = outlooks_from_history(history, last, horizons, 30, demand="blend", forecaster=fc)
    assert [c[0] for c in fc.calls] == [last] and fc.calls[0][2] == 30  # one call, whole outlook horizon
    ses = outlooks_from_history(history, last, horizons, 30, demand="ses")
    fc_tea = np.full(30, history[("TEA", "W1")][-14:].mean())
    w = DEFAULT_FORECAST_WEIGHT
    assert np.allclose(blend[("TEA", "W1")].daily_means, w * fc_tea + (1 - w) * ses[("TEA", "W1")].daily_means)
    assert blend[("TEA", "W1")].horizon == 30
    fc2 = RecordingForecaster()
    outlooks_from_history(history, last, horizons, 30, demand="forecast", forecaster=fc2, calibration_days=28)
    assert [c[0] for c in fc2.calls] == [last - timedelta(days=d) for d in (28, 21, 14, 7, 0)]


def test_forecast_package_means_returns_one_row_per_id_in_the_given_order():
    rng = np.random.default_rng(0)
    hist = np.vstack([rng.poisson(9, 90), rng.poisson(1, 90)]).astype(float)
    means = forecast_package_means(["z-high", "a-low"], date(2024, 5, 1), hist, 10, model="wa28")
    assert means.shape == (2, 10)
    assert means[0].mean() > 4 * means[1].mean()  # ids not re-sorted: the busy series stays first


def test_a_series_that_never_sold_gets_no_demand_from_the_global_forecast():
    def lends_level(ids, last_day, history, horizon):  # what a global model does to an all-zero series
        return np.full((len(ids), horizon), history.mean())

    demand = np.vstack([np.full(40, 6.0), np.zeros(40)])
    model = PeriodicForecastModel(["busy", "never"], DAY0, 8, lends_level, forecast_from=40, weight=1.0)
    for t in range(40):
        model.observe(demand[:, t], t % 7)
    means = model.daily_means(8)
    assert means[0].sum() > 0 and means[1].sum() == 0


def test_forecast_cache_on_disk_serves_a_second_run_without_calling_the_model(tmp_path):
    hist = np.arange(40, dtype=float).reshape(2, 20)
    first = RecordingForecaster()
    a = ForecastCache(first, tmp_path, tag="m")(["a", "b"], DAY0, hist, 5)
    second = RecordingForecaster()
    b = ForecastCache(second, tmp_path, tag="m")(["a", "b"], DAY0, hist, 5)
    other = RecordingForecaster()
    ForecastCache(other, tmp_path, tag="other-model")(["a", "b"], DAY0, hist, 5)
    assert np.array_equal(a, b) and len(first.calls) == 1 and not second.calls and len(other.calls) == 1


def test_error_variance_leans_towards_recent_volatility_by_its_weight():
    rng = np.random.default_rng(8)
    calm, wild = HorizonErrorVariance(1, 4, recent_weight=0.25), HorizonErrorVariance(1, 4, recent_weight=0.0)
    demand = np.concatenate([np.full(100, 5.0), rng.poisson(5, 28) * rng.integers(0, 3, 28)])
    for d in demand:
        for ev in (calm, wild):
            ev.record(np.array([d]), np.array([20.0]))
    own = wild.variance(np.array([20.0]))[0]
    recent = 4 * demand[-28:].var(ddof=1)
    assert calm.variance(np.array([20.0]))[0] == pytest.approx(max(own**0.75 * recent**0.25, 20.0))
    assert recent > own  # the last four weeks were wilder than the errors so far


def test_forecast_cache_keeps_only_its_latest_entries():
    fc = RecordingForecaster()
    cache = ForecastCache(fc, max_entries=2)
    for k in range(3):
        cache(["a"], DAY0, np.full((1, 20), float(k)), 5)
    cache(["a"], DAY0, np.full((1, 20), 0.0), 5)  # evicted: fitted again
    cache(["a"], DAY0, np.full((1, 20), 2.0), 5)  # still there
    assert cache.calls == 4
