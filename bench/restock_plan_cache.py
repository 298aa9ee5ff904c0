"""Time `GET /v1/plans/restock` with and without the restock model cache, on one synthetic store, same run.

A migrated SQLite store with ``--skus`` SKUs and ``--days`` days of orders (negative-binomial daily demand, one
order per SKU and day with demand), served by the real app through a test client. Per round, alternating: the app
without the cache (``restock_cache_models = 0``: every call fits the global model and replays the history), then
the app with it, called three times: cold (first call of the day), warm (the same history again) and on the next
day (one new day of orders; within the refit cadence, so the model is reused and the history replayed). Prints JSON
with each call's seconds per round and the medians, and the load average.

``--in-memory`` times the planner itself on an in-memory data source instead (no database; for 30,490 SKUs).
``--cli`` times ``shopfloor restock plan --json`` as a child process on the store (orders dated up to yesterday),
without the cache, then twice with ``SHOPFLOOR_RESTOCK_CACHE_DIR`` set to a fresh folder: the first run fills it,
the second reads it (each run is a new process).

    PYTHONPATH=src python bench/restock_plan_cache.py --skus 2000 --rounds 3
    PYTHONPATH=src python bench/restock_plan_cache.py --in-memory --skus 30490 --rounds 1
    PYTHONPATH=src python bench/restock_plan_cache.py --cli --skus 2000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import date, datetime, timedelta, timezone

import numpy as np

START = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)


def synthetic(skus: int, days: int, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mu = np.exp(rng.normal(0.0, 1.5, skus))
    return rng.negative_binomial(1.0, 1.0 / (1.0 + mu[:, None]), size=(skus, days))


def seed_store(url: str, units: np.ndarray) -> None:
    import sqlalchemy as sa

    from shopfloor.store.engine import make_engine
    from shopfloor.store.migrate import upgrade_database
    from shopfloor.store.tables import order_lines, orders, skus, stock, warehouses

    upgrade_database(url)
    engine = make_engine(url)
    n, days = units.shape
    with engine.begin() as conn:
        conn.execute(sa.insert(warehouses), [{"id": "W1", "region": "north", "country": "DE", "postal_prefixes": [],
                                              "updated_at": START}])
        conn.execute(sa.insert(skus), [{"sku": f"S{i}", "name": f"S{i}", "category": f"c{i % 20}", "price": 100,
                                        "currency": "EUR", "updated_at": START} for i in range(n)])
        conn.execute(sa.insert(stock), [{"sku": f"S{i}", "warehouse": "W1", "on_hand": 5, "reserved": 0,
                                         "updated_at": START} for i in range(n)])
        rows_o, rows_l = [], []
        for d in range(days):
            at = START + timedelta(days=d)
            for i in np.flatnonzero(units[:, d]):
                oid = f"o{d}-{i}"
                rows_o.append({"id": oid, "status": "captured", "ship_to": {}, "payment": {}, "total": 0,
                               "currency": "EUR", "created_at": at, "updated_at": at})
                rows_l.append({"order_id": oid, "line_no": 1, "sku": f"S{i}", "warehouse": "W1",
                               "qty": int(units[i, d]), "unit_price": 100})
        conn.execute(sa.insert(orders), rows_o)
        conn.execute(sa.insert(order_lines), rows_l)
    engine.dispose()


def api_round(url: str, today: datetime, cache: bool) -> list[float]:
    from fastapi.testclient import TestClient

    from shopfloor.api.app import create_app
    from shopfloor.bootstrap import build_container
    from shopfloor.config import Settings
    from shopfloor.domain.clock import FixedClock
    from shopfloor.store.keys import create_api_key

    clock = FixedClock(today)
    container = build_container(Settings(database_url=url, restock_cache_models=8 if cache else 0), clock=clock)
    _, secret = create_api_key(container.engine, ["admin"], "bench", today)
    out = []
    with TestClient(create_app(container)) as client:
        calls = 3 if cache else 1
        for k in range(calls):
            if k == 2:
                clock.advance(days=1)
            t0 = time.perf_counter()
            r = client.get("/v1/plans/restock", headers={"Authorization": f"Bearer {secret}"})
            out.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text
    return out


class _Memory:
    def __init__(self, units: np.ndarray):
        self.units = units
        self.first = START.date()

    def positions(self):
        from shopfloor.planning.restock import StockPosition

        return [StockPosition(f"S{i}", "W1", 5, 0) for i in range(len(self.units))]

    def catalog(self):
        from shopfloor.planning.restock import CatalogEntry

        return {f"S{i}": CatalogEntry(f"S{i}", f"S{i}", f"c{i % 20}") for i in range(len(self.units))}

    def daily_demand(self, first_day: date, last_day: date):
        lo, hi = (first_day - self.first).days, (last_day - self.first).days
        out = {}
        for i in range(len(self.units)):
            nz = [d for d in np.flatnonzero(self.units[i, max(lo, 0):hi + 1]) + max(lo, 0)]
            out[(f"S{i}", "W1")] = {self.first + timedelta(days=int(d)): int(self.units[i, d]) for d in nz}
        return out


def memory_round(units: np.ndarray, today: datetime, cache: bool) -> list[float]:
    from shopfloor.domain.clock import FixedClock
    from shopfloor.planning.restock import PolicyBook
    from shopfloor.planning.restock_cache import RestockModelCache
    from shopfloor.planning.restock_service import RestockPlanner

    clock = FixedClock(today)
    planner = RestockPlanner(_Memory(units), PolicyBook(), clock, cache=RestockModelCache() if cache else None)
    out = []
    for k in range(3 if cache else 1):
        if k == 2:
            clock.advance(days=1)
        t0 = time.perf_counter()
        planner.plan()
        out.append(time.perf_counter() - t0)
    return out


def cli_round(url: str, folder: str, cache: bool) -> list[float]:
    import shutil
    import subprocess
    import sys

    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    env = {**os.environ, "PYTHONPATH": src, "SHOPFLOOR_DATABASE_URL": url}
    cache_dir = os.path.join(folder, "cache")
    shutil.rmtree(cache_dir, ignore_errors=True)
    if cache:
        env["SHOPFLOOR_RESTOCK_CACHE_DIR"] = cache_dir
    out = []
    for _ in range(2 if cache else 1):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "shopfloor", "restock", "plan", "--json"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        out.append(time.perf_counter() - t0)
    return out + [float("nan")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skus", type=int, default=2000)
    ap.add_argument("--days", type=int, default=200, help="days of orders before today (a day more for the next day)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--in-memory", action="store_true")
    ap.add_argument("--cli", action="store_true")
    ap.add_argument("--tmp", default=None, help="folder for the temporary SQLite store (default: the system's)")
    args = ap.parse_args()
    global START
    units = synthetic(args.skus, args.days + 1)
    if args.cli:  # the command plans as of the real today: orders end yesterday
        now = datetime.now(timezone.utc)
        START = datetime(now.year, now.month, now.day, 12, tzinfo=timezone.utc) - timedelta(days=args.days)
        units = units[:, :args.days]
    today = START + timedelta(days=args.days)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="restock_plan_cache_", dir=args.tmp) as tmp:
        if args.cli:
            url = f"sqlite:///{os.path.join(tmp, 'store.db')}"
            seed_store(url, units)
            run = lambda cache: cli_round(url, tmp, cache)  # noqa: E731
        elif not args.in_memory:
            url = f"sqlite:///{os.path.join(tmp, 'store.db')}"
            seed_store(url, units)
            run = lambda cache: api_round(url, today, cache)  # noqa: E731
        else:
            run = lambda cache: memory_round(units, today, cache)  # noqa: E731
        seeded = time.perf_counter() - t0
        rounds = []
        for _ in range(args.rounds):
            off = run(False)
            on = run(True)
            rounds.append({"no_cache": off[0], "cache_cold": on[0], "cache_same_history": on[1],
                           "cache_next_day": on[2]})
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    print(json.dumps({"skus": args.skus, "history_days": args.days,
                      "mode": "cli" if args.cli else "in-memory" if args.in_memory else "api",
                      "seed_s": round(seeded, 1), "rounds": [{k: round(v, 3) for k, v in r.items()} for r in rounds],
                      "median_s": {k: round(v, 3) for k, v in med.items()},
                      "ratio_vs_no_cache": {k: round(v / med["no_cache"], 4) for k, v in med.items()},
                      "loadavg": os.getloadavg()}, indent=1))


if __name__ == "__main__":
    main()
