"""The restock engine's optional global forecast (``forecast_model="gbm"``): fitted on the replayed history, read
as a per-SKU factor on the level forecast, driven through the agent protocol one scripted day at a time."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from shopfloor.planning.restock_agent import ReplenishmentAgent
from shopfloor.planning.restock_backtest import DemandPanel, neutral_start, simulate_agent
from shopfloor.planning.restock_engine import EngineTuning, RestockEngine, replay_history
from shopfloor.planning.restock_gbm import fit_global

DAY0 = date(2024, 1, 1)
#: the global model as it was first measured (factor smoothed over 7 days, full weight, nothing else changed)
GBM = EngineTuning(forecast_model="gbm", gbm_halflife=7.0, gbm_weight=1.0, gbm_day_residuals=False,
                   gbm_up_to_halflife=0.0)
LEVEL = EngineTuning(forecast_model="level")


def _steady_panel(seed: int, n: int = 60, days: int = 500) -> DemandPanel:
    """Poisson demand at a constant rate per SKU: the best 8-day forecast is the long-run mean."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(2.0, 4.0, size=(n, 1)) * np.ones((1, days))
    return DemandPanel([f"s{i}" for i in range(n)], pd.date_range(DAY0, periods=days),
                       rng.poisson(lam).astype(np.int64))


def _eight_day_rmse(panel: DemandPanel, tuning: EngineTuning, fit_days: int) -> float:
    eng = RestockEngine(lead_time=7, tuning=tuning)
    eng.ensure(panel.ids)
    replay_history(eng, panel.demand[:, :fit_days], panel.weekdays[:fit_days], calibrate=False,
                   first_day=panel.dates[0].date())
    days = panel.demand.shape[1]
    err = []
    for t in range(fit_days, days - 8):
        eng.observe(int(panel.weekdays[t]), panel.demand[:, t].astype(float))
        err.append(panel.demand[:, t + 1:t + 9].sum(axis=1) - eng.daily_means(8).sum(axis=1))
    return float(np.sqrt(np.mean(np.square(err))))


def test_on_steady_demand_the_global_model_forecasts_eight_days_better_than_the_ten_day_level():
    panel = _steady_panel(1)
    level = _eight_day_rmse(panel, LEVEL, fit_days=400)
    gbm = _eight_day_rmse(panel, GBM, fit_days=400)
    assert gbm < 0.96 * level


def test_the_global_model_needs_half_a_year_of_history():
    panel = _steady_panel(2, n=10, days=200)
    assert fit_global(panel.demand[:, :150], panel.weekdays[:150], 8) is None
    assert fit_global(panel.demand, panel.weekdays, 8) is not None


def test_an_unknown_forecast_model_is_rejected_naming_the_knob():
    with pytest.raises(ValueError, match="forecast_model"):
        EngineTuning(forecast_model="arima")


def _lines(panel: DemandPanel, start: int, days: int, history_from: int = 0):
    for t in range(start, start + days):
        line = {"date": panel.dates[t].date().isoformat(),
                "sales": {sku: int(panel.demand[i, t]) for i, sku in enumerate(panel.ids)},
                "on_hand": {sku: 5 for sku in panel.ids}}
        if t == start:
            line["history"] = [{"date": panel.dates[d].date().isoformat(), "sku": sku,
                                "units": int(panel.demand[i, d])}
                               for d in range(history_from, start) for i, sku in enumerate(panel.ids)]
        yield json.dumps(line)


def test_a_scripted_agent_reads_the_global_model_once_it_has_half_a_year_of_history():
    panel = _steady_panel(3, n=12, days=260)
    agent = ReplenishmentAgent(fill_rate=0.95, lead_time=7, tuning=GBM)
    answers = [agent.handle_line(line) for line in _lines(panel, 220, 14)]
    assert all("orders" in a for a in answers)
    assert agent.engine.gbm is not None
    assert not np.allclose(agent.engine.adj, 1.0)  # the global forecast moved the level forecast


def test_with_less_history_the_agent_orders_exactly_as_the_level_model_does():
    panel = _steady_panel(4, n=12, days=160)
    runs = []
    for tuning in (GBM, LEVEL):
        agent = ReplenishmentAgent(fill_rate=0.95, lead_time=7, tuning=tuning)
        runs.append([agent.handle_line(line) for line in _lines(panel, 120, 14)])
        if tuning is GBM:
            assert agent.engine.gbm is None
    assert runs[0] == runs[1]
    assert any(a["orders"] for a in runs[0])


def test_with_the_global_model_decisions_never_depend_on_later_demand():
    panel = _steady_panel(5, n=10, days=300)
    altered = panel.demand.copy()
    altered[:, 251:] = np.random.default_rng(99).poisson(30, size=altered[:, 251:].shape)
    runs = []
    for demand in (panel.demand, altered):
        p = DemandPanel(panel.ids, panel.dates, demand)
        stock = neutral_start(p.demand[:, :200], 7, 1, 0.95)
        agent = ReplenishmentAgent(fill_rate=0.95, lead_time=7, tuning=GBM)
        runs.append(simulate_agent(p, agent.handle, lead_time=7, start=200, warmup=28, on_hand=stock))
        assert agent.engine.gbm is not None
    assert np.array_equal(runs[0].orders[:, :251], runs[1].orders[:, :251])
    assert not np.array_equal(runs[0].orders, runs[1].orders)


def test_the_policy_files_engine_section_turns_the_global_model_off_and_rejects_an_unknown_one():
    from shopfloor.planning.restock import PolicyBook

    assert PolicyBook.from_mapping({"engine": {"forecast_model": "level"}}).engine_tuning().forecast_model == "level"
    assert PolicyBook.from_mapping({}).engine_tuning().forecast_model == "gbm"
    with pytest.raises(ValueError, match="engine"):
        PolicyBook.from_mapping({"engine": {"forecast_model": "prophet"}})


def test_the_order_up_to_smoothing_moves_each_skus_level_part_way_and_only_for_active_skus():
    eng = RestockEngine(lead_time=7, tuning=EngineTuning(gbm_up_to_halflife=1.0))
    eng.ensure(["a", "b", "c"])
    assert list(eng.smooth_up_to(np.array([10, 4, 0]))) == [10, 4, 1]  # first decision: the day's level
    # half-life one day: half of the way to the new level; "c" is inactive and keeps its level
    assert list(eng.smooth_up_to(np.array([30, 0, 9]), np.array([True, True, False]))) == [20, 2, 1]
    assert list(eng.smooth_up_to(np.array([30, 0, 10]))) == [25, 1, 5]
    eng.ensure(["d"])  # a SKU added later starts at its own first level
    assert eng.smooth_up_to(np.array([30, 0, 9, 7]))[3] == 7


def test_a_one_day_spike_orders_less_with_the_order_up_to_smoothing_and_the_level_model_ignores_it():
    panel = _steady_panel(9, n=12, days=260)
    spike = panel.demand[:, -1].astype(float) * 6.0
    orders = {}
    for model in ("gbm", "level"):
        for hl in (0.0, 3.0):
            eng = RestockEngine(lead_time=7, tuning=EngineTuning(forecast_model=model, gbm_halflife=0,
                                                                 gbm_up_to_halflife=hl, controller_gain=0.0,
                                                                 order_cap=0))
            eng.ensure(panel.ids)
            replay_history(eng, panel.demand, panel.weekdays, calibrate=False, first_day=DAY0)
            held = eng.levels()["order_up_to"].astype(float)
            eng.orders(held)  # the position is at the level: nothing to order, the smoothing starts here
            eng.observe(int(panel.weekdays[-1] + 1) % 7, spike)
            orders[model, hl] = eng.orders(held - spike)  # the spike sold out of the position
    assert orders["gbm", 3.0].sum() < orders["gbm", 0.0].sum()
    assert np.array_equal(orders["level", 3.0], orders["level", 0.0])


def test_order_up_to_smoothing_and_the_gbm_knobs_are_validated_naming_the_knob():
    for bad in ({"gbm_up_to_halflife": -1}, {"gbm_min_rate": -0.5}, {"gbm_lags": 8}, {"gbm_lags": 1.5},
                {"gbm_day_residuals": "yes"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            EngineTuning(**bad)


def test_the_global_model_can_leave_out_the_last_days_as_features():
    panel = _steady_panel(6, n=20, days=260)
    full = fit_global(panel.demand, panel.weekdays, 8)
    none = fit_global(panel.demand, panel.weekdays, 8, lags=0)
    assert full.model.n_features_ == 17 and none.model.n_features_ == 10
    recent = panel.demand[:, -364:].astype(float)
    pred = none.predict(recent, np.full(20, recent.shape[1]), 2, None)
    assert pred.shape == (20,) and np.all(pred > 0)


def test_slow_skus_keep_the_level_forecast_under_gbm_min_rate():
    rng = np.random.default_rng(7)
    lam = np.r_[np.full(8, 0.3), np.full(8, 20.0)][:, None] * np.ones((1, 300))
    panel = DemandPanel([f"s{i}" for i in range(16)], pd.date_range(DAY0, periods=300),
                        rng.poisson(lam).astype(np.int64))
    eng = RestockEngine(lead_time=7, tuning=EngineTuning(forecast_model="gbm", gbm_halflife=0, gbm_min_rate=2))
    eng.ensure(panel.ids)
    replay_history(eng, panel.demand, panel.weekdays, calibrate=False, first_day=DAY0)
    assert np.all(eng.adj[:8] == 1.0)
    assert not np.allclose(eng.adj[8:], 1.0)


def test_with_gbm_day_residuals_the_daily_spread_is_measured_against_the_forecast_in_force():
    panel = _steady_panel(8, n=12, days=260)
    day_sq = []
    for flag in (False, True):
        eng = RestockEngine(lead_time=7, tuning=EngineTuning(forecast_model="gbm", gbm_halflife=0,
                                                             gbm_day_residuals=flag))
        eng.ensure(panel.ids)
        replay_history(eng, panel.demand, panel.weekdays, calibrate=False, first_day=DAY0)
        day_sq.append(eng.day_sq.copy())
    assert not np.allclose(day_sq[0], day_sq[1])


def test_the_shipped_blend_with_the_global_model_forecasts_eight_days_better_than_the_level_alone():
    panel = _steady_panel(1)
    level = _eight_day_rmse(panel, LEVEL, fit_days=400)
    shipped = _eight_day_rmse(panel, EngineTuning(), fit_days=400)
    assert EngineTuning().forecast_model == "gbm"
    assert shipped < 0.98 * level


def test_engine_tuning_from_text_reads_each_value_as_its_fields_type():
    tuning = EngineTuning.from_text("restart_days=14, gbm_weight=0.25,forecast_model=level,gbm_day_residuals=no")
    assert tuning.restart_days == 14 and isinstance(tuning.restart_days, int)
    assert tuning.gbm_weight == 0.25
    assert tuning.forecast_model == "level"
    assert tuning.gbm_day_residuals is False
    assert EngineTuning.from_text("") == EngineTuning()


def test_engine_tuning_from_text_names_the_key_it_cannot_read():
    with pytest.raises(ValueError, match="restart_days"):
        EngineTuning.from_text("restart_days=soon")
    with pytest.raises(ValueError, match="unknown tuning key"):
        EngineTuning.from_text("no_such_knob=1")


# --- year-ago features (gbm_yearly, on by default since 2026-12-04) -------------------------------------------------
def test_the_year_ago_features_read_the_same_days_a_year_earlier_and_are_missing_without_a_year():
    from shopfloor.planning.restock_gbm import FEATURES, LAGS, MEMORY, YEARLY_FEATURES, features

    recent = np.ones((2, MEMORY))
    recent[:, :8] = 4.0  # the eight forecast days one year (364 days) earlier: four times the current rate
    X, scale = features(recent, np.array([MEMORY, 100]), 0, 1, LAGS, yearly=8)
    assert X.shape == (2, len(FEATURES) + len(YEARLY_FEATURES))
    assert X[0, -2] == pytest.approx(4.0 / scale[0])
    assert X[0, -1] == pytest.approx(1.0 / scale[0])
    assert np.isnan(X[1, -2:]).all()  # a SKU seen for 100 days has no year ago
    short, _ = features(recent[:, -200:], np.array([200, 200]), 0, 1, LAGS, yearly=8)
    assert np.isnan(short[:, -2:]).all()
    plain, _ = features(recent, np.array([MEMORY, 100]), 0, 1, LAGS)
    assert plain.shape[1] == len(FEATURES)


def test_a_global_model_with_year_ago_features_learns_a_yearly_peak_and_survives_its_text_form():
    from shopfloor.planning.restock_gbm import GlobalForecaster

    rng = np.random.default_rng(5)
    days = 364 * 3
    t = np.arange(days)
    peak = ((t % 364) >= 300) & ((t % 364) < 320)  # three busy weeks every year
    lam = rng.gamma(2.0, 3.0, size=(80, 1)) * np.where(peak, 4.0, 1.0)[None, :]
    y = rng.poisson(lam).astype(float)
    wd = [int(d) % 7 for d in t]
    fit_days = 2 * 364 + 300  # fitted on two years (one peak with a year ago); the third year's peak starts next
    plain = fit_global(y[:, :fit_days], wd[:fit_days], 8, first_day=DAY0)
    yearly = fit_global(y[:, :fit_days], wd[:fit_days], 8, first_day=DAY0, yearly=True)
    assert yearly.yearly and not plain.yearly
    recent = y[:, fit_days - 364:fit_days]
    truth = y[:, fit_days:fit_days + 8].sum(axis=1)
    obs = np.full(80, 364.0)
    err = {name: np.sqrt(np.mean((m.predict(recent, obs, wd[fit_days - 1], None) - truth) ** 2))
           for name, m in (("plain", plain), ("yearly", yearly))}
    assert err["yearly"] < 0.8 * err["plain"]  # last year's peak tells the model this week's
    again = GlobalForecaster.from_text(yearly.to_text())
    assert again.yearly
    assert np.allclose(again.predict(recent, obs, 0, None), yearly.predict(recent, obs, 0, None))
    with pytest.raises(ValueError, match="gbm_yearly"):
        EngineTuning(gbm_yearly="yes")
