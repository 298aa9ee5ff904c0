"""RTO and orders lost when region A dies: start both regions (Patroni + etcd, synchronous standby in B), take
checkouts through A's app, SIGKILL region A whole (app, worker, Patroni, PostgreSQL), run `failover`, and time from
the kill to the first checkout B accepts. Orders lost = orders A acknowledged (201) that B's database lacks.
Prints one JSON object (each run and the medians).
With ``--async`` the standby replicates asynchronously (``shopfloor regions up --async``): the orders lost and the
loss window (from the earliest lost order's acknowledgement to the kill) measure what that option risks.
Usage: PYTHONPATH=src:. python bench/regions_failover.py [--runs 3] [--dir DIR] [--port-base N] [--async]
       [--shoppers N]"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import uuid
from pathlib import Path

import httpx
import psycopg

from shopfloor.config import Settings
from shopfloor.regions import RegionsLayout, down, failover, kill_region, up
from shopfloor.store.engine import make_engine
from tests.support.store import new_key, seed

BODY = {"lines": [{"sku": "A1", "qty": 1}], "ship_to": {"country": "US", "postal_code": "94107"},
        "payment": {"token": "tok_ok"}}


def checkout(url: str, key: str) -> httpx.Response | None:
    try:
        return httpx.post(url + "/v1/checkouts", json=BODY, timeout=5,
                          headers={"Authorization": f"Bearer {key}", "Idempotency-Key": uuid.uuid4().hex})
    except httpx.HTTPError:
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description="RTO and orders lost when region A dies whole (SIGKILL) and region B takes "
                                             "over; prints one JSON object. Needs PYTHONPATH=src:.")
    ap.add_argument("--runs", type=int, default=3, help="failover runs")
    ap.add_argument("--dir", default="/tmp/shopfloor-bench-regions", help="working directory for both regions")
    ap.add_argument("--port-base", type=int, default=27400, help="first of the ports the two regions use")
    ap.add_argument("--load-s", type=float, default=5.0, help="Seconds of checkouts through A before the kill.")
    ap.add_argument("--async", dest="asynchronous", action="store_true",
                    help="Asynchronous replication instead of synchronous.")
    ap.add_argument("--shoppers", type=int, default=1, help="Concurrent shoppers checking out through region A.")
    args = ap.parse_args()
    runs = [one_run(args) for _ in range(args.runs)]
    rtos = [r["rto_s"] for r in runs if r["rto_s"] is not None]
    print(json.dumps({"runs": runs, "rto_s_median": statistics.median(rtos) if rtos else None,
                      "rto_s_max": max(rtos) if rtos else None,
                      "orders_lost_total": sum(r["orders_lost"] for r in runs),
                      "orders_acknowledged_total": sum(r["orders_acknowledged_before_kill"] for r in runs),
                      "loss_window_s_max": max((r["loss_window_s"] or 0.0) for r in runs),
                      "flush_lag_s_max": max(r["flush_lag_s_max"] for r in runs),
                      "unflushed_wal_bytes_max": max(r["unflushed_wal_bytes_max"] for r in runs),
                      "synchronous": not args.asynchronous, "shoppers": args.shoppers,
                      "target": {"rto_s": 30, "orders_lost": 0}}, indent=2))


def one_run(args) -> dict:
    layout = RegionsLayout.from_settings(Settings(regions_dir=Path(args.dir), regions_port_base=args.port_base,
                                                  regions_synchronous=not args.asynchronous))
    down(layout, purge=True)
    try:
        started = up(layout)
        engine = make_engine(layout.a.database_url)
        seed(engine, {"w1": ("us-west", "US", ["9"])}, {"A1": 1299}, {("A1", "w1"): 100_000})
        _, key = new_key(engine, "storefront")
        engine.dispose()
        acknowledged: list[str] = []
        acked_at: dict[str, float] = {}
        stop = threading.Event()

        def load() -> None:  # a shopper hammering region A until it dies
            while not stop.is_set():
                r = checkout(layout.a.app_url, key)
                if r is not None and r.status_code == 201:
                    acknowledged.append(r.json()["order_id"])
                    acked_at[r.json()["order_id"]] = time.monotonic()

        lag_samples: list[tuple[float, int]] = []  # (flush lag s, WAL bytes B has not flushed) while loaded

        def sample_lag() -> None:  # what B would lack if A died now: the asynchronous loss window
            try:
                with psycopg.connect(layout.a.database_url, autocommit=True) as conn:
                    while not stop.is_set():
                        row = conn.execute(
                            "select coalesce(extract(epoch from flush_lag), 0)::float8, "
                            "coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn), 0)::bigint "
                            "from pg_stat_replication limit 1").fetchone()
                        if row is not None:
                            lag_samples.append((float(row[0]), int(row[1])))
                        time.sleep(0.05)
            except psycopg.Error:
                pass

        shoppers = [threading.Thread(target=load) for _ in range(args.shoppers)]
        sampler = threading.Thread(target=sample_lag)
        for shopper in [*shoppers, sampler]:
            shopper.start()
        time.sleep(args.load_s)
        killed_at = time.monotonic()
        kill_region(layout, "A")
        stop.set()
        for shopper in [*shoppers, sampler]:
            shopper.join()
        promoted = {}
        mover = threading.Thread(target=lambda: promoted.update(failover(layout, timeout=120)))
        mover.start()
        rto = None
        attempts = 0
        while time.monotonic() - killed_at < 180:
            attempts += 1
            r = checkout(layout.b.app_url, key)
            if r is not None and r.status_code == 201:
                rto = time.monotonic() - killed_at
                break
            time.sleep(0.1)
        mover.join()
        with psycopg.connect(layout.b.database_url) as conn:
            present = {row[0] for row in conn.execute("select id from orders")}
        lost = [o for o in acknowledged if o not in present]
        return {
            "rto_s": None if rto is None else round(rto, 2), "orders_acknowledged_before_kill": len(acknowledged),
            "orders_lost": len(lost), "checkout_attempts_in_b": attempts, "ttl_s": layout.ttl_s,
            "loss_window_s": round(killed_at - min(acked_at[o] for o in lost), 3) if lost else None,
            "flush_lag_s_max": round(max((x[0] for x in lag_samples), default=0.0), 4),
            "flush_lag_s_p99": round(sorted(x[0] for x in lag_samples)[int(0.99 * (len(lag_samples) - 1))], 4)
            if lag_samples else None,
            "unflushed_wal_bytes_max": max((x[1] for x in lag_samples), default=0),
            "lag_samples": len(lag_samples),
            "synchronous": layout.synchronous, "promoted_s_after_failover_call": promoted.get("promoted_s"),
            "up_s": round(started["timings"]["total_s"], 1),
        }
    finally:
        down(layout, purge=True)


if __name__ == "__main__":
    main()
