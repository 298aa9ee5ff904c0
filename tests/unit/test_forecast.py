"""Forecasting core on small generated panels: output contract, fallbacks, cold start, metrics, input errors."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from shopfloor.forecast import (
    DEFAULT_MODEL,
    QUANTILE_COLUMNS,
    BacktestSpec,
    DispersionConfig,
    ForecastConfig,
    ForecastInputError,
    LGBMConfig,
    backtest,
    estimate_dispersion,
    evaluate,
    forecast_demand,
    forecast_distribution,
    nb_quantiles,
    per_series_scores,
    pinball,
    point_forecast,
    series_scales,
    validate_history,
)

FAST = ForecastConfig(lgbm=LGBMConfig(n_estimators=30, num_leaves=15, min_child_samples=20, train_days=200))


def make_panel(n_series: int = 6, n_days: int = 150, seed: int = 1, covariates: bool = True) -> pd.DataFrame:
    """Weekly-seasonal smooth series and intermittent ones, with price (NaN off sale), snap and event."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2024-01-01", periods=n_days, freq="D")
    rows = []
    for i in range(n_series):
        level = 0.3 if i % 2 else 5.0 + i
        season = 1.0 + 0.4 * np.sin(2 * np.pi * np.arange(n_days) / 7)
        lam = level * season
        y = rng.poisson(lam)
        frame = pd.DataFrame({"unique_id": f"sku{i}/north", "ds": days, "y": y.astype(float)})
        if covariates:
            price = np.full(n_days, 2.0 + i, dtype=float)
            price[:10] = np.nan  # not on sale yet
            frame["y"] = np.where(np.isnan(price), 0.0, frame["y"])
            frame["price"] = price
            frame["snap"] = (days.day <= 10).astype(int)
            frame["event"] = (days.dayofyear % 30 == 0).astype(int)
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def future_for(panel: pd.DataFrame, horizon: int) -> pd.DataFrame:
    last = panel["ds"].max()
    days = pd.date_range(last + pd.Timedelta(days=1), periods=horizon, freq="D")
    out = []
    for uid, grp in panel.groupby("unique_id"):
        out.append(pd.DataFrame({"unique_id": uid, "ds": days, "price": grp["price"].iloc[-1],
                                 "snap": (days.day <= 10).astype(int), "event": 0}))
    return pd.concat(out, ignore_index=True)


def assert_contract(fc: pd.DataFrame, n_series: int, horizon: int) -> None:
    assert list(fc.columns) == ["unique_id", "ds", "mean", *QUANTILE_COLUMNS]
    assert len(fc) == n_series * horizon
    values = fc[["mean", *QUANTILE_COLUMNS]].to_numpy()
    assert np.isfinite(values).all()
    assert (values >= 0).all()
    q = fc[list(QUANTILE_COLUMNS)].to_numpy()
    assert (np.diff(q, axis=1) >= 0).all()


def test_default_forecast_has_mean_and_nine_non_negative_non_crossing_quantiles():
    panel = make_panel()
    fc = forecast_demand(panel, 14, future_for(panel, 14), config=FAST)
    assert_contract(fc, 6, 14)
    assert fc["ds"].min() == panel["ds"].max() + pd.Timedelta(days=1)


def test_horizon_56_forecasts_every_day_and_stays_sensible():
    panel = make_panel(n_days=200)
    fc = forecast_demand(panel, 56, future_for(panel, 56), config=FAST)
    assert_contract(fc, 6, 56)
    # The smooth series' forecast level in days 29..56 stays near its history level (no recursive blow-up).
    late = fc[fc["ds"] > panel["ds"].max() + pd.Timedelta(days=28)]
    ratio = late.groupby("unique_id")["mean"].mean() / panel.groupby("unique_id")["y"].mean()
    smooth = [u for u in ratio.index if int(u[3]) % 2 == 0]
    assert ratio[smooth].between(0.6, 1.5).all(), ratio


@pytest.mark.parametrize(
    "model", ["ets", "ets_nt", "tsb", "croston_sba", "adida", "imapa", "snaive", "swa", "seas_es", "lgbm",
              "lgbm_direct", "lgbm_direct28", "lgbm_direct14", "lgbm_direct7", "lgbm_mh", "tsb+snaive",
              "lgbm_mh*0.7+ets_nt*0.3"]
)
def test_every_candidate_model_meets_the_output_contract(model):
    panel = make_panel(n_series=4, n_days=120)
    fc = forecast_demand(panel, 7, future_for(panel, 7), model=model, config=FAST)
    assert_contract(fc, 4, 7)


def test_auto_means_the_model_of_the_packaged_selection_file():
    from shopfloor.forecast.demand import load_default_selection

    assert DEFAULT_MODEL == load_default_selection().model
    assert ForecastConfig().dispersion.scale == load_default_selection().dispersion_scale
    assert forecast_demand(make_panel(n_series=2, n_days=120), 3, config=FAST).attrs["model"] == DEFAULT_MODEL


def test_direct_chain_members_take_each_day_from_the_shortest_lag_model_that_sees_only_observed_demand(monkeypatch):
    """``lgbm_direct14`` at h=56: days 1..14 from the min-lag-14 model, 15..28 from min lag 28, 29..56 from the
    ``lgbm_direct`` model (min lag 56); within one ensemble every direct model is trained once."""
    from shopfloor.forecast import models
    from shopfloor.forecast.demand import run_member

    assert models.direct_chain("lgbm_direct7", LGBMConfig()) == [7, 14, 28, 56]
    assert models.direct_chain("lgbm_direct28", LGBMConfig()) == [28, 56]
    assert models.direct_chain("lgbm_direct", LGBMConfig()) == [56]
    assert models.direct_chain("lgbm", LGBMConfig()) == []
    panel = validate_history(make_panel(n_series=3, n_days=300))
    future = future_for(panel, 56)
    covs = ["price", "snap", "event"]
    calls = []
    real = models.lgbm_forecast

    def counting(hist, horizon, fut, cv, *, config, n_jobs=1, name="lgbm", dask_client=None):
        calls.append((config.min_lag, horizon))
        return real(hist, horizon, fut, cv, config=config, n_jobs=n_jobs, name=name)

    monkeypatch.setattr(models, "lgbm_forecast", counting)
    fits: dict = {}
    chain = run_member("lgbm_direct14", panel, 56, future, covs, FAST, 1, None, fits=fits)
    direct = run_member("lgbm_direct", panel, 56, future, covs, FAST, 1, None, fits=fits)
    assert sorted(calls) == [(14, 14), (28, 28), (56, 56)]  # lgbm_direct reused the chain's min-lag-56 model
    step = chain.groupby("unique_id").cumcount().to_numpy() + 1
    for lag, lo, hi in ((14, 1, 14), (28, 15, 28)):
        alone = real(panel, lag, future, covs, config=replace(FAST.lgbm, min_lag=lag), name="x")
        part = chain[(step >= lo) & (step <= hi)].merge(alone, on=["unique_id", "ds"])
        assert len(part) == 3 * (hi - lo + 1)
        assert np.allclose(part["lgbm_direct14"], part["x"])
    late = chain[step > 28].merge(direct, on=["unique_id", "ds"])
    assert len(late) == 3 * 28 and np.allclose(late["lgbm_direct14"], late["lgbm_direct"])
    # A horizon inside the first model's reach trains that model only.
    calls.clear()
    short = run_member("lgbm_direct7", panel, 5, future, covs, FAST, 1, None)
    assert calls == [(7, 5)] and len(short) == 15 and np.isfinite(short["lgbm_direct7"]).all()


def test_lgbm_with_long_level_features_still_trains_on_series_shorter_than_those_windows():
    panel = make_panel(n_series=12, n_days=90)  # shorter than the 112-day level window at lag 28
    fc = forecast_demand(panel, 7, future_for(panel, 7), model="lgbm", config=FAST)
    assert_contract(fc, 12, 7)
    assert fc.attrs["fallbacks"] == {}


def test_a_panel_too_small_for_a_global_model_falls_back_per_series_instead_of_to_the_panel_average():
    # Three flat series (8, 1 and 0 a day) for 60 days leave a handful of training rows: a LightGBM fitted on them
    # predicted the panel's average (3/day) for every series.
    days = pd.date_range("2026-01-01", periods=60, freq="D")
    panel = pd.concat([pd.DataFrame({"unique_id": sku, "ds": days, "y": float(level)})
                       for sku, level in (("tea", 8), ("mug", 1), ("pot", 0))])
    fc = forecast_demand(panel, 14, model="lgbm")
    assert len(fc.attrs["fallbacks"]) == 3
    assert all("fewer than the" in why for why in fc.attrs["fallbacks"].values())
    means = fc.groupby("unique_id")["mean"].mean()
    assert means["tea"] == pytest.approx(8) and means["mug"] == pytest.approx(1) and means["pot"] == 0


@pytest.mark.parametrize("direct", [False, True])
def test_lgbm_keeps_enough_history_to_roll_its_long_level_features_forward(monkeypatch, direct):
    """Forecasts do not change when the model is given more history than ``state_days`` says it needs."""
    from shopfloor.forecast import models

    assert models.state_days(LGBMConfig()) >= 28 + 112
    panel = validate_history(make_panel(n_series=4, n_days=500))
    future = future_for(panel, 28)
    cfg = LGBMConfig(n_estimators=30, num_leaves=15, min_child_samples=20, train_days=200)
    if direct:
        cfg = models.direct_config(cfg)
        assert models.state_days(cfg) >= 56 + 112
    covs = ["price", "snap", "event"]
    needed = models.lgbm_forecast(panel, 28, future, covs, config=cfg)
    monkeypatch.setattr(models, "_LONG_STATE_DAYS", 290)
    generous = models.lgbm_forecast(panel, 28, future, covs, config=cfg)
    assert np.allclose(needed["lgbm"].to_numpy(), generous["lgbm"].to_numpy())


def test_direct_lgbm_uses_no_lag_shorter_than_56_days():
    """So for every day up to 56 ahead its features are observed demand, never its own earlier predictions."""
    from shopfloor.forecast import models

    cfg = models.direct_config(LGBMConfig())
    assert min(models._lags(cfg.min_lag)) >= 56
    assert min(models._lag_transforms(cfg.long_levels, cfg.min_lag)) >= 56
    assert min(models._lags(LGBMConfig().min_lag)) == 1


def test_forecast_without_future_file_ignores_covariates():
    panel = make_panel(n_series=4, n_days=120)
    fc = forecast_demand(panel, 7, None, model="lgbm", config=FAST)
    assert_contract(fc, 4, 7)


def test_failing_model_falls_back_to_trailing_mean_for_every_series():
    panel = validate_history(make_panel(n_series=3, covariates=False))

    def runner(member, hist, horizon, *rest):
        raise RuntimeError("boom")

    point, fallbacks, failed = point_forecast(panel, 5, "ets", runner=runner)
    assert set(fallbacks) == set(panel["unique_id"]) and failed == {"ets": "RuntimeError: boom"}
    assert all("boom" in reason for reason in fallbacks.values())
    expected = panel.groupby("unique_id").tail(28).groupby("unique_id")["y"].mean()
    got = point.groupby("unique_id")["mean"].first()
    assert np.allclose(got.to_numpy(), expected.reindex(got.index).to_numpy())


def test_nan_from_a_model_falls_back_only_for_that_series():
    panel = validate_history(make_panel(n_series=3, covariates=False))

    def runner(member, hist, horizon, *rest):
        from shopfloor.forecast.frames import horizon_dates

        grid = horizon_dates(hist, horizon)
        grid[member] = 1.0
        grid.loc[grid["unique_id"] == "sku1/north", member] = np.nan
        return grid

    point, fallbacks, failed = point_forecast(panel, 5, "ets", runner=runner)
    assert list(fallbacks) == ["sku1/north"] and failed == {}
    assert (point.loc[point["unique_id"] != "sku1/north", "mean"] == 1.0).all()
    assert np.isfinite(point["mean"]).all()


def test_new_sku_with_short_history_gets_a_shrunk_rate_forecast():
    panel = make_panel(n_series=4, n_days=120, covariates=False)
    new = pd.DataFrame({"unique_id": "new/north", "ds": pd.date_range(panel["ds"].max() - pd.Timedelta(days=4),
                        periods=5, freq="D"), "y": [3.0, 0.0, 4.0, 2.0, 1.0]})
    dist = forecast_distribution(pd.concat([panel, new]), 7, model="tsb", config=FAST)
    assert dist.cold_start == ["new/north"]
    fc = dist.quantile_frame()
    rate = fc.loc[fc["unique_id"] == "new/north", "mean"]
    assert len(rate) == 7 and rate.nunique() == 1
    own = new["y"].mean()
    prior = panel.groupby("unique_id").tail(28).groupby("unique_id")["y"].mean().median()
    assert min(own, prior) <= rate.iloc[0] <= max(own, prior)


def test_cold_start_uses_the_group_prior_when_a_group_column_is_given():
    panel = make_panel(n_series=4, n_days=120, covariates=False)
    panel["category"] = np.where(panel["unique_id"].isin(["sku0/north", "sku2/north"]), "big", "small")
    new = pd.DataFrame({"unique_id": "new/north", "ds": [panel["ds"].max()], "y": [0.0], "category": "big"})
    cfg = ForecastConfig(group_column="category", lgbm=FAST.lgbm)
    fc = forecast_demand(pd.concat([panel, new]), 3, model="wa28", config=cfg)
    big = panel[panel["category"] == "big"].groupby("unique_id").tail(28).groupby("unique_id")["y"].mean().median()
    expected = 14.0 * big / (1 + 14.0)
    assert fc.loc[fc["unique_id"] == "new/north", "mean"].iloc[0] == pytest.approx(expected)


def test_all_zero_series_forecasts_zero_everywhere():
    panel = make_panel(n_series=2, n_days=90, covariates=False)
    panel.loc[panel["unique_id"] == "sku1/north", "y"] = 0.0
    fc = forecast_demand(panel, 7, model="wa28")
    zero = fc[fc["unique_id"] == "sku1/north"]
    assert (zero[["mean", *QUANTILE_COLUMNS]].to_numpy() == 0).all()


def test_nb_quantiles_match_scipy_and_collapse_to_zero_for_zero_mean():
    from scipy import stats

    q = nb_quantiles(np.array([4.0, 0.0]), np.array([0.5, 0.5]), (0.1, 0.5, 0.9))
    n, p = 2.0, 2.0 / (2.0 + 4.0)
    assert q[0].tolist() == stats.nbinom.ppf([0.1, 0.5, 0.9], n, p).tolist()
    assert q[1].tolist() == [0.0, 0.0, 0.0]


def test_dispersion_is_near_zero_for_poisson_and_large_for_overdispersed_series():
    rng = np.random.default_rng(3)
    days = pd.date_range("2023-01-01", periods=400, freq="D")
    poisson = pd.DataFrame({"unique_id": "p", "ds": days, "y": rng.poisson(10, 400).astype(float)})
    lam = rng.gamma(shape=1.0, scale=10.0, size=400)  # NB with alpha = 1
    over = pd.DataFrame({"unique_id": "o", "ds": days, "y": rng.poisson(lam).astype(float)})
    alpha = estimate_dispersion(pd.concat([poisson, over]), DispersionConfig(shrink_days=0, scale=1.0))
    assert alpha["p"] < 0.05
    assert 0.6 < alpha["o"] < 1.5
    # The default scale (0.8) multiplies the estimate.
    scaled = estimate_dispersion(pd.concat([poisson, over]), DispersionConfig(shrink_days=0))
    assert scaled["o"] == pytest.approx(0.8 * alpha["o"])


def test_sample_paths_and_lead_time_demand_agree_with_the_mean():
    panel = make_panel(n_series=2, n_days=90, covariates=False)
    dist = forecast_distribution(panel, 10, model="wa28")
    index, paths = dist.sample_paths(n_paths=4000, seed=1)
    assert paths.shape == (4000, 20) and (paths >= 0).all()
    assert np.allclose(paths.mean(axis=0), dist.frame["mean"], rtol=0.1, atol=0.05)
    ltd = dist.lead_time_demand(7, quantiles=(0.5, 0.95))
    first7 = dist.frame.groupby("unique_id").head(7).groupby("unique_id")["mean"].sum()
    assert np.allclose(ltd.set_index("unique_id")["mean"], first7)
    assert (ltd["q_0.95"] >= ltd["q_0.5"]).all()


# --- metrics against hand-computed values ---------------------------------------------------------------------

def _tiny():
    train = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2024-01-01", periods=5),
                          "y": [0.0, 2.0, 4.0, 2.0, 4.0], "price": [1.0, 1.0, 1.0, 1.0, 1.0]})
    actual = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2024-01-06", periods=2), "y": [3.0, 5.0]})
    fc = actual[["unique_id", "ds"]].copy()
    fc["mean"] = [2.0, 3.0]
    for c in QUANTILE_COLUMNS:
        fc[c] = [2.0, 3.0]
    return train, actual, fc


def test_rmsse_and_spl_match_hand_computed_values():
    train, actual, fc = _tiny()
    # Scale from the first non-zero sale: y = 2,4,2,4 -> diffs 2,-2,2 -> MSE 4, MAE 2.
    scales = series_scales(train)
    assert scales.loc["a", "rmsse_scale"] == pytest.approx(4.0)
    assert scales.loc["a", "spl_scale"] == pytest.approx(2.0)
    res = evaluate(fc, actual, train)
    # errors 1 and 2 -> MSE 2.5 -> RMSSE sqrt(2.5 / 4)
    assert res["rmsse"] == pytest.approx(np.sqrt(2.5 / 4))
    # all quantiles equal the forecast: pinball per day = mean_q(q) * err = 0.5 * err -> mean 0.75, / MAE 2
    assert res["spl"] == pytest.approx(0.75 / 2.0)
    assert res["coverage_95"] == 0.0 and res["coverage_50"] == 0.0


def test_pinball_loss_is_asymmetric_as_defined():
    loss = pinball(np.array([10.0]), np.array([[8.0, 12.0]]), (0.9, 0.9))
    assert loss.tolist() == [[pytest.approx(1.8), pytest.approx(0.2)]]


def test_dollar_weighted_rmsse_weights_by_recent_revenue():
    train, actual, fc = _tiny()
    train_b = train.assign(unique_id="b", price=3.0)
    actual_b = actual.assign(unique_id="b")
    fc_b = fc.assign(unique_id="b", mean=[3.0, 5.0])  # perfect -> RMSSE 0
    res = evaluate(pd.concat([fc, fc_b]), pd.concat([actual, actual_b]), pd.concat([train, train_b]))
    # revenue: a = 12 * 1, b = 12 * 3 -> weights 0.25 / 0.75
    assert res["wrmsse"] == pytest.approx(0.25 * np.sqrt(2.5 / 4))
    assert res["rmsse"] == pytest.approx(0.5 * np.sqrt(2.5 / 4))


def test_coverage_counts_actuals_inside_inclusive_bounds():
    train, actual, fc = _tiny()
    fc["q_0.025"], fc["q_0.975"] = [0.0, 0.0], [3.0, 4.0]
    fc["q_0.25"], fc["q_0.75"] = [3.0, 5.0], [3.0, 5.0]
    per = per_series_scores(fc, actual, train)
    assert per.loc["a", "cov95"] == 0.5
    assert per.loc["a", "cov50"] == 1.0


def test_rmsse_agrees_with_utilsforecast():
    from utilsforecast.losses import rmsse

    train, actual, fc = _tiny()
    train = train[train["y"].cumsum() > 0]  # utilsforecast scales on all given history
    ours = evaluate(fc, actual, train)["rmsse"]
    theirs = rmsse(actual.merge(fc[["unique_id", "ds", "mean"]]), models=["mean"], seasonality=1, train_df=train)
    assert ours == pytest.approx(float(theirs["mean"].iloc[0]))


# --- bad input -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("missing", ["unique_id", "ds", "y"])
def test_missing_required_column_is_named(missing):
    panel = make_panel(n_series=1, n_days=40).drop(columns=[missing])
    with pytest.raises(ForecastInputError) as err:
        forecast_demand(panel, 7)
    assert err.value.column == missing and missing in str(err.value)


def test_non_numeric_y_is_rejected_naming_the_column():
    panel = make_panel(n_series=1, n_days=40)
    panel["y"] = panel["y"].astype(object)
    panel.loc[3, "y"] = "lots"
    with pytest.raises(ForecastInputError, match="'y' must be numeric") as err:
        forecast_demand(panel, 7)
    assert err.value.column == "y"


def test_duplicate_rows_are_rejected_naming_the_key():
    panel = make_panel(n_series=1, n_days=40)
    panel = pd.concat([panel, panel.iloc[[5]]])
    with pytest.raises(ForecastInputError, match="duplicate") as err:
        forecast_demand(panel, 7)
    assert err.value.column == "unique_id, ds"


def test_negative_demand_and_bad_dates_are_rejected():
    panel = make_panel(n_series=1, n_days=40)
    with pytest.raises(ForecastInputError) as err:
        forecast_demand(panel.assign(y=-1.0), 7)
    assert err.value.column == "y"
    with pytest.raises(ForecastInputError) as err:
        forecast_demand(panel.assign(ds="not a date"), 7)
    assert err.value.column == "ds"


def test_unknown_model_and_bad_horizon_are_rejected():
    panel = make_panel(n_series=1, n_days=40)
    with pytest.raises(ForecastInputError) as err:
        forecast_demand(panel, 7, model="prophet")
    assert err.value.column == "model"
    with pytest.raises(ForecastInputError) as err:
        forecast_demand(panel, 0)
    assert err.value.column == "horizon"


def test_gaps_inside_a_series_are_filled_with_zero_demand():
    panel = make_panel(n_series=1, n_days=40, covariates=False).drop(index=[10, 11])
    hist = validate_history(panel)
    assert len(hist) == 40
    assert hist.loc[10:11, "y"].tolist() == [0.0, 0.0]


def test_categorical_ids_in_any_row_order_validate_like_string_ids():
    panel = make_panel(n_series=3, n_days=30).sample(frac=1.0, random_state=0)  # rows shuffled
    as_cat = panel.assign(unique_id=pd.Categorical(panel["unique_id"], categories=["zzz", *sorted(panel["unique_id"].unique())]))
    got, want = validate_history(as_cat), validate_history(panel)
    assert got["unique_id"].map(type).eq(str).all()
    pd.testing.assert_frame_equal(got, want)
    assert want.equals(want.sort_values(["unique_id", "ds"]).reset_index(drop=True))


def test_duplicate_rows_with_categorical_ids_are_rejected():
    panel = make_panel(n_series=2, n_days=20)
    panel = pd.concat([panel, panel.iloc[[25]]], ignore_index=True)
    panel["unique_id"] = panel["unique_id"].astype("category")
    with pytest.raises(ForecastInputError, match="1 duplicate") as err:
        validate_history(panel)
    assert "sku1/north" in str(err.value)


def test_keep_days_keeps_each_series_own_last_days():
    panel = make_panel(n_series=2, n_days=60, covariates=False)
    panel = panel[~((panel["unique_id"] == "sku1/north") & (panel["ds"] > panel["ds"].min() + pd.Timedelta(days=39)))]
    hist = validate_history(panel.assign(unique_id=panel["unique_id"].astype("category")), keep_days=10)
    sizes = hist.groupby("unique_id")["ds"].agg(["size", "max"])
    assert sizes["size"].tolist() == [10, 10]
    assert sizes.loc["sku1/north", "max"] == panel["ds"].min() + pd.Timedelta(days=39)


# --- backtest ------------------------------------------------------------------------------------------------

def test_backtest_never_lets_a_model_see_data_after_its_cutoff():
    panel = make_panel(n_series=3, n_days=120, covariates=False)
    spec = BacktestSpec(horizon=7, windows=2, step=7, conformal_windows=1)
    first = backtest(panel, spec, models=("wa28",), baselines=False)
    # Changing demand after the last cutoff + horizon of window 1 must not change window 1's scores.
    cut2 = pd.Timestamp(first["cutoffs"][1])
    poisoned = panel.copy()
    poisoned.loc[poisoned["ds"] > cut2, "y"] += 1000.0
    second = backtest(poisoned, spec, models=("wa28",), baselines=False)
    assert first["windows"][0]["scores"] == second["windows"][0]["scores"]
    assert first["windows"][1]["scores"] != second["windows"][1]["scores"]


def test_backtest_reports_baselines_and_targets():
    panel = make_panel(n_series=3, n_days=120)
    spec = BacktestSpec(horizon=7, windows=1, step=7, conformal_windows=2)
    res = backtest(panel, spec, models=("tsb",), config=FAST)
    assert set(res["models"]) == {"tsb", "baseline:snaive", "baseline:ets"}
    for scores in res["models"].values():
        assert {"rmsse", "wrmsse", "spl", "coverage_50", "coverage_95"} <= set(scores)
    assert set(res["targets"]["met"]) == {
        "accuracy_vs_ets_5pct", "accuracy_vs_snaive_20pct", "spl_vs_conformal_ets_10pct", "coverage_95_within_3pts"
    }


def test_lead_time_demand_handles_per_series_lead_times_in_batches():
    panel = make_panel(n_series=3, n_days=90, covariates=False)
    dist = forecast_distribution(panel, 10, model="wa28")
    ltd = dist.lead_time_demand({"sku0/north": 3, "sku1/north": 10}, quantiles=(0.5, 0.99), n_paths=3000,
                                batch_series=2).set_index("unique_id")
    means = dist.frame.assign(step=dist.frame.groupby("unique_id").cumcount() + 1)
    assert ltd.loc["sku0/north", "mean"] == pytest.approx(means.query("unique_id == 'sku0/north' and step <= 3")["mean"].sum())
    assert ltd.loc["sku2/north", "lead_time_days"] == 0 and ltd.loc["sku2/north", "q_0.99"] == 0
    # a 10-day total has a median near its mean and an upper tail above it
    row = ltd.loc["sku1/north"]
    assert row["q_0.99"] > row["mean"] and abs(row["q_0.5"] - row["mean"]) <= 0.25 * row["mean"] + 1


def test_backtest_scores_only_the_days_from_score_from_on():
    panel = make_panel(n_series=3, n_days=120, covariates=False)
    spec = BacktestSpec(horizon=14, windows=1, step=14, score_from=8)
    first = backtest(panel, spec, models=("wa28",), baselines=False)
    cutoff = pd.Timestamp(first["cutoffs"][0])
    early = panel["ds"].between(cutoff + pd.Timedelta(days=1), cutoff + pd.Timedelta(days=7))
    late = panel["ds"] > cutoff + pd.Timedelta(days=7)
    # Actuals of days 1..7 are not scored; those of days 8..14 are.
    assert backtest(panel.assign(y=panel["y"] + 50.0 * early), spec, models=("wa28",), baselines=False)["models"] \
        == first["models"]
    assert backtest(panel.assign(y=panel["y"] + 50.0 * late), spec, models=("wa28",), baselines=False)["models"] \
        != first["models"]
    assert first["spec"]["score_from"] == 8


def test_backtest_rejects_score_from_outside_the_horizon():
    panel = make_panel(n_series=2, n_days=60, covariates=False)
    with pytest.raises(ValueError, match="score_from"):
        backtest(panel, BacktestSpec(horizon=7, windows=1, score_from=8), models=("wa28",), baselines=False)


# --- multi-horizon LightGBM ----------------------------------------------------------------------------------

def test_multi_horizon_features_use_nothing_after_the_forecast_origin():
    from shopfloor.forecast.horizon_lgbm import _Block

    rng = np.random.default_rng(5)
    days = pd.date_range("2023-01-01", periods=500, freq="D")
    y = rng.poisson(3.0, size=(4, 500)).astype("float64")
    y[2, :100] = np.nan  # a series that starts later
    price = np.tile(np.linspace(2.0, 3.0, 500), (4, 1))
    flags = {"event": rng.integers(0, 2, size=(4, 560)).astype("float64")}
    origin = np.array([300, 420, 150, 499])
    rows = np.array([0, 1, 2, 3])
    k = np.array([1, 56, 30, 14])
    last = np.full(4, 499)
    before = _Block(y, price, flags, last, days.append(pd.date_range(days[-1], periods=61)[1:]))
    f1 = before.features(rows, origin, k)
    y2, p2 = y.copy(), price.copy()
    for r, o in zip(rows, origin):
        y2[r, o + 1:] = 1000.0  # everything after the origin changes
        p2[r, o + 1:] = 99.0
    after = _Block(y2, p2, flags, last, before.days)
    f2 = after.features(rows, origin, k)
    for name in f1:
        np.testing.assert_array_equal(f1[name], f2[name], err_msg=name)
    # the same-weekday mean of day origin + k reads only days on or before the origin, 7 days apart
    assert f1["dow4"][0] == pytest.approx(np.mean(y[0, [294, 287, 280, 273]]))
    assert f1["m28"][1] == pytest.approx(np.mean(y[1, 393:421]))


def test_multi_horizon_lgbm_follows_the_weekly_pattern_over_a_56_day_horizon():
    from shopfloor.forecast.horizon_lgbm import HorizonLGBMConfig

    panel = make_panel(n_series=6, n_days=400, covariates=False)
    cfg = replace(FAST, mh=HorizonLGBMConfig(n_estimators=60, min_child_samples=20))
    fc = forecast_demand(panel, 56, model="lgbm_mh", config=cfg)
    assert_contract(fc, 6, 56)
    smooth = fc[fc["unique_id"] == "sku4/north"].copy()
    smooth["dow"] = smooth["ds"].dt.dayofweek
    hist = panel[panel["unique_id"] == "sku4/north"].assign(dow=lambda d: d["ds"].dt.dayofweek)
    # forecast and history agree on which weekdays sell most, at both ends of the horizon
    by_dow_hist = hist.groupby("dow")["y"].mean()
    late = smooth.iloc[28:].groupby("dow")["mean"].mean()
    assert np.corrcoef(by_dow_hist, late)[0, 1] > 0.8
    assert late.mean() == pytest.approx(hist["y"].tail(56).mean(), rel=0.25)


# --- lgbm_rel: the level-normalised multi-horizon LightGBM -----------------------------------------------------

REL_FAST = dict(n_estimators=60, min_child_samples=20, origin_days=200)


def test_level_normalised_lgbm_forecasts_every_day_non_negative_on_each_series_own_level():
    from shopfloor.forecast.horizon_lgbm import HorizonLGBMConfig

    panel = make_panel(n_series=6, n_days=400, covariates=False)
    # one series sells 40x more than its twin: one set of trees must serve both scales
    big = panel[panel["unique_id"] == "sku4/north"].assign(unique_id="sku4/big")
    big["y"] = big["y"] * 40.0
    panel = pd.concat([panel, big], ignore_index=True)
    cfg = replace(FAST, rel=HorizonLGBMConfig(normalise=True, **REL_FAST))
    fc = forecast_demand(panel, 56, model="lgbm_rel", config=cfg)
    assert_contract(fc, 7, 56)
    for uid in ("sku4/north", "sku4/big", "sku1/north"):
        recent = panel[panel["unique_id"] == uid]["y"].tail(56).mean()
        got = fc[fc["unique_id"] == uid]["mean"]
        assert got.iloc[28:].mean() == pytest.approx(recent, rel=0.3), uid
    ratio = fc[fc["unique_id"] == "sku4/big"]["mean"].mean() / fc[fc["unique_id"] == "sku4/north"]["mean"].mean()
    assert 25 < ratio < 60
    # the weekly shape carries to the far end of the horizon
    smooth = fc[fc["unique_id"] == "sku4/big"].assign(dow=lambda d: d["ds"].dt.dayofweek)
    hist = big.assign(dow=lambda d: d["ds"].dt.dayofweek)
    assert np.corrcoef(hist.groupby("dow")["y"].mean(), smooth.iloc[28:].groupby("dow")["mean"].mean())[0, 1] > 0.8


def test_level_normalised_features_use_nothing_after_the_forecast_origin():
    from shopfloor.forecast.horizon_lgbm import HorizonLGBMConfig, _Block, _level, _normalise

    rng = np.random.default_rng(3)
    y = rng.poisson(4.0, size=(3, 500)).astype("float64")
    days = pd.date_range("2020-01-01", periods=560, freq="D")
    cfg = HorizonLGBMConfig(normalise=True)
    rows, origin, k = np.array([0, 1, 2]), np.array([420, 300, 499]), np.array([1, 56, 29])
    blk = _Block(y, None, {}, np.full(3, 499), days)
    f1 = _normalise(blk.features(rows, origin, k), _level(blk, rows, origin, cfg))
    y2 = y.copy()
    for r, o in zip(rows, origin):
        y2[r, o + 1:] = 5000.0
    blk2 = _Block(y2, None, {}, np.full(3, 499), days)
    f2 = _normalise(blk2.features(rows, origin, k), _level(blk2, rows, origin, cfg))
    for name in f1:
        np.testing.assert_array_equal(f1[name], f2[name], err_msg=name)
    assert f1["m56"][0] == pytest.approx(1.0)  # demand features are relative to the 56-day level
    assert f1["log_level"][0] == pytest.approx(np.log(y[0, 365:421].mean()))


def test_level_normalised_lgbm_forecast_ignores_demand_and_prices_after_the_cutoff():
    from shopfloor.forecast.backtest import origin_forecasts
    from shopfloor.forecast.horizon_lgbm import HorizonLGBMConfig

    panel = validate_history(make_panel(n_series=4, n_days=360))
    cfg = replace(FAST, rel=HorizonLGBMConfig(normalise=True, **REL_FAST))
    cutoff = panel["ds"].max() - pd.Timedelta(days=60)
    _, _, clean = origin_forecasts(panel, cutoff, 28, ["lgbm_rel"], cfg, baselines=False)
    poisoned = panel.copy()
    after = poisoned["ds"] > cutoff
    poisoned.loc[after, "y"] = 10_000.0
    poisoned.loc[after, "price"] = 0.01
    _, _, dirty = origin_forecasts(poisoned, cutoff, 28, ["lgbm_rel"], cfg, baselines=False)
    pd.testing.assert_frame_equal(clean["lgbm_rel"], dirty["lgbm_rel"])
    assert clean["lgbm_rel"]["mean"].max() < 100


# --- lgbm_rel_recent: lgbm_rel with the last days' demand ---------------------------------------------------------

def test_recent_features_read_the_last_days_before_the_origin_and_nothing_after_it():
    from shopfloor.forecast.horizon_lgbm import HorizonLGBMConfig, _Block, _level, _normalise

    rng = np.random.default_rng(11)
    y = rng.poisson(4.0, size=(3, 500)).astype("float64")
    days = pd.date_range("2020-01-01", periods=560, freq="D")
    cfg = HorizonLGBMConfig(normalise=True, recent=True)
    rows, origin, k = np.array([0, 1, 2]), np.array([420, 300, 499]), np.array([1, 9, 29])
    blk = _Block(y, None, {}, np.full(3, 499), days)
    level = _level(blk, rows, origin, cfg)
    f1 = _normalise(blk.features(rows, origin, k, recent=True), level)
    y2 = y.copy()
    for r, o in zip(rows, origin):
        y2[r, o + 1:] = 5000.0
    blk2 = _Block(y2, None, {}, np.full(3, 499), days)
    f2 = _normalise(blk2.features(rows, origin, k, recent=True), _level(blk2, rows, origin, cfg))
    for name in ("y0", "m3", "m14", "dow1"):
        np.testing.assert_array_equal(f1[name], f2[name], err_msg=name)
    assert f1["y0"][0] == pytest.approx(y[0, 420] / level[0])
    assert f1["m3"][1] == pytest.approx(y[1, 298:301].mean() / level[1])
    # day origin + 9 is a weekday whose latest known value lies 14 - 9 = 5 days before the origin
    assert f1["dow1"][1] == pytest.approx(y[1, 295] / level[1])
    # without ``recent`` the features are lgbm_rel's, unchanged
    assert "y0" not in blk.features(rows, origin, k)


def test_recent_member_is_a_separate_cache_entry_from_lgbm_rel():
    from shopfloor.forecast.backtest import MemberCache
    from shopfloor.forecast.demand import REL_CONFIG, REL_RECENT_CONFIG

    assert repr(REL_CONFIG) == repr(REL_RECENT_CONFIG)  # ``recent`` is left out of repr ...
    assert MemberCache.fingerprint(*REL_CONFIG.fingerprint_parts()) \
        != MemberCache.fingerprint(*REL_RECENT_CONFIG.fingerprint_parts())  # ... but not out of the cache key


def test_horizon_lgbm_settings_are_refused_early():
    from shopfloor.forecast.horizon_lgbm import HorizonLGBMConfig

    with pytest.raises(ValueError, match="bags"):
        HorizonLGBMConfig(bags=0)
    with pytest.raises(ValueError, match="level_floor"):
        HorizonLGBMConfig(normalise=True, level_floor=0.0)


def test_recent_member_forecasts_each_series_on_its_own_level():
    from shopfloor.forecast.horizon_lgbm import HorizonLGBMConfig

    panel = make_panel(n_series=6, n_days=400, covariates=False)
    cfg = replace(FAST, rel_recent=HorizonLGBMConfig(normalise=True, recent=True, **REL_FAST))
    fc = forecast_demand(panel, 28, model="lgbm_rel_recent+wa28", config=cfg)
    assert_contract(fc, 6, 28)
    assert not fc.attrs["fallbacks"]
    for i in range(6):
        true_level = 0.3 if i % 2 else 5.0 + i  # make_panel's weekly-seasonal Poisson means
        got = fc[fc["unique_id"] == f"sku{i}/north"]["mean"].mean()
        assert got == pytest.approx(true_level, rel=0.2, abs=0.15), i


# --- lgbm_tw_store / lgbm_tw_dept: raw-unit Tweedie LightGBMs, one per store or department ---------------------

def test_series_groups_read_store_and_department_from_m5_ids_and_pool_small_or_unmatched_groups():
    from shopfloor.forecast.demand import DEPT_PATTERN, STORE_PATTERN
    from shopfloor.forecast.horizon_lgbm import POOLED_GROUP, series_groups

    ids = ["FOODS_3_586_CA_1", "FOODS_3_090_CA_1", "HOBBIES_1_001_TX_2", "ITEM_00007_S3", "no-group-here"]
    assert series_groups(ids, STORE_PATTERN).tolist() == ["CA_1", "CA_1", "TX_2", "S3", POOLED_GROUP]
    assert series_groups(ids, DEPT_PATTERN).tolist()[:3] == ["FOODS_3", "FOODS_3", "HOBBIES_1"]
    # groups below the minimum size join the pooled group; the others keep theirs
    assert series_groups(ids, STORE_PATTERN, min_series=2).tolist() == ["CA_1", "CA_1", *[POOLED_GROUP] * 3]


def _two_store_panel(n_days: int = 400) -> pd.DataFrame:
    base = make_panel(n_series=6, n_days=n_days, covariates=False)
    a = base.assign(unique_id=base["unique_id"].str.replace("/north", "_S1", regex=False))
    b = base.assign(unique_id=base["unique_id"].str.replace("/north", "_S2", regex=False), y=base["y"] * 3.0)
    return pd.concat([a, b], ignore_index=True)


def test_grouped_lgbm_trains_one_model_per_group_sharing_the_row_cap(monkeypatch):
    import shopfloor.forecast.horizon_lgbm as hl

    seen = []
    real = hl._horizon_forecast

    def spy(history, horizon, future, covs, cfg, n_jobs, name, dask_client):
        seen.append((sorted(history["unique_id"].unique()), cfg.max_rows, cfg.group_pattern))
        return real(history, horizon, future, covs, cfg, n_jobs, name, dask_client)

    monkeypatch.setattr(hl, "_horizon_forecast", spy)
    panel = validate_history(_two_store_panel())
    cfg = hl.HorizonLGBMConfig(origin_days=200, n_estimators=30, min_child_samples=20, max_rows=10_000,
                               group_pattern=r"S\d+$", min_group_series=2)
    out = hl.horizon_lgbm_forecast(panel, 14, None, [], config=cfg, name="lgbm_tw_store")
    assert [ids for ids, _, _ in seen] == [[f"sku{i}_S1" for i in range(6)], [f"sku{i}_S2" for i in range(6)]]
    assert [rows for _, rows, _ in seen] == [5_000, 5_000] and all(p is None for _, _, p in seen)
    assert len(out) == 12 * 14 and out["lgbm_tw_store"].notna().all()


def test_a_store_model_does_not_see_the_other_stores_data():
    from shopfloor.forecast.horizon_lgbm import HorizonLGBMConfig

    panel = _two_store_panel()
    cfg = replace(FAST, tw_store=HorizonLGBMConfig(origin_days=200, n_estimators=40, min_child_samples=20,
                                                   group_pattern=r"S\d+$", min_group_series=2))
    clean = forecast_demand(panel, 28, model="lgbm_tw_store", config=cfg)
    assert_contract(clean, 12, 28)
    assert not clean.attrs["fallbacks"]
    other = panel.copy()
    other.loc[other["unique_id"].str.endswith("_S2"), "y"] *= 7.0  # only store S2 changes
    dirty = forecast_demand(other, 28, model="lgbm_tw_store", config=cfg)
    s1 = clean["unique_id"].str.endswith("_S1")
    np.testing.assert_allclose(clean.loc[s1, "mean"], dirty.loc[s1, "mean"])
    assert dirty.loc[~s1, "mean"].mean() > 3.0 * clean.loc[~s1, "mean"].mean()
    # raw units: each store's forecast sits on its own level (store S2 sells 3x store S1)
    for i in (0, 4):
        for store, mult in (("S1", 1.0), ("S2", 3.0)):
            recent = panel[panel["unique_id"] == f"sku{i}_{store}"]["y"].tail(56).mean()
            got = clean[clean["unique_id"] == f"sku{i}_{store}"]["mean"].mean()
            assert got == pytest.approx(recent, rel=0.3), (i, store)


def test_grouped_members_are_separate_cache_entries_and_named_models():
    from shopfloor.forecast.backtest import MemberCache
    from shopfloor.forecast.demand import TW_DEPT_CONFIG, TW_STORE_CONFIG
    from shopfloor.forecast.models import MODEL_NAMES

    assert {"lgbm_tw_store", "lgbm_tw_dept"} <= set(MODEL_NAMES)
    ungrouped = replace(TW_STORE_CONFIG, group_pattern=None)
    keys = {MemberCache.fingerprint(*c.fingerprint_parts()) for c in (TW_STORE_CONFIG, TW_DEPT_CONFIG, ungrouped)}
    assert len(keys) == 3
    assert not TW_STORE_CONFIG.normalise and TW_STORE_CONFIG.tweedie_variance_power == 1.1
    with pytest.raises(Exception):
        replace(TW_STORE_CONFIG, group_pattern="(unclosed")


def test_a_store_too_short_to_train_alone_is_forecast_by_a_model_of_every_series():
    from shopfloor.forecast.horizon_lgbm import HorizonLGBMConfig, horizon_lgbm_forecast

    panel = _two_store_panel()
    young = panel["unique_id"].str.endswith("_S2") & (panel["ds"] < panel["ds"].max() - pd.Timedelta(days=40))
    panel = validate_history(panel[~young].reset_index(drop=True))  # store S2: 41 days, too few for its own model
    cfg = HorizonLGBMConfig(origin_days=200, n_estimators=30, min_child_samples=20, group_pattern=r"S\d+$",
                            min_group_series=2)
    out = horizon_lgbm_forecast(panel, 14, None, [], config=cfg, name="tw")
    assert len(out) == 12 * 14 and out["tw"].notna().all()
    alone = horizon_lgbm_forecast(panel[panel["unique_id"].str.endswith("_S1")], 14, None, [], config=cfg, name="tw")
    s1 = out[out["unique_id"].str.endswith("_S1")].reset_index(drop=True)
    np.testing.assert_allclose(s1["tw"], alone["tw"])  # S1 still trains on its own
    s2 = out[out["unique_id"].str.endswith("_S2")].reset_index(drop=True)
    whole = horizon_lgbm_forecast(panel, 14, None, [], config=replace(cfg, group_pattern=None), name="tw")
    np.testing.assert_allclose(s2["tw"], whole[whole["unique_id"].str.endswith("_S2")]["tw"])
    with pytest.raises(ValueError, match="too few"):  # nothing long enough anywhere: the member fails (falls back)
        horizon_lgbm_forecast(panel[panel["unique_id"].str.endswith("_S2")], 14, None, [], config=cfg, name="tw")
