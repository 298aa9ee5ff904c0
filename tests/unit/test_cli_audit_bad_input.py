"""Bad input to `forecast`, `forecast backtest`, `capacity`, `promise backtest` and `serve`, from an audit: each is a
one-line error naming the option (and the file, row and column where there is one), exit 2, no traceback; --json
output is strict JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from shopfloor.cli.main import app
from tests.support.olist import promise_backtest_args, write_olist

runner = CliRunner()


def _said(res) -> str:
    return " ".join(res.output.split())


def _refused(res, *needles: str) -> str:
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    said = _said(res)
    for needle in needles:
        assert needle in said, said
    assert "Traceback" not in res.output
    return said


def _history(path, n_series=2, n_days=60, zeros=False, price=False):
    rng = np.random.default_rng(0)
    days = pd.date_range("2024-01-01", periods=n_days, freq="D")
    frames = []
    for i in range(n_series):
        y = np.zeros(n_days) if zeros else rng.poisson(3 + i, n_days).astype(float)
        frame = pd.DataFrame({"unique_id": f"s{i}", "ds": days.strftime("%Y-%m-%d"), "y": y})
        if price:
            frame["price"] = 2.0 + i
        frames.append(frame)
    pd.concat(frames, ignore_index=True).to_csv(path, index=False)
    return path


def _strict_json(text: str):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


# --- forecast backtest -------------------------------------------------------------------------------------------

def test_backtest_json_of_an_all_zero_history_is_strict_json_with_null_rmsse(tmp_path):
    hist = _history(tmp_path / "zeros.csv", zeros=True)
    res = runner.invoke(app, ["forecast", "backtest", "--history", str(hist), "--horizon", "7", "--windows", "2",
                              "--step", "7", "--model", "wa28", "--conformal-windows", "2", "--json"])
    assert res.exit_code == 0, res.output
    result = _strict_json(res.stdout)
    assert result["models"]["wa28"]["rmsse"] is None
    assert all(w["scores"]["wa28"]["rmsse"] is None for w in result["windows"])


def test_backtest_table_of_an_all_zero_history_shows_a_dash_and_says_why(tmp_path):
    hist = _history(tmp_path / "zeros.csv", zeros=True)
    res = runner.invoke(app, ["forecast", "backtest", "--history", str(hist), "--horizon", "7", "--windows", "1",
                              "--model", "wa28", "--conformal-windows", "2"])
    assert res.exit_code == 0, res.output
    assert "nan" not in res.stdout.lower() and "not defined" in _said(res)


def test_backtest_refuses_more_conformal_windows_than_the_history_allows_and_says_how_many(tmp_path):
    hist = _history(tmp_path / "h.csv", n_days=60)
    res = runner.invoke(app, ["forecast", "backtest", "--history", str(hist), "--horizon", "7", "--windows", "1",
                              "--model", "wa28", "--conformal-windows", "100"])
    # 53 days of training before the only origin: (53 - 7) // 7 = 6 windows of 7 days fit
    _refused(res, "--conformal-windows", "at most 6")


@pytest.mark.parametrize("cmd", [["forecast"], ["forecast", "backtest"]])
@pytest.mark.parametrize("jobs", ["0", "-3"])
def test_jobs_below_one_is_a_usage_error(tmp_path, cmd, jobs):
    hist = _history(tmp_path / "h.csv")
    res = runner.invoke(app, [*cmd, "--history", str(hist), "--horizon", "7", "--model", "wa28", "--jobs", jobs,
                              "--out", str(tmp_path / "o.json")])
    _refused(res, "--jobs")
    assert not (tmp_path / "o.json").exists()


def test_backtest_select_before_that_is_empty_is_not_a_date(tmp_path):
    hist = _history(tmp_path / "h.csv")
    res = runner.invoke(app, ["forecast", "backtest", "--history", str(hist), "--select-before", ""])
    said = _refused(res, "--select-before", "not a date")
    assert "NaT" not in said


def test_backtest_progress_never_reaches_stdout(tmp_path):
    hist = _history(tmp_path / "h.csv")
    res = runner.invoke(app, ["forecast", "backtest", "--history", str(hist), "--horizon", "7", "--windows", "1",
                              "--model", "bogus"])
    _refused(res, "--model")
    assert res.stdout == ""
    ok = runner.invoke(app, ["forecast", "backtest", "--history", str(hist), "--horizon", "7", "--windows", "1",
                             "--model", "wa28", "--conformal-windows", "2"])
    assert ok.exit_code == 0, ok.output
    assert "origin " not in ok.stdout and "baseline:ets" in ok.stdout


# --- forecast ----------------------------------------------------------------------------------------------------

def test_forecast_bad_date_names_the_file_row_and_value_in_one_line(tmp_path):
    hist = _history(tmp_path / "h.csv")
    frame = pd.read_csv(hist)
    frame.loc[4, "ds"] = "not-a-date"
    frame.to_csv(hist, index=False)
    res = runner.invoke(app, ["forecast", "--history", str(hist), "--horizon", "7", "--model", "wa28",
                              "--out", str(tmp_path / "o.csv")])
    _refused(res, f"--history {hist} row 6: ds is not a date: 'not-a-date'")
    assert len(res.output.strip().splitlines()) == 1


@pytest.mark.parametrize("cmd", [["forecast"], ["forecast", "backtest"]])
def test_unknown_model_is_blamed_on_the_model_option_with_the_choices(tmp_path, cmd):
    hist = _history(tmp_path / "h.csv")
    res = runner.invoke(app, [*cmd, "--history", str(hist), "--horizon", "7", "--model", "bogus",
                              "--out", str(tmp_path / "o.csv")])
    said = _refused(res, "--model: unknown model 'bogus'", "choose from auto, ets")
    assert "column 'model'" not in said


def test_forecast_says_which_history_covariates_a_future_file_lacks_and_forecasts_without_them(tmp_path):
    import json

    hist = _history(tmp_path / "h.csv", price=True)
    future = tmp_path / "future.csv"
    days = pd.date_range("2024-03-01", periods=7, freq="D")
    pd.DataFrame({"unique_id": np.repeat(["s0", "s1"], 7), "ds": np.tile(days, 2)}).to_csv(future, index=False)
    res = runner.invoke(app, ["forecast", "--history", str(hist), "--horizon", "7", "--future", str(future),
                              "--model", "wa28", "--out", str(tmp_path / "o.csv"), "--json"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o.csv").exists()
    said = " ".join(res.output.split())
    assert "lacks the history's covariate column(s) 'price'" in said and "trained without them" in said
    summary = json.loads(res.stdout[res.stdout.index("{"):])
    assert summary["covariates_not_in_future"] == ["price"]


def test_forecast_refuses_an_absurd_demand_naming_file_row_and_column(tmp_path):
    hist = _history(tmp_path / "h.csv")
    frame = pd.read_csv(hist)
    frame.loc[3, "y"] = 1e308
    frame.to_csv(hist, index=False)
    res = runner.invoke(app, ["forecast", "--history", str(hist), "--horizon", "7", "--model", "wa28",
                              "--out", str(tmp_path / "o.csv")])
    _refused(res, f"--history {hist} row 5: y is 1e+308")
    assert "overflow" not in res.output


def test_forecast_summary_says_when_every_series_fell_back(tmp_path, monkeypatch):
    import shopfloor.forecast.demand as demand

    def broken(member, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(demand, "run_member", broken)
    hist = _history(tmp_path / "h.csv")
    res = runner.invoke(app, ["forecast", "--history", str(hist), "--horizon", "7", "--model", "wa28",
                              "--out", str(tmp_path / "o.csv")])
    assert res.exit_code == 0, res.output
    assert "fallback for 2 of 2 series: trailing 28-day mean, every member failed" in _said(res)
    res = runner.invoke(app, ["forecast", "--history", str(hist), "--horizon", "7", "--model", "wa28",
                              "--out", str(tmp_path / "o.csv"), "--json"])
    summary = json.loads(res.stdout)
    assert summary["failed_members"] == ["wa28"] and summary["fallback_series"] == 2


# --- capacity ----------------------------------------------------------------------------------------------------

@pytest.fixture()
def trace(tmp_path):
    idx = pd.date_range("2026-01-01", periods=1440, freq="min")
    counts = np.random.default_rng(4).poisson(50, len(idx))
    path = tmp_path / "trace.csv"
    pd.DataFrame({"minute": idx.strftime("%Y-%m-%d %H:%M:%S"), "count": counts}).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("cmd", ["plan", "backtest"])
def test_an_uplift_beyond_a_hundredfold_is_refused_naming_the_field(tmp_path, trace, cmd):
    cal = tmp_path / "events.csv"
    cal.write_text("start,end,kind,uplift\n2026-01-01 08:00,2026-01-01 10:00,sale,1e308\n")
    res = runner.invoke(app, ["capacity", cmd, "--trace", str(trace), "--events", str(cal)])
    _refused(res, "--events uplift", "row 1", "at most 100")


@pytest.mark.parametrize("cmd", ["plan", "desired"])
def test_a_now_pandas_cannot_hold_is_refused(trace, cmd):
    res = runner.invoke(app, ["capacity", cmd, "--trace", str(trace), "--now", "2999-01-01T00:00:00Z"])
    _refused(res, "--now", "2999")


@pytest.mark.parametrize("now", ["1980-01-01", "2030-01-01T00:00:00Z"])
@pytest.mark.parametrize("cmd", ["plan", "desired"])
def test_a_now_outside_the_trace_is_refused_naming_its_span(trace, cmd, now):
    res = runner.invoke(app, ["capacity", cmd, "--trace", str(trace), "--now", now, "--json"])
    _refused(res, "--now", "outside the trace", "2026-01-01T00:00:00+00:00 .. 2026-01-01T23:59:00+00:00")


def test_desired_answers_for_a_now_within_a_day_after_the_trace_and_refuses_one_later(trace):
    for now in ("2026-01-01T12:00:00Z", "2026-01-02T06:00:00Z"):
        res = runner.invoke(app, ["capacity", "desired", "--trace", str(trace), "--now", now, "--json"])
        assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["capacity", "desired", "--trace", str(trace), "--now", "2026-01-03T00:00:00Z"])
    _refused(res, "--now", "outside the trace")


def test_slot_minutes_zero_is_blamed_on_slot_minutes(trace):
    res = runner.invoke(app, ["capacity", "plan", "--trace", str(trace), "--slot-minutes", "0"])
    said = _refused(res, "--slot-minutes")
    assert "--horizon-minutes" not in said


def test_demand_forecast_without_its_columns_names_the_file_and_the_columns(tmp_path, trace):
    forecast = tmp_path / "fc.csv"
    forecast.write_text("sku,mean\na,1\n")
    res = runner.invoke(app, ["capacity", "plan", "--trace", str(trace), "--demand-forecast", str(forecast)])
    said = _refused(res, f"--demand-forecast {forecast}", "'unique_id'", "'ds'")
    assert "--unique-id" not in said


@pytest.mark.parametrize("cmd", ["plan", "desired", "backtest"])
def test_an_unknown_time_zone_is_called_one(trace, cmd):
    res = runner.invoke(app, ["capacity", cmd, "--trace", str(trace), "--tz", "Mars/Olympus"])
    _refused(res, "--tz: unknown time zone 'Mars/Olympus'")


@pytest.mark.parametrize("count", ["1e300", "inf"])
def test_a_request_count_beyond_the_bound_is_refused_naming_file_row_and_column(tmp_path, count):
    path = tmp_path / "tr.csv"
    path.write_text(f"minute,count\n2026-01-01 00:00:00,5\n2026-01-01 00:01:00,{count}\n2026-01-01 00:02:00,7\n")
    res = runner.invoke(app, ["capacity", "backtest", "--trace", str(path), "--json"])
    _refused(res, f"--trace {path} row 3: count is")
    assert res.stdout == ""


# --- promise backtest --------------------------------------------------------------------------------------------

def _olist(tmp_path):
    return write_olist(tmp_path)


def _promise_args(paths, tmp_path):
    return promise_backtest_args(paths, tmp_path / "p.csv")


def test_promise_backtest_names_an_empty_customers_file(tmp_path):
    paths = _olist(tmp_path)
    paths["customers"].write_text("")
    res = runner.invoke(app, _promise_args(paths, tmp_path))
    said = _refused(res, f"--customers: {paths['customers']} is empty")
    assert "input:" not in said


def test_promise_backtest_names_the_file_row_and_column_of_a_bad_date(tmp_path):
    paths = _olist(tmp_path)
    orders = pd.read_csv(paths["orders"], dtype=str)
    orders.loc[1, "order_purchase_timestamp"] = "garbage"
    orders.to_csv(paths["orders"], index=False)
    res = runner.invoke(app, _promise_args(paths, tmp_path))
    _refused(res, f"--orders {paths['orders']} row 3, column order_purchase_timestamp: not a date: 'garbage'")


# --- serve -------------------------------------------------------------------------------------------------------

def test_serve_log_level_is_a_choice_of_uvicorns_levels(monkeypatch, tmp_path):
    import uvicorn

    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", f"sqlite:///{tmp_path / 'sf.db'}")
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: (_ for _ in ()).throw(KeyError(k.get("log_level"))))
    res = runner.invoke(app, ["serve", "--log-level", "bogus"])
    assert res.exit_code == 2 and not isinstance(res.exception, KeyError)
    said = _said(res)
    assert "--log-level" in said and "bogus" in said and "critical" in said and "trace" in said
