"""Selection apart from reporting: `backtest --select-before DATE`, and the information a backtest may give a model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from shopfloor.forecast import BacktestSpec, backtest, covariate_columns, validate_history
from shopfloor.forecast.backtest import origin_future
from shopfloor.forecast.demand import DefaultSelection, load_default_selection
from shopfloor.forecast.models import parse_weighted_spec
from shopfloor.forecast.protocol import (
    ProtocolSpec,
    SelectionGrid,
    SelectionLeakError,
    check_reportable,
    check_selection_origins,
    protocol_origins,
    report,
    select_default,
)


def make_panel(n_series: int = 4, n_days: int = 400, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    days = pd.date_range("2023-01-01", periods=n_days, freq="D")
    frames = []
    for i in range(n_series):
        lam = (2.0 + i) * (1.0 + 0.4 * np.sin(2 * np.pi * np.arange(n_days) / 7))
        price = np.full(n_days, 3.0 + i)
        price[n_days // 2:] += 1.0  # a price change half way
        frames.append(pd.DataFrame({"unique_id": f"sku{i}", "ds": days, "y": rng.poisson(lam).astype(float),
                                    "price": price, "event": (days.dayofyear % 50 == 0).astype(int)}))
    return pd.concat(frames, ignore_index=True)


SMALL = dict(horizon=14, segments=((1, 7), (8, 14)), report_step=21, select_step=21, min_train_days=120,
             conformal_windows=2)
GRID = SelectionGrid(candidates=("wa28", "snaive+wa28"), dispersion_scales=(0.8, 1.0), weight_step=0.5)


def test_backtest_gives_the_model_the_last_price_known_at_the_cutoff_not_the_true_future_price():
    hist = validate_history(make_panel(n_days=120))
    cutoff = pd.Timestamp("2023-02-20")  # before the price change on day 60
    future = origin_future(hist, cutoff, 28, covariate_columns(hist))
    known = hist[hist["ds"] == cutoff].set_index("unique_id")["price"]
    assert (future["price"].to_numpy() == future["unique_id"].map(known).to_numpy()).all()
    true_future = hist[(hist["ds"] > cutoff) & (hist["ds"] <= cutoff + pd.Timedelta(days=28))]
    assert (true_future["price"].to_numpy() != future["price"].to_numpy()).any()  # the change is not revealed
    # calendar flags are known ahead and pass through unchanged
    assert (future["event"].to_numpy() == true_future["event"].to_numpy()).all()


def test_last_known_price_skips_days_off_sale():
    hist = validate_history(make_panel(n_days=100))  # the price change comes on day 50, after the cutoff
    hist.loc[hist["ds"] >= pd.Timestamp("2023-02-10"), "price"] = np.nan  # off sale from the 10th
    future = origin_future(hist, pd.Timestamp("2023-02-15"), 7, ["price"])
    assert (future.groupby("unique_id")["price"].first() == [3.0, 4.0, 5.0, 6.0]).all()


def test_a_backtest_score_does_not_depend_on_prices_after_the_cutoff():
    panel = make_panel(n_days=200)
    spec = BacktestSpec(horizon=14, windows=1, step=14)
    first = backtest(panel, spec, models=("lgbm",), baselines=False)
    cutoff = pd.Timestamp(first["cutoffs"][0])
    repriced = panel.assign(price=np.where(panel["ds"] > cutoff, panel["price"] * 3.0, panel["price"]))
    assert backtest(repriced, spec, models=("lgbm",), baselines=False)["models"] == first["models"]


def test_selection_origins_end_before_the_date_and_reporting_origins_start_on_or_after_it():
    hist = validate_history(make_panel())
    before = pd.Timestamp("2023-09-01")
    spec = ProtocolSpec(select_before=before, **SMALL)
    selection, reporting = protocol_origins(hist, spec)
    assert selection and reporting
    assert all(c + pd.Timedelta(days=14) < before for c in selection)
    assert all(c + pd.Timedelta(days=1) >= before for c in reporting)
    assert max(reporting) + pd.Timedelta(days=14) == hist["ds"].max()  # the latest full horizon is reported


def test_reporting_origins_include_the_same_season_in_earlier_years():
    days = pd.date_range("2011-01-29", "2016-04-24", freq="D")
    hist = pd.DataFrame({"unique_id": "a", "ds": days, "y": 1.0})
    _, reporting = protocol_origins(hist, ProtocolSpec(select_before=pd.Timestamp("2014-07-01")))
    assert {pd.Timestamp("2015-04-26"), pd.Timestamp("2016-02-28")} <= set(reporting)
    assert len(reporting) >= 6
    selection, _ = protocol_origins(hist, ProtocolSpec(select_before=pd.Timestamp("2014-07-01")))
    assert {pd.Timestamp("2013-04-28"), pd.Timestamp("2014-04-27")} <= set(selection)


def test_selection_refuses_an_origin_scored_on_or_after_select_before():
    before = pd.Timestamp("2023-09-01")
    spec = ProtocolSpec(select_before=before, **SMALL)
    with pytest.raises(SelectionLeakError, match="select-before"):
        select_default(make_panel(), spec, GRID, cutoffs=[before - pd.Timedelta(days=14)])
    with pytest.raises(SelectionLeakError):
        check_selection_origins([pd.Timestamp("2023-08-10")], 28, before)
    check_selection_origins([pd.Timestamp("2023-08-03")], 28, before)  # scored up to Aug 31: allowed


def test_selection_cannot_see_data_on_or_after_select_before(tmp_path):
    panel = make_panel()
    before = pd.Timestamp("2023-09-01")
    spec = ProtocolSpec(select_before=before, **SMALL)
    chosen, details = select_default(panel, spec, GRID)
    poisoned = panel.assign(y=np.where(panel["ds"] >= before, panel["y"] * 50.0 + 100.0, panel["y"]),
                            price=np.where(panel["ds"] >= before, 99.0, panel["price"]))
    again, _ = select_default(poisoned, spec, GRID)
    assert again.to_json() == chosen.to_json()
    assert chosen.select_before == "2023-09-01"
    assert all(pd.Timestamp(c) + pd.Timedelta(days=14) < before for c in details["selected_on"]["cutoffs"])


def test_selection_fits_weights_then_shrinks_them_towards_equal():
    spec = ProtocolSpec(select_before=pd.Timestamp("2023-09-01"), **SMALL)
    grid = SelectionGrid(candidates=("snaive+wa28",), dispersion_scales=(1.0,), weight_step=0.25, shrink=0.5)
    chosen, details = select_default(make_panel(), spec, grid)
    fitted = np.array(details["candidates"][0]["fitted_weights"])
    weights = np.array([w for _, w in parse_weighted_spec(chosen.model)])
    weights = weights / weights.sum()
    assert np.allclose(weights, 0.5 * fitted + 0.25, atol=1e-3)


def test_a_default_selected_on_later_data_cannot_be_reported_as_out_of_sample():
    late = DefaultSelection(model="wa28", dispersion_scale=1.0, select_before="2016-04-25")
    with pytest.raises(SelectionLeakError, match="in-sample"):
        check_reportable(late, pd.Timestamp("2014-07-01"))
    check_reportable(late, pd.Timestamp("2016-05-01"))


def test_report_refuses_origins_scored_before_select_before():
    spec = ProtocolSpec(select_before=pd.Timestamp("2023-09-01"), **SMALL)
    with pytest.raises(SelectionLeakError):
        report(make_panel(), spec, {"m": ("wa28", None)}, cutoffs=[pd.Timestamp("2023-08-01")])


def test_report_has_one_row_per_origin_and_segment_with_the_baselines():
    panel = make_panel()
    spec = ProtocolSpec(select_before=pd.Timestamp("2023-09-01"), **SMALL)
    from shopfloor.forecast import ForecastConfig

    res = report(panel, spec, {"wa28": ("wa28", ForecastConfig())})
    _, reporting = protocol_origins(validate_history(panel), spec)
    assert len(res["rows"]) == 2 * len(reporting)
    assert {"wa28", "baseline:ets", "baseline:snaive"} == set(res["rows"][0]["scores"])
    t = res["summary"]["8-14"]["targets"]["wa28"]
    assert set(t["met"]) == {"wrmsse_5pct_below_ets", "no_origin_1pct_worse", "wspl_10pct_below_ets",
                             "coverage_95_in_92_98"}


def test_the_packaged_default_records_when_it_was_selected():
    sel = load_default_selection()
    assert pd.Timestamp(sel.select_before) <= pd.Timestamp("2016-04-25")
    assert sel.version >= 1 and sel.dispersion_scale > 0
    assert parse_weighted_spec(sel.model)


def test_a_defaults_file_round_trips(tmp_path):
    sel = DefaultSelection(model="lgbm*0.6+ets*0.4", dispersion_scale=0.9, select_before="2014-07-01",
                           details={"selected_on": {"cutoffs": ["2013-04-28"]}})
    path = tmp_path / "d.json"
    path.write_text(json.dumps(sel.to_json()))
    back = load_default_selection(path)
    assert back.model == sel.model and back.dispersion_scale == 0.9 and back.details == sel.details


@pytest.mark.parametrize("spec,msg", [("lgbm*x", "number"), ("lgbm*0", "positive"), ("lgbm+lgbm", "twice"),
                                      ("foo*1", "unknown")])
def test_bad_weighted_specs_are_refused_naming_the_problem(spec, msg):
    with pytest.raises(ValueError, match=msg):
        parse_weighted_spec(spec)


def test_selection_scores_weightings_exactly_as_the_backtest_scores_them():
    from shopfloor.forecast.backtest import origin_forecasts, score_days
    from shopfloor.forecast.demand import ForecastConfig
    from shopfloor.forecast.protocol import _Origin, _SegmentScorer

    hist = validate_history(make_panel(n_days=150))
    cutoff = hist["ds"].max() - pd.Timedelta(days=20)
    train, actual, fcs = origin_forecasts(hist, cutoff, 14, ["wa28", "snaive"], ForecastConfig(), baselines=False)
    grid = fcs["wa28"][["unique_id", "ds"]]
    o = _Origin(cutoff, train, actual, {m: fcs[m]["mean"].to_numpy() for m in ("wa28", "snaive")}, grid, {})
    for first, last in ((1, 7), (8, 14)):
        scorer = _SegmentScorer(o, first, last)
        for w in (0.0, 0.3, 1.0):
            mean = w * o.members["wa28"] + (1 - w) * o.members["snaive"]
            expected = score_days(grid.assign(mean=mean), actual, train, cutoff, first, last)["wrmsse"]
            assert scorer.wrmsse(mean) == pytest.approx(expected, rel=1e-12)


def test_the_dispersion_chosen_keeps_every_selection_origin_inside_the_coverage_band_when_some_setting_does():
    spec = ProtocolSpec(select_before=pd.Timestamp("2023-09-01"), **SMALL)
    grid = SelectionGrid(candidates=("wa28",), dispersion_scales=(0.05, 0.5, 2.0, 8.0),
                         dispersion_growths=(0.0, 1.0), coverage_band=(80.0, 100.0),
                         origin_coverage_band=(85.0, 100.0))
    chosen, details = select_default(make_panel(), spec, grid)
    rows = details["dispersion"]
    assert len(rows) == 8 and sum(r["chosen"] for r in rows) == 1
    pick = next(r for r in rows if r["chosen"])
    assert (chosen.dispersion_scale, chosen.dispersion_growth) == (pick["scale"], pick["growth"])
    eligible = [r for r in rows if 80.0 <= r["coverage_95"] <= 100.0 and r["origins_outside"] == 0]
    assert eligible, "the grid should hold a setting inside both bands"
    assert pick["origins_outside"] == 0 and pick["coverage_95_min"] >= 85.0
    assert pick["wspl"] == min(r["wspl"] for r in eligible)


def test_rescaled_dispersion_scores_as_the_pipeline_with_that_scale_and_growth_scores():
    from dataclasses import replace

    from shopfloor.forecast.backtest import origin_forecasts, score_days
    from shopfloor.forecast.demand import ForecastConfig
    from shopfloor.forecast.protocol import _Origin, select_dispersion

    hist = validate_history(make_panel(n_days=200))
    spec = ProtocolSpec(select_before=pd.Timestamp("2030-01-01"), **SMALL)
    cutoff = hist["ds"].max() - pd.Timedelta(days=20)
    cfg = ForecastConfig()
    train, actual, fcs = origin_forecasts(hist, cutoff, 14, ["wa28"], cfg, baselines=False)
    o = _Origin(cutoff, train, actual, {"wa28": fcs["wa28"]["mean"].to_numpy()}, fcs["wa28"][["unique_id", "ds"]], {})
    grid = SelectionGrid(candidates=("wa28",), dispersion_scales=(0.7,), dispersion_growths=(0.5,))
    row = select_dispersion([o], "wa28", cfg, spec, grid)[0]
    direct = replace(cfg, dispersion=replace(cfg.dispersion, scale=0.7, growth=0.5))
    _, _, again = origin_forecasts(hist, cutoff, 14, ["wa28"], direct, baselines=False)
    scores = [score_days(again["wa28"], actual, train, cutoff, *seg) for seg in spec.segments]
    assert row["wspl"] == pytest.approx(np.mean([s["wspl"] for s in scores]), rel=1e-9)
    assert row["coverage_95"] == pytest.approx(np.mean([s["coverage_95"] for s in scores]), rel=1e-9)


def test_the_selected_dispersion_growth_round_trips_and_reaches_the_forecast_config(tmp_path):
    from shopfloor.forecast.demand import ForecastConfig

    sel = DefaultSelection(model="wa28", dispersion_scale=0.6, dispersion_growth=0.5, select_before="2014-07-01")
    path = tmp_path / "d.json"
    path.write_text(json.dumps(sel.to_json()))
    back = load_default_selection(path)
    assert back.dispersion_growth == 0.5
    assert back.dispersion_config().growth == 0.5 and back.dispersion_config().scale == 0.6
    packaged = load_default_selection()
    assert ForecastConfig().dispersion.growth == packaged.dispersion_growth
    assert ForecastConfig().dispersion.scale == packaged.dispersion_scale


def test_week_scales_multiply_the_dispersion_per_horizon_week_instead_of_the_growth():
    from shopfloor.forecast.distribution import DispersionConfig

    d = DispersionConfig(scale=0.5, growth=1.0, week_scales=(1.0, 2.0, 3.0))
    steps = np.array([1, 7, 8, 14, 15, 21, 22, 56])
    np.testing.assert_allclose(d.horizon_multiplier(steps), [1, 1, 2, 2, 3, 3, 3, 3])
    plain = DispersionConfig(growth=0.5)
    np.testing.assert_allclose(plain.horizon_multiplier(np.array([1, 29])), [1.0, 1.5])
    with pytest.raises(ValueError, match="week_scales"):
        DispersionConfig(week_scales=(1.0, 0.0))


def test_week_scales_round_trip_and_reach_the_forecast(tmp_path):
    from shopfloor.forecast import forecast_distribution
    from shopfloor.forecast.demand import ForecastConfig

    sel = DefaultSelection(model="wa28", dispersion_scale=1.0, dispersion_growth=0.0, select_before="2014-07-01",
                           dispersion_week_scales=(0.5, 1.5))
    path = tmp_path / "d.json"
    path.write_text(json.dumps(sel.to_json()))
    back = load_default_selection(path)
    assert back.dispersion_week_scales == (0.5, 1.5)
    cfg = ForecastConfig(dispersion=back.dispersion_config())
    dist = forecast_distribution(make_panel(), 14, model="wa28", config=cfg).frame
    one = dist[dist["unique_id"] == "sku0"]["dispersion"].to_numpy()
    assert np.allclose(one[7:], 3.0 * one[:7])  # week 2 at 1.5, week 1 at 0.5
    assert "dispersion_week_scales" not in DefaultSelection(model="wa28", dispersion_scale=1.0,
                                                            select_before="2014-07-01").to_json()


def test_the_per_week_dispersion_keeps_each_week_inside_its_band_on_every_selection_origin():
    spec = ProtocolSpec(select_before=pd.Timestamp("2023-09-01"), **SMALL)
    grid = SelectionGrid(candidates=("wa28",), dispersion_scales=(1.0,), dispersion_growths=(0.0,),
                         week_scales=(0.05, 0.5, 2.0, 8.0), week_coverage_band=(85.0, 100.0))
    chosen, details = select_default(make_panel(), spec, grid)
    weekly = details["dispersion_per_week"]
    assert len(weekly["week_scales"]) == 2  # a 14-day horizon has two weeks
    for w, scale in enumerate(weekly["week_scales"], start=1):
        rows = [r for r in weekly["weeks"] if r["week"] == w]
        pick = next(r for r in rows if r["chosen"])
        assert pick["scale"] == scale
        eligible = [r for r in rows if r["outside_by"] == 0.0]
        if eligible:
            assert pick["coverage_95_min"] >= 85.0
            assert pick["wspl"] == min(r["wspl"] for r in eligible)
    # the per-origin-segment result is what the pipeline gives with those scales
    assert len(weekly["result"]["rows"]) == 2 * len(details["selected_on"]["cutoffs"])
    if weekly["chosen"]:
        assert chosen.dispersion_week_scales == tuple(weekly["week_scales"])
        assert (chosen.dispersion_scale, chosen.dispersion_growth) == (1.0, 0.0)
    else:
        assert chosen.dispersion_week_scales is None


def test_the_per_week_dispersion_replaces_the_scalar_one_only_by_the_stated_rule():
    from shopfloor.forecast.protocol import prefer_week_dispersion

    band = (93.0, 97.0)
    inside = {"coverage_95_min": 93.5, "coverage_95_max": 96.0, "wspl": 0.30}
    outside = {"coverage_95_min": 92.5, "coverage_95_max": 96.0, "wspl": 0.20}
    assert prefer_week_dispersion(inside, outside, band)
    assert not prefer_week_dispersion(outside, inside, band)
    assert not prefer_week_dispersion(outside, outside, band)  # neither inside: keep the scalar one
    assert prefer_week_dispersion({**inside, "wspl": 0.29}, inside, band)
    assert not prefer_week_dispersion({**inside, "wspl": 0.31}, inside, band)


def test_a_per_week_choice_cannot_see_data_on_or_after_select_before():
    panel = make_panel()
    before = pd.Timestamp("2023-09-01")
    spec = ProtocolSpec(select_before=before, **SMALL)
    grid = SelectionGrid(candidates=("wa28",), dispersion_scales=(1.0,), week_scales=(0.3, 1.0, 3.0))
    chosen, _ = select_default(panel, spec, grid)
    poisoned = panel.assign(y=np.where(panel["ds"] >= before, panel["y"] * 50.0 + 100.0, panel["y"]))
    again, _ = select_default(poisoned, spec, grid)
    assert again.to_json() == chosen.to_json()


def test_a_reported_origin_scores_the_forecast_a_user_gets_from_the_same_cutoff():
    """The protocol's report forecasts through the backtest (members shared between ensembles, the future built from
    what was known at the cutoff); a user or a scorer runs ``forecast_demand`` (``shopfloor forecast``) on the
    history cut there and a future file of last known prices and calendar flags. Both must be the same forecast,
    or the out-of-sample figures would describe a model nobody runs."""
    from shopfloor.forecast import forecast_demand
    from shopfloor.forecast.backtest import origin_forecasts
    from shopfloor.forecast.demand import ForecastConfig

    hist = validate_history(make_panel(n_series=4, n_days=600))  # long enough for the LightGBM members
    cutoff = hist["ds"].max() - pd.Timedelta(days=28)
    model = load_default_selection().model
    train, _, fcs = origin_forecasts(hist, cutoff, 28, [model], ForecastConfig(), baselines=False)
    future = origin_future(hist, cutoff, 28, covariate_columns(hist))
    assert train["ds"].max() == cutoff and len(future) == 4 * 28
    theirs = forecast_demand(hist[hist["ds"] <= cutoff].reset_index(drop=True), 28, future)
    assert theirs.attrs["model"] == model and not theirs.attrs["fallbacks"]  # every member ran, none fell back
    pd.testing.assert_frame_equal(fcs[model].reset_index(drop=True), theirs.reset_index(drop=True))
