"""Impossible order data to `promise backtest` (from a probe): a far-future or year-1 date, a delivery before the
purchase, an order given twice, times that mix UTC offsets and none. Each is a one-line error naming --orders, the
file, the row and the column, exit 2, no traceback and no warning; a valid file scores as before."""

from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from shopfloor.cli.main import app
from tests.support.olist import promise_backtest_args, write_olist
from tests.unit.test_cli_audit_bad_input import _refused as refused

runner = CliRunner()


def _refused(res, *needles: str) -> str:
    said = refused(res, *needles)
    assert "Warning" not in res.output
    return said


def _olist(tmp_path):
    return write_olist(tmp_path, 30, carrier_h=lambda i: 30 + i % 7, delivered_h=lambda i: 150 + 11 * (i % 5))


def _edit_orders(paths, change):
    orders = pd.read_csv(paths["orders"], dtype=str)
    orders = change(orders)
    orders.to_csv(paths["orders"], index=False)


def _set(row, column, value):
    def change(orders):
        orders.loc[row, column] = value
        return orders
    return change


def _backtest(paths, tmp_path, *extra):
    return runner.invoke(app, promise_backtest_args(paths, tmp_path / "p.csv", *extra))


def test_a_delivery_dated_in_year_9999_is_refused_as_after_the_runs_clock(tmp_path):
    paths = _olist(tmp_path)
    _edit_orders(paths, _set(10, "order_delivered_customer_date", "9999-12-31 23:59:59"))
    _refused(_backtest(paths, tmp_path), f"error: --orders {paths['orders']} row 12: order_delivered_customer_date "
                                         "9999-12-31 23:59:59 is after the run's clock")


def test_a_delivery_before_the_purchase_is_refused_naming_the_row(tmp_path):
    paths = _olist(tmp_path)
    _edit_orders(paths, _set(4, "order_delivered_customer_date", "2016-12-30 08:00:00"))
    _refused(_backtest(paths, tmp_path), f"--orders {paths['orders']} row 6: order_delivered_customer_date "
                                         "2016-12-30 08:00:00 is before order_purchase_timestamp 2017-01-03 21:00:00")


def test_a_carrier_hand_off_before_the_purchase_is_refused_too(tmp_path):
    paths = _olist(tmp_path)
    _edit_orders(paths, _set(0, "order_delivered_carrier_date", "2017-01-01 00:00:00"))
    _refused(_backtest(paths, tmp_path), f"--orders {paths['orders']} row 2: order_delivered_carrier_date "
                                         "2017-01-01 00:00:00 is before order_purchase_timestamp")


def test_a_purchase_dated_in_year_one_is_refused_as_too_early(tmp_path):
    paths = _olist(tmp_path)
    _edit_orders(paths, _set(5, "order_purchase_timestamp", "0001-01-01 00:00:00"))
    _refused(_backtest(paths, tmp_path), f"--orders {paths['orders']} row 7: order_purchase_timestamp "
                                         "0001-01-01 00:00:00 is before 2000-01-01")


def test_orders_given_twice_are_refused_naming_both_rows(tmp_path):
    paths = _olist(tmp_path)
    _edit_orders(paths, lambda orders: pd.concat([orders, orders], ignore_index=True))
    _refused(_backtest(paths, tmp_path), f"--orders {paths['orders']} row 32: order_id 'o0' repeats row 2")


def test_times_that_mix_utc_offsets_and_none_are_refused_without_a_warning(tmp_path):
    paths = _olist(tmp_path)
    _edit_orders(paths, _set(7, "order_purchase_timestamp", "2017-01-05 00:00:00+05:00"))
    said = _refused(_backtest(paths, tmp_path),
                    f"--orders {paths['orders']} row 9: order_purchase_timestamp 2017-01-05 00:00:00+05:00 has a "
                    "UTC offset, unlike row 2")
    assert "FutureWarning" not in said and "promise_cmd.py" not in said


def test_a_valid_file_scores_as_before(tmp_path):
    paths = _olist(tmp_path)
    res = _backtest(paths, tmp_path, "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    summary.pop("out")
    assert summary == EXPECTED


def test_times_all_with_utc_offsets_score_as_the_same_instants_in_utc(tmp_path):
    paths = _olist(tmp_path)
    columns = ("order_purchase_timestamp", "order_approved_at", "order_delivered_carrier_date",
               "order_delivered_customer_date")

    def shift(orders):  # the same instants, written at -03:00 (Sao Paulo)
        for col in columns:
            orders[col] = [(pd.Timestamp(v) - pd.Timedelta(hours=3)).strftime("%Y-%m-%d %H:%M:%S") + "-03:00"
                           for v in orders[col]]
        return orders

    _edit_orders(paths, shift)
    res = _backtest(paths, tmp_path, "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    summary.pop("out")
    assert summary == EXPECTED


#: The summary of ``_olist``'s valid file, as the backtest scored it before these checks.
EXPECTED = {"orders_promised": 30, "orders_scored": 30, "confidence": 0.9, "score_from": None, "on_time_rate": 0.9,
            "mean_promised_days": 19.567, "p50_eta_mae_days": 4.9,
            "reference": {"orders_scored": 30, "on_time_rate": 1.0, "mean_promised_days": 19.633,
                          "p50_eta_mae_days": 12.5}}
