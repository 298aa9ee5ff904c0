"""Values no store can mean are refused naming the field, before anything is written (found by a probe of the
file-reading commands): order times in year 1 or 9999, NUL characters and surplus fields in purchase orders, key
names the store cannot hold, and non-finite or absurd windows for the payments status."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from shopfloor.cli.main import app
from shopfloor.store.engine import make_engine
from shopfloor.store.restock_tables import purchase_orders
from shopfloor.store.tables import api_keys, orders
from tests.support.store import seed

HEADER = "external_id,created_at,sku,qty,unit_price,currency,country,postal_code\n"


@pytest.fixture
def store(db_url, monkeypatch):
    engine = make_engine(db_url)
    seed(engine, {"W1": ("north", "DE", ["1"])}, {"TEA-1": 499}, {("TEA-1", "W1"): 100})
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", db_url)
    yield engine
    engine.dispose()


def _run(*args: str):
    return CliRunner().invoke(app, list(args))


def _count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"])
def test_an_order_dated_in_a_placeholder_year_is_refused_naming_created_at(store, tmp_path, when):
    path = tmp_path / "orders.csv"
    path.write_text(HEADER + f"B9,{when},TEA-1,1,499,EUR,DE,10115\n")
    r = _run("orders", "import", str(path))
    assert r.exit_code != 0 and "created_at" in r.output and "outside the years 1990..2199" in r.output
    assert _count(store, orders) == 0


def test_an_order_time_with_an_impossible_utc_offset_says_so(store, tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(HEADER + "B9,2026-10-01T10:00:00+25:00,TEA-1,1,499,EUR,DE,10115\n")
    r = _run("orders", "import", str(path))
    assert r.exit_code != 0 and "UTC offset is out of range" in r.output and "timedelta" not in r.output


@pytest.mark.parametrize("row, needle", [
    ("PO1,TEA-1,W1,5,2027-01-10,open,Good\x00Evil\n", "supplier: text may not contain the NUL character"),
    ("PO1,TEA-1,W1,5,2027-01-10,open,Good,surplus\n", "line 2: has 8 fields, the header 7"),
])
def test_a_purchase_order_row_no_store_can_hold_is_refused_naming_line_and_field(store, tmp_path, row, needle):
    path = tmp_path / "pos.csv"
    path.write_text("po_id,sku,warehouse,qty,expected_at,status,supplier\n" + row)
    r = _run("restock", "import-pos", str(path))
    assert r.exit_code == 2 and needle in r.output, r.output
    assert _count(store, purchase_orders) == 0


@pytest.mark.parametrize("name", ["", "a" * 121, "ops\x01team"])
def test_a_key_name_the_store_cannot_hold_is_refused_naming_the_option(store, name):
    r = _run("keys", "create", "--scope", "admin", "--name", name)
    assert r.exit_code == 2 and "--name: a key name is 1 to 120 printable characters" in r.output
    assert _count(store, api_keys) == 0


@pytest.mark.parametrize("value", ["nan", "inf", "1e308", "-1"])
@pytest.mark.parametrize("option", ["--max-age", "--window"])
def test_a_payments_status_window_that_is_not_a_sane_number_of_seconds_names_the_option(store, option, value):
    r = _run("payments", "status", option, value)
    assert r.exit_code == 2 and f"{option} must be a number of seconds > 0" in r.output
    assert "database" not in r.output
