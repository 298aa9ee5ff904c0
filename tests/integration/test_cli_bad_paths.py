"""Output paths are checked before any work: a directory where a file is wanted, a file where a directory is
wanted, a parent that is a file, a plot extension matplotlib cannot write. Each is a one-line error naming the
option (exit 2), never a traceback after the work, and nothing is half-written."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from shopfloor.cli.main import app

runner = CliRunner()


def _history(path, n_series=2, n_days=60):
    rng = np.random.default_rng(0)
    days = pd.date_range("2024-01-01", periods=n_days, freq="D")
    frames = [pd.DataFrame({"unique_id": f"s{i}", "ds": days, "y": rng.poisson(3 + i, n_days).astype(float)})
              for i in range(n_series)]
    pd.concat(frames, ignore_index=True).to_csv(path, index=False)
    return path


def _trace(path, minutes=1440):
    rng = np.random.default_rng(4)
    idx = pd.date_range("2026-01-01", periods=minutes, freq="min")
    pd.DataFrame({"minute": idx.strftime("%Y-%m-%d %H:%M:%S"), "count": rng.poisson(50, minutes)}).to_csv(
        path, index=False)
    return path


def _olist(tmp_path, n=40):
    rng = random.Random(1)
    orders, items, customers = [], [], []
    t0 = datetime(2017, 1, 2, 9)
    for i in range(n):
        p = t0 + timedelta(hours=9 * i)
        h = p + timedelta(hours=rng.uniform(10, 90))
        d = h + timedelta(hours=rng.uniform(40, 300))
        orders.append({"order_id": f"o{i}", "customer_id": f"c{i}", "order_status": "delivered",
                       "order_purchase_timestamp": p, "order_approved_at": p + timedelta(hours=1),
                       "order_delivered_carrier_date": h, "order_delivered_customer_date": d,
                       "order_estimated_delivery_date": (p + timedelta(days=25)).date()})
        items.append({"order_id": f"o{i}", "order_item_id": 1, "product_id": "p", "seller_id": f"s{i % 3}"})
        customers.append({"customer_id": f"c{i}", "customer_zip_code_prefix": "1000", "customer_state": "SP"})
    sellers = [{"seller_id": f"s{k}", "seller_state": "SP"} for k in range(3)]
    args = []
    for name, rows in (("orders", orders), ("items", items), ("customers", customers), ("sellers", sellers)):
        pd.DataFrame(rows).to_csv(tmp_path / f"{name}.csv", index=False)
        args += [f"--{name}", str(tmp_path / f"{name}.csv")]
    return args


def _refused(res, option: str, words: str) -> None:
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    said = " ".join(res.output.split())
    assert option in said and words in said, said
    assert "Traceback" not in res.output


@pytest.mark.parametrize("cmd", [["forecast"], ["forecast", "backtest"]])
def test_forecast_and_backtest_refuse_an_out_that_is_a_directory(tmp_path, cmd):
    hist = _history(tmp_path / "h.csv")
    outdir = tmp_path / "outdir"
    outdir.mkdir()
    res = runner.invoke(app, [*cmd, "--history", str(hist), "--horizon", "7", "--model", "wa28", "--out",
                              str(outdir)])
    _refused(res, "--out", "is a directory")
    assert list(outdir.iterdir()) == []


def test_forecast_refuses_an_out_below_a_file_naming_the_file(tmp_path):
    hist = _history(tmp_path / "h.csv")
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    res = runner.invoke(app, ["forecast", "--history", str(hist), "--horizon", "7", "--model", "wa28", "--out",
                              str(blocker / "fc.csv")])
    _refused(res, "--out", "is a file, not a directory")
    assert blocker.read_text() == "x"


def test_capacity_backtest_refuses_a_plot_it_cannot_write_before_writing_the_schedule(tmp_path):
    trace = _trace(tmp_path / "tr.csv")
    schedule = tmp_path / "s.csv"
    res = runner.invoke(app, ["capacity", "backtest", "--trace", str(trace), "--schedule-out", str(schedule),
                              "--plot", str(tmp_path / "x.txt")])
    _refused(res, "--plot", ".png, .svg, .pdf")
    assert not schedule.exists()


def test_capacity_backtest_plot_needs_an_extension_so_the_json_names_the_file_written(tmp_path):
    trace = _trace(tmp_path / "tr.csv")
    res = runner.invoke(app, ["capacity", "backtest", "--trace", str(trace), "--plot", str(tmp_path / "outdir"),
                              "--json"])
    _refused(res, "--plot", ".png")
    assert not (tmp_path / "outdir.png").exists()
    plot = tmp_path / "plots" / "bt.svg"
    res = runner.invoke(app, ["capacity", "backtest", "--trace", str(trace), "--plot", str(plot), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["plot"] == str(plot) and plot.is_file()


def test_capacity_plan_refuses_a_k8s_out_that_is_a_file(tmp_path):
    trace = _trace(tmp_path / "tr.csv")
    target = tmp_path / "manifests"
    target.write_text("not a directory")
    res = runner.invoke(app, ["capacity", "plan", "--trace", str(trace), "--k8s-out", str(target)])
    _refused(res, "--k8s-out", "is a file")
    assert target.read_text() == "not a directory"


def test_promise_backtest_refuses_an_out_directory_and_a_plot_extension_before_the_replay(tmp_path, monkeypatch):
    import shopfloor.promise.backtest as promise_backtest

    args = _olist(tmp_path)

    def no_replay(*a, **k):
        raise AssertionError("the replay ran before the output paths were checked")

    monkeypatch.setattr(promise_backtest, "replay", no_replay)
    outdir = tmp_path / "outdir"
    outdir.mkdir()
    _refused(runner.invoke(app, ["promise", "backtest", *args, "--out", str(outdir)]), "--out", "is a directory")
    res = runner.invoke(app, ["promise", "backtest", *args, "--out", str(tmp_path / "p.csv"), "--plot",
                              str(tmp_path / "cal.txt")])
    _refused(res, "--plot", ".png, .svg, .pdf")
    assert not (tmp_path / "p.csv").exists()


def test_gameday_refuses_a_plot_extension_before_the_run(monkeypatch):
    import shopfloor.gameday as gameday

    def no_run(*a, **k):
        raise AssertionError("the game day ran before --plot-out was checked")

    monkeypatch.setattr(gameday, "run_gameday", no_run)
    res = runner.invoke(app, ["gameday", "--seconds", "10", "--plot-out", "report.txt"])
    _refused(res, "--plot-out", ".png, .svg, .pdf")
