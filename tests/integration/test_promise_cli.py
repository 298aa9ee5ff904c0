"""`shopfloor fulfillment import` and `shopfloor promise backtest` on small generated files."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

import pandas as pd
from typer.testing import CliRunner

from shopfloor.cli.main import app

runner = CliRunner()


def _events_frame(n=30):
    rows = []
    # recent: the import refuses events older than fulfillment_max_age_days, as the API does
    t0 = datetime.now(timezone.utc).replace(tzinfo=None, minute=0, second=0, microsecond=0) - timedelta(days=30)
    for i in range(n):
        start = t0 + timedelta(hours=3 * i)
        for typ, h in (("approved", 0), ("handed_to_carrier", 20), ("delivered", 70)):
            rows.append({"event_id": f"e{i}{typ[0]}", "order_id": f"o{i}", "type": typ,
                         "at": (start + timedelta(hours=h)).isoformat() + "Z", "warehouse": "w1",
                         "country": "BR", "postal_code": "01000", "region": "SP",
                         "placed_at": start.isoformat() + "Z", "origin_region": "SP"})
    return pd.DataFrame(rows)


def test_fulfillment_import_loads_csv_and_parquet_idempotently(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", db_url)
    df = _events_frame()
    csv_path, pq_path = tmp_path / "events.csv", tmp_path / "events.parquet"
    df.to_csv(csv_path, index=False)
    df.to_parquet(pq_path)
    first = runner.invoke(app, ["fulfillment", "import", str(csv_path), "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["accepted"] == len(df)
    again = runner.invoke(app, ["fulfillment", "import", str(pq_path), "--json"])
    assert json.loads(again.stdout) == {"file": str(pq_path), "accepted": 0, "duplicates": len(df)}


def test_fulfillment_import_names_the_bad_field(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", db_url)
    df = _events_frame(2)
    df.loc[1, "type"] = "teleported"
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    r = runner.invoke(app, ["fulfillment", "import", str(path)])
    assert r.exit_code == 2 and "row 3: type" in r.output and "Traceback" not in r.output
    naive = _events_frame(1)
    naive["at"] = naive["at"].str.rstrip("Z")
    naive.to_csv(path, index=False)
    r = runner.invoke(app, ["fulfillment", "import", str(path)])
    assert r.exit_code == 2 and "at must carry a UTC offset" in r.output


def _olist_files(tmp_path, n=400):
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
        items.append({"order_id": f"o{i}", "order_item_id": 1, "product_id": "p", "seller_id": f"s{i % 7}",
                      "shipping_limit_date": p, "price": 10.0, "freight_value": 1.0})
        customers.append({"customer_id": f"c{i}", "customer_unique_id": f"u{i}",
                          "customer_zip_code_prefix": rng.choice(["1000", "20000", "30100"]),
                          "customer_city": "x", "customer_state": rng.choice(["SP", "RJ", "MG"])})
    sellers = [{"seller_id": f"s{k}", "seller_zip_code_prefix": "13000", "seller_city": "y",
                "seller_state": "SP"} for k in range(7)]
    paths = {}
    for name, rows in (("orders", orders), ("items", items), ("customers", customers), ("sellers", sellers)):
        paths[name] = tmp_path / f"{name}.csv"
        pd.DataFrame(rows).to_csv(paths[name], index=False)
    return paths


def test_promise_backtest_writes_the_csv_and_json_summary(tmp_path):
    p = _olist_files(tmp_path)
    out = tmp_path / "promises.csv"
    r = runner.invoke(app, ["promise", "backtest", "--orders", str(p["orders"]), "--items", str(p["items"]),
                            "--customers", str(p["customers"]), "--sellers", str(p["sellers"]),
                            "--score-from", "2017-03-01", "--confidence", "0.9", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    for key in ("orders_scored", "on_time_rate", "mean_promised_days", "p50_eta_mae_days"):
        assert key in summary and key in summary["reference"]
    assert summary["orders_scored"] > 100
    assert list(pd.read_csv(out).columns) == ["order_id", "purchased_at", "promised_date", "eta_p50_date",
                                              "delivered_date", "reference_date"]


def test_promise_backtest_rejects_bad_options_in_one_line(tmp_path):
    p = _olist_files(tmp_path, 20)
    base = ["promise", "backtest", "--orders", str(p["orders"]), "--items", str(p["items"]),
            "--customers", str(p["customers"]), "--sellers", str(p["sellers"]), "--out", str(tmp_path / "x.csv")]
    r = runner.invoke(app, base + ["--confidence", "1.5"])
    assert r.exit_code == 2 and "--confidence" in r.output
    r = runner.invoke(app, base + ["--score-from", "someday"])
    assert r.exit_code == 2 and "--score-from" in r.output
    r = runner.invoke(app, ["promise", "backtest", "--orders", str(tmp_path / "missing.csv"), "--items", "a",
                            "--customers", "b", "--sellers", "c"])
    assert r.exit_code == 2 and "--orders" in r.output
