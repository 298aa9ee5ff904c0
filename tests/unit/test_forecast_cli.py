"""`shopfloor forecast` and `shopfloor forecast backtest` through Typer's CliRunner on generated files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from shopfloor.cli.main import app
from shopfloor.forecast import QUANTILE_COLUMNS

runner = CliRunner()


def _write_panel(path, n_series=3, n_days=100, horizon=0):
    rng = np.random.default_rng(0)
    days = pd.date_range("2024-01-01", periods=n_days + horizon, freq="D")
    frames = []
    for i in range(n_series):
        frames.append(pd.DataFrame({
            "unique_id": f"sku{i}/west", "ds": days, "y": rng.poisson(2 + i, len(days)).astype(float),
            "price": np.where(np.arange(len(days)) < 5, np.nan, 3.0 + i), "snap": (days.day < 10).astype(int),
            "event": 0,
        }))
    full = pd.concat(frames, ignore_index=True)
    hist = full[full["ds"] < days[0] + pd.Timedelta(days=n_days)]
    hist.to_csv(path, index=False)
    return full


def test_forecast_without_subcommand_writes_the_quantile_file(tmp_path):
    hist = tmp_path / "history.csv"
    full = _write_panel(hist, horizon=56)
    fut = tmp_path / "future.parquet"
    full[full["ds"] >= pd.Timestamp("2024-01-01") + pd.Timedelta(days=100)].drop(columns="y").to_parquet(fut)
    out = tmp_path / "fc.parquet"
    res = runner.invoke(app, ["forecast", "--history", str(hist), "--horizon", "56", "--future", str(fut),
                              "--out", str(out), "--model", "wa28+tsb", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["rows"] == 3 * 56 and summary["model"] == "wa28+tsb"
    assert summary["future_rows_covered"] == 3 * 56 and "note:" not in res.output
    fc = pd.read_parquet(out)
    assert list(fc.columns) == ["unique_id", "ds", "mean", *QUANTILE_COLUMNS]
    assert (fc[list(QUANTILE_COLUMNS)].diff(axis=1).iloc[:, 1:] >= 0).all().all()


def test_forecast_backtest_subcommand_prints_json_with_baselines(tmp_path):
    hist = tmp_path / "history.csv"
    _write_panel(hist)
    res = runner.invoke(app, ["forecast", "backtest", "--history", str(hist), "--horizon", "7", "--windows", "2",
                              "--step", "7", "--model", "wa28", "--conformal-windows", "2", "--json"])
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert set(result["models"]) == {"wa28", "baseline:snaive", "baseline:ets"}
    assert len(result["cutoffs"]) == 2 and "targets" in result


def test_forecast_backtest_prints_a_table_for_people(tmp_path):
    hist = tmp_path / "history.csv"
    _write_panel(hist)
    res = runner.invoke(app, ["forecast", "backtest", "--history", str(hist), "--horizon", "7", "--windows", "1",
                              "--model", "wa28", "--conformal-windows", "2"])
    assert res.exit_code == 0, res.output
    assert "baseline:ets" in res.output and "cov95" in res.output


def test_backtest_rejects_a_single_conformal_window(tmp_path):
    hist = tmp_path / "history.csv"
    _write_panel(hist)
    res = runner.invoke(app, ["forecast", "backtest", "--history", str(hist), "--conformal-windows", "1"])
    assert res.exit_code == 2 and "--conformal-windows" in res.output


def test_missing_column_gives_a_one_line_error_naming_it(tmp_path):
    hist = tmp_path / "history.csv"
    _write_panel(hist)
    pd.read_csv(hist).drop(columns="y").to_csv(hist, index=False)
    res = runner.invoke(app, ["forecast", "--history", str(hist), "--horizon", "7", "--out", str(tmp_path / "o.csv")])
    assert res.exit_code == 2
    assert "'y'" in res.output and "Traceback" not in res.output


def test_duplicate_rows_give_a_one_line_error(tmp_path):
    hist = tmp_path / "history.csv"
    _write_panel(hist)
    df = pd.read_csv(hist)
    pd.concat([df, df.head(1)]).to_csv(hist, index=False)
    res = runner.invoke(app, ["forecast", "--history", str(hist), "--horizon", "7", "--out", str(tmp_path / "o.csv")])
    assert res.exit_code == 2 and "duplicate" in res.output


def test_missing_history_file_is_reported(tmp_path):
    res = runner.invoke(app, ["forecast", "--history", str(tmp_path / "nope.csv"), "--horizon", "7"])
    assert res.exit_code == 2 and "--history" in res.output


def test_forecast_help_lists_backtest():
    res = runner.invoke(app, ["forecast", "--help"])
    assert res.exit_code == 0 and "backtest" in res.output and "--history" in res.output


def test_backtest_score_from_must_lie_inside_the_horizon(tmp_path):
    hist = tmp_path / "history.csv"
    _write_panel(hist)
    res = runner.invoke(app, ["forecast", "backtest", "--history", str(hist), "--horizon", "7", "--score-from", "8"])
    assert res.exit_code == 2 and "--score-from" in res.output


def test_backtest_score_from_is_reported_in_the_json(tmp_path):
    hist = tmp_path / "history.csv"
    _write_panel(hist)
    res = runner.invoke(app, ["forecast", "backtest", "--history", str(hist), "--horizon", "14", "--windows", "1",
                              "--score-from", "8", "--model", "wa28", "--conformal-windows", "2", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["spec"]["score_from"] == 8


def test_backtest_on_too_short_a_history_says_how_many_days_it_needs(tmp_path):
    hist = tmp_path / "history.csv"
    _write_panel(hist, n_days=60)
    res = runner.invoke(app, ["forecast", "backtest", "--history", str(hist), "--horizon", "28", "--windows", "3"])
    said = " ".join(res.output.split())
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "history spans 60 days" in said and "need at least 112" in said


def test_an_absurd_horizon_is_refused_before_any_work(tmp_path):
    hist = tmp_path / "history.csv"
    _write_panel(hist)
    for cmd in (["forecast", "--out", str(tmp_path / "o.csv")], ["forecast", "backtest"]):
        res = runner.invoke(app, [*cmd, "--history", str(hist), "--horizon", "100000"])
        assert res.exit_code == 2 and "--horizon" in res.output and "1096" in res.output


def test_a_future_file_that_misses_part_of_the_horizon_is_counted_and_noted(tmp_path):
    hist = tmp_path / "history.csv"
    full = _write_panel(hist, horizon=14)
    future = full[full["ds"] >= pd.Timestamp("2024-01-01") + pd.Timedelta(days=100)].drop(columns="y")
    future = future[future["unique_id"] != "sku2/west"]  # one series without planned covariates
    future = future.assign(ds=future["ds"] + pd.Timedelta(days=7))  # and the rest shifted by a week
    fut = tmp_path / "future.csv"
    future.to_csv(fut, index=False)
    res = runner.invoke(app, ["forecast", "--history", str(hist), "--horizon", "14", "--future", str(fut),
                              "--out", str(tmp_path / "fc.parquet"), "--model", "wa28", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["rows"] == 3 * 14 and summary["future_rows_covered"] == 2 * 7
    assert "--future covers 14 of the 42" in " ".join(res.stderr.split())


def test_future_coverage_compares_zone_aware_stamps_as_utc_days(tmp_path):
    hist = tmp_path / "history.csv"
    full = _write_panel(hist, horizon=7)
    future = full[full["ds"] >= pd.Timestamp("2024-01-01") + pd.Timedelta(days=100)].drop(columns="y")
    future = future.assign(ds=future["ds"].dt.tz_localize("UTC").astype(str))  # "2024-04-10 00:00:00+00:00"
    fut = tmp_path / "future.csv"
    future.to_csv(fut, index=False)
    res = runner.invoke(app, ["forecast", "--history", str(hist), "--horizon", "7", "--future", str(fut),
                              "--out", str(tmp_path / "fc.parquet"), "--model", "wa28", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["future_rows_covered"] == 3 * 7


def test_backtest_select_before_refuses_a_bad_date_and_too_few_reporting_origins(tmp_path):
    hist = tmp_path / "history.csv"
    _write_panel(hist, n_days=200)
    res = runner.invoke(app, ["forecast", "backtest", "--history", str(hist), "--select-before", "not-a-date"])
    assert res.exit_code != 0 and "--select-before" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["forecast", "backtest", "--history", str(hist), "--select-before", "2024-05-01"])
    assert res.exit_code != 0 and "reporting origin" in res.output and "Traceback" not in res.output


def test_report_only_refuses_a_default_selected_after_the_date(tmp_path):
    # The packaged default was selected on data before 2014-07-01: reporting it from 2013-06-01 would be in-sample.
    days = pd.date_range("2012-01-01", periods=900, freq="D")
    hist = tmp_path / "history.parquet"
    pd.DataFrame({"unique_id": "a", "ds": days, "y": 1.0}).to_parquet(hist)
    res = runner.invoke(app, ["forecast", "backtest", "--history", str(hist), "--select-before", "2013-06-01",
                              "--report-only", "--report-step", "28"])
    assert res.exit_code != 0 and "in-sample" in res.output and "Traceback" not in res.output


def test_backtest_select_before_writes_the_selection_and_the_per_origin_report_to_out(tmp_path):
    rng = np.random.default_rng(5)
    days = pd.date_range("2012-01-01", periods=900, freq="D")
    frames = [pd.DataFrame({"unique_id": f"s{i}", "ds": days, "y": rng.poisson(3.0 + i, 900).astype(float),
                            "price": 2.0 + i}) for i in range(2)]
    hist = tmp_path / "history.parquet"
    pd.concat(frames, ignore_index=True).to_parquet(hist)
    before = str((days[0] + pd.Timedelta(days=675)).date())
    out, defaults = tmp_path / "protocol.json", tmp_path / "selection.json"
    res = runner.invoke(app, ["forecast", "backtest", "--history", str(hist), "--select-before", before,
                              "--report-step", "28", "--select-step", "28", "--candidate", "wa28",
                              "--candidate", "wa28+snaive", "--baseline-intervals", "model", "--out", str(out),
                              "--write-defaults", str(defaults)])
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    assert result["selection"]["model"] == json.loads(defaults.read_text())["model"]
    assert len(result["report"]["cutoffs"]) >= 6
    assert {r["days"] for r in result["report"]["rows"]} == {"1-28", "29-56"}
    assert all(c >= before for c in result["report"]["cutoffs"])
