"""``shopfloor orders import`` against real SQLite and PostgreSQL stores: the JSON summary, all-or-nothing
validation, idempotency, resuming after a crash, stock policies, Parquet, and demand history."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from shopfloor.cli.main import app
from shopfloor.domain.clock import FixedClock
from shopfloor.integrations import OrderWriter, plan_import, read_rows, run_import
from shopfloor.store.engine import make_engine
from shopfloor.store.forecast_queries import daily_sku_region_demand
from shopfloor.store.integrations_tables import order_sources
from shopfloor.store.tables import order_lines, orders, stock
from tests.support.store import NOW, seed

HEADER = "external_id,created_at,sku,qty,unit_price,currency,country,postal_code\n"


def _lines(n_orders: int, start: int = 0) -> str:
    out = []
    for i in range(start, start + n_orders):
        day = 1 + i % 28
        out.append(f"X{i},2026-10-{day:02d}T10:00:00Z,TEA-1,2,499,EUR,DE,10115")
        out.append(f"X{i},2026-10-{day:02d}T10:00:00Z,MUG-1,1,1200,EUR,DE,10115")
    return "\n".join(out) + "\n"


@pytest.fixture
def store(db_url, monkeypatch):
    engine = make_engine(db_url)
    seed(engine, {"W1": ("north", "DE", ["1"]), "W2": ("south", "DE", ["8"])}, {"TEA-1": 499, "MUG-1": 1200},
         {("TEA-1", "W1"): 100, ("TEA-1", "W2"): 30, ("MUG-1", "W2"): 50})
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", db_url)
    yield engine
    engine.dispose()


def _import(path, *args):
    r = CliRunner().invoke(app, ["orders", "import", str(path), *args, "--json"])
    return r.exit_code, (json.loads(r.stdout) if r.stdout.strip().startswith("{") else r.output)


def _count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()


def _levels(engine):
    with engine.connect() as conn:
        return {(r.sku, r.warehouse): (int(r.on_hand), int(r.reserved)) for r in conn.execute(sa.select(stock))}


def test_an_import_prints_the_contract_summary_and_is_idempotent(store, tmp_path):
    f = tmp_path / "orders.csv"
    f.write_text(HEADER + _lines(5))
    code, out = _import(f)
    assert code == 0 and out == {"imported": 5, "skipped": 0, "errors": []}
    assert _count(store, orders) == 5 and _count(store, order_lines) == 10
    code, out = _import(f)
    assert code == 0 and out == {"imported": 0, "skipped": 5, "errors": []}
    assert _count(store, orders) == 5


def test_one_bad_row_stops_the_whole_import_before_anything_is_written(store, tmp_path):
    f = tmp_path / "orders.csv"
    f.write_text(HEADER + _lines(3) + "X9,2026-10-01T10:00:00Z,TEA-1,two,499,EUR,DE,10115\n")
    code, out = _import(f)
    assert code == 1
    assert out == {"imported": 0, "skipped": 4,
                   "errors": [{"row": 7, "field": "qty", "message": "'two' is not a whole number"}]}
    assert _count(store, orders) == 0


def test_on_error_skip_writes_the_valid_orders(store, tmp_path):
    f = tmp_path / "orders.csv"
    f.write_text(HEADER + _lines(3) + "X9,2026-10-01T10:00:00Z,TEA-1,2,499,EUR,DE,10115\n"
                 "X9,2026-10-01T10:00:00Z,MUG-1,1,12.00,EUR,DE,10115\n")
    code, out = _import(f, "--on-error", "skip")
    assert code == 0 and out["imported"] == 3 and out["skipped"] == 1
    assert [(e["row"], e["field"]) for e in out["errors"]] == [(8, "unit_price")]
    assert _count(store, orders) == 3


def test_an_import_cut_short_is_resumed_by_running_it_again(store, tmp_path):
    f = tmp_path / "orders.csv"
    f.write_text(HEADER + _lines(10))
    writer = OrderWriter(store, FixedClock(NOW))
    plan = plan_import(*read_rows(f), "long")
    real_write, calls = writer.write, {"n": 0}

    def crash_on_third_batch(batch, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("power cut")
        return real_write(batch, **kw)

    writer.write = crash_on_third_batch
    with pytest.raises(KeyboardInterrupt):
        run_import(writer, plan, channel="import", policy="consume", on_error="stop", batch_orders=3)
    assert _count(store, orders) == 6  # two whole batches committed, the third rolled back
    code, out = _import(f, "--stock-policy", "consume")
    assert code == 0 and out == {"imported": 4, "skipped": 6, "errors": []}
    assert _count(store, orders) == 10 and _count(store, order_sources) == 10
    assert _levels(store)[("TEA-1", "W1")] == (80, 0)  # 10 orders x 2, taken once each


def test_stock_policies_consume_reserve_or_leave_stock_alone(store, tmp_path):
    f = tmp_path / "orders.csv"
    f.write_text(HEADER + _lines(2))
    _import(f, "--stock-policy", "ignore", "--channel", "a")
    assert _levels(store)[("TEA-1", "W1")] == (100, 0)
    _import(f, "--stock-policy", "reserve", "--channel", "b")
    assert _levels(store)[("TEA-1", "W1")] == (100, 4) and _levels(store)[("MUG-1", "W2")] == (50, 2)
    _import(f, "--stock-policy", "consume", "--channel", "c")
    assert _levels(store)[("TEA-1", "W1")] == (96, 4) and _levels(store)[("MUG-1", "W2")] == (48, 2)


def test_a_parquet_file_imports_like_the_csv(store, tmp_path):
    csv_file, pq_file = tmp_path / "o.csv", tmp_path / "o.parquet"
    csv_file.write_text(HEADER + _lines(4))
    pd.read_csv(csv_file, dtype=str).to_parquet(pq_file)
    code, out = _import(pq_file)
    assert code == 0 and out == {"imported": 4, "skipped": 0, "errors": []}


def test_imported_orders_are_demand_history(store, tmp_path):
    f = tmp_path / "orders.csv"
    f.write_text(HEADER + _lines(3))
    _import(f)
    frame = daily_sku_region_demand(store)
    assert frame.groupby(frame["unique_id"].str.split("/").str[0])["y"].sum().to_dict() == {"MUG-1": 3, "TEA-1": 6}


def test_a_missing_file_or_column_is_a_one_line_error(store, tmp_path):
    r = CliRunner().invoke(app, ["orders", "import", str(tmp_path / "nope.csv")])
    assert r.exit_code == 2 and "does not exist" in r.output
    f = tmp_path / "o.csv"
    f.write_text("external_id,sku\nA,B\n")
    r = CliRunner().invoke(app, ["orders", "import", str(f), "--format", "long"])
    assert r.exit_code == 2 and "created_at" in r.output and "Traceback" not in r.output


def test_large_batches_read_back_like_single_orders_and_keep_their_stock_policy(store, tmp_path):
    """Batches of 50 rows and more go to PostgreSQL through COPY; what is stored must not depend on the path."""
    big, single = tmp_path / "big.csv", tmp_path / "one.csv"
    big.write_text(HEADER + _lines(60))
    single.write_text(HEADER + _lines(1))
    code, out = _import(big, "--stock-policy", "reserve", "--channel", "bulk")
    assert code == 0 and out == {"imported": 60, "skipped": 0, "errors": []}
    assert _import(single, "--stock-policy", "reserve", "--channel", "one")[1]["imported"] == 1
    cols = [orders.c.status, orders.c.ship_to, orders.c.payment, orders.c.total, orders.c.currency,
            orders.c.shipping, orders.c.promise, orders.c.split, orders.c.created_at]
    with store.connect() as conn:
        def row(channel):
            return conn.execute(sa.select(*cols).join(order_sources, order_sources.c.order_id == orders.c.id)
                                .where(order_sources.c.channel == channel, order_sources.c.external_id == "X0")
                                ).one()._asdict()
        bulk, one = row("bulk"), row("one")
        null_json = conn.execute(sa.select(sa.func.count()).select_from(orders).where(
            orders.c.shipping.is_(None))).scalar()
    assert bulk | {"payment": None} == one | {"payment": None}
    assert bulk["payment"] == {"channel": "bulk", "external_id": "X0"} and bulk["total"] == 2 * 499 + 1200
    assert null_json == 0  # both paths store a missing document as the JSON null, as SQLAlchemy does
    levels = _levels(store)
    # 61 orders reserve 122 TEA-1 of 130 and all 50 MUG-1 (the other 11 are a recorded shortfall).
    assert levels[("TEA-1", "W1")][1] + levels[("TEA-1", "W2")][1] == 122 and levels[("MUG-1", "W2")] == (50, 50)
    assert _import(big, "--stock-policy", "reserve", "--channel", "bulk")[1] == {
        "imported": 0, "skipped": 60, "errors": []}


def test_a_large_batch_cut_short_mid_write_rolls_back_whole_and_resumes(store, tmp_path):
    f = tmp_path / "orders.csv"
    f.write_text(HEADER + _lines(120))
    writer = OrderWriter(store, FixedClock(NOW))
    plan = plan_import(*read_rows(f), "long")
    real_insert, calls = writer._insert, {"n": 0}

    def crash_after_the_lines_of_the_second_batch(conn, table, rows):
        real_insert(conn, table, rows)
        if table is order_lines:
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt("power cut")

    writer._insert = crash_after_the_lines_of_the_second_batch
    with pytest.raises(KeyboardInterrupt):
        run_import(writer, plan, channel="import", policy="consume", on_error="stop", batch_orders=60)
    assert _count(store, orders) == 60 and _count(store, order_lines) == 120 and _count(store, order_sources) == 60
    code, out = _import(f, "--stock-policy", "consume")
    assert code == 0 and out == {"imported": 60, "skipped": 60, "errors": []}
    assert _count(store, orders) == 120 and _count(store, order_lines) == 240
