"""Latency of a single promise, in process, on a migrated SQLite database with realistic statistics.

Measures ``PromiseEngine.promise_for`` (stock read + statistics + degradation rules) and, in the same run, two
baselines: the bare stock read it cannot avoid (one indexed SELECT), and a static-rule promise (the same stock
read plus fixed processing/transit days, no statistics). Prints JSON with p50/p99 and ratios.

    PYTHONPATH=src python bench/promise_latency.py [--calls 5000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from dataclasses import replace
from pathlib import Path

import sqlalchemy as sa

from shopfloor.config import Settings
from shopfloor.domain.clock import FixedClock
from shopfloor.domain.promise import PromiseStatus, availability_status
from shopfloor.domain.stats import percentiles
from shopfloor.fulfillment import FulfillmentEvent
from shopfloor.promise.service import build_promise_service
from shopfloor.store.engine import make_engine
from shopfloor.store.migrate import upgrade_database
from shopfloor.store.tables import skus, stock, warehouses

NOW = datetime(2024, 11, 20, 12, tzinfo=timezone.utc)
REGIONS = {"BR": {"0": "SP/0", "1": "SP/1", "2": "RJ/2", "3": "MG/3", "4": "BA/4", "8": "PR/8", "9": "RS/9"}}


def latency_summary(samples: list[float]) -> dict[str, float]:
    p50, p99 = percentiles(samples, (0.5, 0.99))
    return {"p50_ms": round(p50 * 1e3, 4), "p99_ms": round(p99 * 1e3, 4),
            "mean_ms": round(statistics.fmean(samples) * 1e3, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--skus", type=int, default=2000)
    ap.add_argument("--orders", type=int, default=3000, help="orders of fulfillment history to ingest")
    args = ap.parse_args()
    rng = random.Random(42)
    tmp = Path(tempfile.mkdtemp())
    url = f"sqlite:///{tmp / 'bench.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    whs = [("sp", "SP", ["0", "1"]), ("rj", "RJ", ["2"]), ("pr", "PR", ["8", "9"])]
    with engine.begin() as conn:
        conn.execute(sa.insert(warehouses), [{"id": w, "region": r, "country": "BR", "postal_prefixes": p,
                                              "updated_at": NOW} for w, r, p in whs])
        conn.execute(sa.insert(skus), [{"sku": f"s{i}", "name": f"item {i}", "category": "c", "price": 100,
                                        "currency": "BRL", "updated_at": NOW} for i in range(args.skus)])
        conn.execute(sa.insert(stock), [{"sku": f"s{i}", "warehouse": w, "on_hand": rng.randrange(0, 40),
                                         "reserved": 0, "updated_at": NOW}
                                        for i in range(args.skus) for w, _, _ in whs if rng.random() < 0.7])
    settings = Settings(database_url=url, promise_region_map=REGIONS, promise_stats_refresh_s=2.0)
    clock = FixedClock(NOW)
    svc = build_promise_service(settings, engine, clock)
    uncached = build_promise_service(settings, engine, clock)
    uncached.engine.config = replace(uncached.engine.config, cache_windows=False)
    events = []
    for i in range(args.orders):
        w, origin, _ = rng.choice(whs)
        start = NOW - timedelta(days=30) + timedelta(minutes=14 * i)
        zipc = rng.choice("0123489") + "1000"
        common = dict(order_id=f"o{i}", warehouse=w, country="BR", postal_code=zipc,
                      region=REGIONS["BR"][zipc[0]], placed_at=start)
        for typ, h in (("approved", 0.5), ("handed_to_carrier", rng.uniform(4, 60)),
                       ("delivered", rng.uniform(70, 300))):
            if start + timedelta(hours=h) < NOW:
                events.append(FulfillmentEvent(event_id=f"o{i}{typ}", type=typ, at=start + timedelta(hours=h),
                                               **common))
    t0 = time.perf_counter()
    for i in range(0, len(events), 1000):
        svc.ingest(events[i:i + 1000], NOW)
    ingest_s = time.perf_counter() - t0

    queries = [(f"s{rng.randrange(args.skus)}", rng.choice([1, 1, 2, 5]), "BR", rng.choice("0123489") + "2000")
               for _ in range(args.calls)]
    reader = svc.engine.stock

    def static_rule(sku, qty, country, postal):
        levels = reader.stock_levels(sku)
        avail = max((lv.available for lv in levels), default=0)
        status = availability_status(avail, qty, 5, False)
        if status in (PromiseStatus.IN_STOCK, PromiseStatus.LIMITED):
            return NOW.date() + timedelta(days=2 + 5)
        return None

    for q in queries[:200]:  # warm up caches and statement compilation
        svc.engine.promise_for(*q)
        uncached.engine.promise_for(*q)
        static_rule(*q)
    uncached.source.refresh(force=True)
    names = ("stock_read", "static_rule", "promise_for", "promise_for_uncached")
    timings: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    calls = {
        "stock_read": lambda q: reader.stock_levels(q[0]),
        "static_rule": lambda q: static_rule(*q),
        "promise_for": lambda q: svc.engine.promise_for(*q),
        "promise_for_uncached": lambda q: uncached.engine.promise_for(*q),
    }
    for q in queries:
        clock.advance(seconds=1)  # one request per second: the window cache sees a new minute every 60 calls
        for name in names:
            c, t = time.process_time(), time.perf_counter()
            calls[name](q)
            timings[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    batch_t = []
    for i in range(0, 2000, 50):
        t = time.perf_counter()
        svc.engine.promises_for(queries[i:i + 50])
        batch_t.append(time.perf_counter() - t)
    res = {k: latency_summary(v) for k, v in timings.items()}
    res_cpu = {k: latency_summary(v) for k, v in cpu.items()}
    out = {
        "benchmark": "promise_latency",
        "calls": args.calls,
        "history_events": len(events),
        "stat_keys": len(svc.source.current().states),
        "ingest_events_per_s": round(len(events) / ingest_s, 1),
        "single_wall": res,
        "single_cpu": res_cpu,
        "load_average_1m": round(__import__("os").getloadavg()[0], 2),
        "cpu_count": __import__("os").cpu_count(),
        "batch_of_50": latency_summary(batch_t),
        "ratio_p99_vs_stock_read": round(res["promise_for"]["p99_ms"] / res["stock_read"]["p99_ms"], 2),
        "ratio_p99_vs_static_rule": round(res["promise_for"]["p99_ms"] / res["static_rule"]["p99_ms"], 2),
        "target_p99_ms": 10.0,
        "ratio_p99_uncached_vs_static_rule": round(res["promise_for_uncached"]["p99_ms"]
                                                   / res["static_rule"]["p99_ms"], 2),
        "meets_target_wall": res["promise_for"]["p99_ms"] <= 10.0,
        "meets_target_cpu": res_cpu["promise_for"]["p99_ms"] <= 10.0,
    }
    print(json.dumps(out, indent=2))
    engine.dispose()


if __name__ == "__main__":
    main()
