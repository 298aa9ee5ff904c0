"""Bulk order import throughput: ``shopfloor orders import``'s pipeline against a plain insert of the same rows.

    python bench/orders_import.py [--lines 100000] [--runs 3] [--policy ignore] [--database-url URL]

Writes a long-format CSV of ``--lines`` order lines (2-4 lines per order, 500 SKUs, 3 warehouses). For each run, on
a fresh store (a new SQLite file, or the PostgreSQL database given, dropped and re-created):

* **import**: the whole pipeline the command runs: read the CSV, validate every row, group the lines into orders,
  then write them in batches of 1,000 orders (orders, lines, order sources with the idempotency look-up, and the
  stock moves of ``--policy``), each batch one transaction;
* **baseline** (same run, another fresh store): the same orders and lines, already parsed, written with a plain
  ``executemany`` INSERT into ``orders`` and ``order_lines`` in the same batches, with no validation, no
  idempotency look-up and no order sources.

Reports lines/s of both and their ratio (import / baseline); the summary gives the medians of the runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path


def write_file(path: Path, lines: int, seed: int = 7) -> int:
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    n = orders = 0
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["external_id", "created_at", "sku", "qty", "unit_price", "currency", "country", "postal_code"])
        while n < lines:
            orders += 1
            created = (start + timedelta(minutes=rng.randrange(0, 500_000))).isoformat()
            postal = f"{rng.randrange(10000, 99999)}"
            for sku in rng.sample(range(500), min(rng.randint(2, 4), lines - n)):
                w.writerow([f"EXT-{orders}", created, f"SKU-{sku:04d}", rng.randint(1, 3),
                            rng.randrange(199, 9999), "EUR", "DE", postal])
                n += 1
    return orders


def fresh_store(database_url: str | None, tmp: Path) -> str:
    from shopfloor.store.engine import make_engine
    from shopfloor.store.migrate import upgrade_database
    from shopfloor.store import orders_repo as repo

    if database_url:
        import sqlalchemy as sa

        from shopfloor.store.engine import normalise_url

        base, name = database_url.rsplit("/", 1)
        admin = sa.create_engine(normalise_url(f"{base}/postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
        url = database_url
    else:
        url = f"sqlite:///{tmp / f'import-{uuid.uuid4().hex[:8]}.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        for i, wh in enumerate(("W1", "W2", "W3")):
            repo.upsert_warehouse(conn, wh, f"region-{i}", "DE", [str(i)], now)
        for s in range(500):
            repo.upsert_sku(conn, f"SKU-{s:04d}", f"Item {s}", "general", 999, "EUR", now)
            for wh in ("W1", "W2", "W3"):
                repo.set_on_hand(conn, f"SKU-{s:04d}", wh, 10_000_000, now)
    engine.dispose()
    return url


def run_import(url: str, path: Path, policy: str) -> dict:
    from shopfloor.domain.clock import SystemClock
    from shopfloor.integrations import OrderWriter, plan_import, read_rows, run_import as write_plan
    from shopfloor.store.engine import make_engine

    engine = make_engine(url)
    started = time.perf_counter()
    plan = plan_import(*read_rows(path), "long")
    validated = time.perf_counter()
    summary = write_plan(OrderWriter(engine, SystemClock()), plan, channel="bench", policy=policy,
                         on_error="stop", batch_orders=1000)
    done = time.perf_counter()
    engine.dispose()
    assert not summary.errors and summary.imported == len(plan.orders), summary.as_dict()
    return {"seconds": done - started, "validate_seconds": validated - started, "orders": summary.imported,
            "lines": plan.rows, "plan": plan}


def run_baseline(url: str, plan) -> dict:
    from shopfloor.store.engine import make_engine
    from shopfloor.store.tables import order_lines, orders

    engine = make_engine(url)
    now = datetime.now(timezone.utc)
    started = time.perf_counter()
    for i in range(0, len(plan.orders), 1000):
        batch = plan.orders[i:i + 1000]
        order_rows, line_rows = [], []
        for o in batch:
            oid = f"ord_{uuid.uuid4().hex}"
            order_rows.append({"id": oid, "status": "handed_off", "api_key_id": None, "idempotency_key": None,
                               "ship_to": {"country": o.country, "postal_code": o.postal_code}, "payment": {},
                               "total": o.total, "currency": o.currency, "shipping": None, "promise": None,
                               "split": 0, "reservation_expires_at": None, "created_at": o.created_at,
                               "updated_at": now})
            line_rows.extend({"order_id": oid, "line_no": n, "sku": l.sku, "warehouse": "W1", "qty": l.qty,
                              "unit_price": l.unit_price} for n, l in enumerate(o.lines, start=1))
        with engine.begin() as conn:
            conn.execute(orders.insert(), order_rows)
            conn.execute(order_lines.insert(), line_rows)
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--policy", default="ignore", choices=["ignore", "consume", "reserve"])
    ap.add_argument("--database-url", default=None, help="PostgreSQL database to drop and re-create per run.")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sf-import-"))
    path = tmp / "orders.csv"
    n_orders = write_file(path, args.lines)
    backend = "postgresql" if args.database_url else "sqlite"
    runs = []
    for r in range(args.runs):
        imp = run_import(fresh_store(args.database_url, tmp), path, args.policy)
        base = run_baseline(fresh_store(args.database_url, tmp), imp.pop("plan"))
        row = {"run": r + 1, "backend": backend, "policy": args.policy, "lines": imp["lines"],
               "orders": imp["orders"], "import_seconds": round(imp["seconds"], 2),
               "validate_seconds": round(imp["validate_seconds"], 2), "baseline_seconds": round(base["seconds"], 2),
               "import_lines_per_s": round(imp["lines"] / imp["seconds"]),
               "baseline_lines_per_s": round(imp["lines"] / base["seconds"]),
               "ratio": round(base["seconds"] / imp["seconds"], 3)}
        print(json.dumps(row), flush=True)
        runs.append(row)
    summary = {"summary": True, "backend": backend, "policy": args.policy, "lines": args.lines, "orders": n_orders,
               "runs": len(runs),
               "median_import_lines_per_s": statistics.median(r["import_lines_per_s"] for r in runs),
               "median_baseline_lines_per_s": statistics.median(r["baseline_lines_per_s"] for r in runs),
               "median_ratio": statistics.median(r["ratio"] for r in runs)}
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
