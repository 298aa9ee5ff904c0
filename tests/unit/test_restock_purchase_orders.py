"""Purchase-order parsing and rules, and the restock CLI's input errors (no database needed)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from typer.testing import CliRunner

from shopfloor.cli.main import app
from shopfloor.domain.errors import InvalidInput, InvalidTransition
from shopfloor.planning.purchase_orders import PurchaseOrderIn, check_po_update, parse_purchase_orders_csv

HEADER = "po_id,sku,warehouse,qty,expected_at,status,supplier\n"


def test_csv_rows_become_purchase_orders_with_utc_dates():
    pos = parse_purchase_orders_csv(HEADER + "P1,A,W1,12,2026-03-10,,acme\nP2,B,W2,3,2026-03-11T10:00:00+02:00,received,\n")
    assert [p.po_id for p in pos] == ["P1", "P2"]
    assert pos[0].expected_at == datetime(2026, 3, 10, tzinfo=timezone.utc) and pos[0].status == "open"
    assert pos[1].expected_at == datetime(2026, 3, 11, 8, tzinfo=timezone.utc) and pos[1].supplier is None


@pytest.mark.parametrize("body, message", [
    ("P1,A,W1,0,2026-03-10,,\n", "line 2: qty"),
    ("P1,A,W1,x,2026-03-10,,\n", "line 2: qty"),
    ("P1,A,W1,1,next week,,\n", "line 2: expected_at"),
    ("P1,A,W1,1,2026-03-10,shipped,\n", "line 2: status"),
    ("P1,,W1,1,2026-03-10,,\n", "line 2: sku"),
    ("P1,A,W1,1,2026-03-10,,\nP1,A,W1,2,2026-03-10,,\n", "line 3: po_id"),
])
def test_bad_csv_rows_name_the_line_and_field(body, message):
    with pytest.raises(InvalidInput, match=message):
        parse_purchase_orders_csv(HEADER + body)


def test_csv_header_must_have_the_required_columns():
    with pytest.raises(InvalidInput, match="missing column"):
        parse_purchase_orders_csv("po_id,sku,qty\nP1,A,1\n")
    with pytest.raises(InvalidInput, match="unknown column"):
        parse_purchase_orders_csv("po_id,sku,warehouse,qty,expected_at,colour\n")


def test_final_purchase_orders_only_accept_identical_replays():
    at = datetime(2026, 3, 10, tzinfo=timezone.utc)
    existing = {"po_id": "P1", "sku": "A", "warehouse": "W1", "qty": 5, "expected_at": at, "status": "received",
                "supplier": None}
    check_po_update(existing, PurchaseOrderIn("P1", "A", "W1", 5, at, "received"))
    with pytest.raises(InvalidTransition):
        check_po_update(existing, PurchaseOrderIn("P1", "A", "W1", 5, at, "open"))
    check_po_update({**existing, "status": "open"}, PurchaseOrderIn("P1", "A", "W1", 9, at, "cancelled"))


def test_backtest_cli_reports_bad_input_in_one_line(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["restock", "backtest", "--history", str(tmp_path / "nope.csv")])
    assert r.exit_code == 2 and "--history" in r.output and "Traceback" not in r.output
    bad = tmp_path / "h.csv"
    bad.write_text("sku,day,units\nA,2020-01-01,3\n")
    r = runner.invoke(app, ["restock", "backtest", "--history", str(bad)])
    assert r.exit_code == 2 and "unique_id, ds, y" in r.output
    r = runner.invoke(app, ["restock", "backtest", "--history", str(bad), "--fill-rates", "0.9,abc"])
    assert r.exit_code == 2 and "--fill-rates" in r.output
    r = runner.invoke(app, ["restock", "backtest", "--history", str(bad), "--order-cap", "0.5"])
    assert r.exit_code == 2 and "--order-cap" in r.output and "Traceback" not in r.output
    short = tmp_path / "s.csv"
    short.write_text("unique_id,ds,y\n" + "".join(f"a,2020-01-{d:02d},1\n" for d in range(1, 29)))
    r = runner.invoke(app, ["restock", "backtest", "--history", str(short)])
    assert r.exit_code == 2 and "history has 28 days" in r.output


def test_backtest_cli_runs_the_shipped_agent_and_prints_json(tmp_path):
    import json

    import numpy as np

    rng = np.random.default_rng(3)
    rows = "".join(f"s{i},{d.date()},{rng.poisson(2 + i)}\n" for i in range(4)
                   for d in __import__("pandas").date_range("2020-01-01", periods=200))
    hist = tmp_path / "h.csv"
    hist.write_text("unique_id,ds,y\n" + rows)
    r = CliRunner().invoke(app, ["restock", "backtest", "--history", str(hist), "--fill-rates", "0.9",
                                 "--test-days", "56", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert "restock agent" in out["policy"] and out["targets"][0]["target"] == 0.9
    assert out["targets"][0]["baseline_at_equal_fill"]["z"] is not None
    for key in ("inventory_ratio_vs_baseline", "inventory_ratio_vs_sales_baseline"):
        assert isinstance(out["targets"][0][key], float)
    table = CliRunner().invoke(app, ["restock", "backtest", "--history", str(hist), "--fill-rates", "0.9",
                                     "--test-days", "56"])
    assert table.exit_code == 0, table.output
    assert "sales-fed" in table.output and "demand-fed" in table.output
