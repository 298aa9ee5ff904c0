"""`--from-db`: accepted orders become SKU x region x day series (declined/cancelled orders do not count)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import sqlalchemy as sa
from typer.testing import CliRunner

from shopfloor.cli.main import app
from shopfloor.store.engine import make_engine
from shopfloor.store.forecast_queries import daily_sku_region_demand
from shopfloor.store.tables import order_lines, orders, warehouses

T0 = datetime(2025, 3, 1, 10, 0, tzinfo=timezone.utc)


def _seed(engine, n_days=40):
    now = T0
    with engine.begin() as conn:
        conn.execute(sa.insert(warehouses), [
            {"id": "wh-a", "region": "north", "country": "DE", "postal_prefixes": ["1"], "updated_at": now},
            {"id": "wh-b", "region": "north", "country": "DE", "postal_prefixes": ["2"], "updated_at": now},
            {"id": "wh-c", "region": "south", "country": "DE", "postal_prefixes": ["8"], "updated_at": now},
        ])
        order_rows, line_rows = [], []
        for d in range(n_days):
            for k, (status, wh, qty) in enumerate(
                [("captured", "wh-a", 2), ("delivered", "wh-b", 1), ("declined", "wh-a", 50),
                 ("cancelled", "wh-c", 70), ("shipped", "wh-c", 3)]
            ):
                if d % 5 == 4 and k == 4:
                    continue  # a zero-demand day for the south series
                oid = f"o{d}-{k}"
                order_rows.append({
                    "id": oid, "status": status, "ship_to": {}, "payment": {}, "total": 100, "currency": "EUR",
                    "created_at": T0 + timedelta(days=d, hours=k), "updated_at": T0,
                })
                line_rows.append({"order_id": oid, "line_no": 1, "sku": "SKU-1", "warehouse": wh, "qty": qty,
                                  "unit_price": 50})
        conn.execute(sa.insert(orders), order_rows)
        conn.execute(sa.insert(order_lines), line_rows)


def test_accepted_orders_aggregate_by_sku_region_and_utc_day(db_url):
    engine = make_engine(db_url)
    try:
        _seed(engine)
        frame = daily_sku_region_demand(engine)
    finally:
        engine.dispose()
    assert sorted(frame["unique_id"].unique()) == ["SKU-1/north", "SKU-1/south"]
    north = frame[frame["unique_id"] == "SKU-1/north"]
    assert len(north) == 40 and (north["y"] == 3.0).all()  # 2 + 1; the declined 50 is not demand
    south = frame[frame["unique_id"] == "SKU-1/south"].set_index("ds")["y"]
    assert south.iloc[0] == 3.0 and south.iloc[4] == 0.0  # the missing day is filled with zero
    assert south.index[0] == pd.Timestamp("2025-03-01")


def test_forecast_cli_runs_from_the_database(db_url, tmp_path):
    engine = make_engine(db_url)
    try:
        _seed(engine)
    finally:
        engine.dispose()
    out = tmp_path / "fc.csv"
    res = CliRunner().invoke(app, ["forecast", "--from-db", "--db-url", db_url, "--horizon", "7", "--model", "wa28",
                                   "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    fc = pd.read_csv(out)
    assert set(fc["unique_id"]) == {"SKU-1/north", "SKU-1/south"}
    assert fc.loc[fc["unique_id"] == "SKU-1/north", "mean"].round(6).eq(3.0).all()
