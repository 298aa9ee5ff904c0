"""`shopfloor fulfillment import` and `shopfloor restock import-pos` on bad files: one line naming the file, row
and column (with the allowed range for a number), exit 2, and nothing written. On real SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from typer.testing import CliRunner

from shopfloor.cli.main import app
from shopfloor.store.promise_tables import fulfillment_events
from shopfloor.store.restock_tables import purchase_orders

HEADER = "event_id,order_id,type,at,warehouse,carrier,country,postal_code,sku,qty,reason\n"
#: A recent time: the import refuses events older than fulfillment_max_age_days (as the API does).
AT = (datetime.now(timezone.utc) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _picked(i: int) -> str:
    return f"e{i},o{i},picked,{AT},w1,dhl,GB,M1,,,\n"


def _count(url: str, table) -> int:
    eng = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with eng.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
    finally:
        eng.dispose()


def _said(result) -> str:
    return " ".join(result.output.split())


def test_a_bad_time_after_a_thousand_good_rows_writes_nothing_and_names_file_row_and_column(db_url, tmp_path,
                                                                                           monkeypatch):
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", db_url)
    path = tmp_path / "bulk.csv"
    path.write_text(HEADER + "".join(_picked(i) for i in range(1005))
                    + "bad,ob,picked,garbage,w1,dhl,GB,M1,,,\n")
    r = CliRunner().invoke(app, ["fulfillment", "import", str(path)])
    assert r.exit_code == 2, r.output
    assert "bulk.csv: row 1007: at 'garbage' is not a date-time" in _said(r)
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert _count(db_url, fulfillment_events) == 0


def test_an_unknown_returned_sku_past_the_first_batch_writes_nothing(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", db_url)
    path = tmp_path / "late.csv"
    path.write_text(HEADER + "".join(_picked(i) for i in range(1001))
                    + f"r1,o1,returned,{AT},w1,dhl,GB,M1,NO-SUCH-SKU,1,damaged\n")
    r = CliRunner().invoke(app, ["fulfillment", "import", str(path)])
    assert r.exit_code == 2, r.output
    assert "late.csv: row 1003: sku 'NO-SUCH-SKU' is not in the catalog" in _said(r)
    assert "nothing was written" in _said(r)
    assert _count(db_url, fulfillment_events) == 0


def test_a_returned_qty_beyond_the_apis_limit_is_refused_with_the_range(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", db_url)
    path = tmp_path / "huge.csv"
    for qty in ("99999999999999999999999", "100001", "inf", "0"):
        path.write_text(HEADER + f"r3,o7,returned,{AT},w1,dhl,GB,M1,sku1,{qty},damaged\n")
        r = CliRunner().invoke(app, ["fulfillment", "import", str(path)])
        assert r.exit_code == 2, (qty, r.output)
        assert "huge.csv: row 2: qty" in _said(r) and "1 to 100,000" in _said(r), qty
        assert "Traceback" not in r.output and "OverflowError" not in r.output
    assert _count(db_url, fulfillment_events) == 0


def test_a_purchase_order_qty_beyond_the_apis_limit_is_refused_with_the_range(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", db_url)
    path = tmp_path / "po_huge.csv"
    path.write_text("po_id,sku,warehouse,qty,expected_at\np1,TEA-2,W1,5,2026-12-20\n"
                    "p6,TEA-2,W1,99999999999999999999999,2026-12-20\n")
    r = CliRunner().invoke(app, ["restock", "import-pos", str(path)])
    assert r.exit_code == 2, r.output
    assert "po_huge.csv: line 3: qty: 99999999999999999999999 is out of range (allowed: 1 to 10,000,000)" in _said(r)
    assert "OverflowError" not in r.output
    assert _count(db_url, purchase_orders) == 0
