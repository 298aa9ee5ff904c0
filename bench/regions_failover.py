"""RTO and orders lost when region A dies: start both regions (Patroni + etcd, synchronous standby in B), take
checkouts through A's app, SIGKILL region A whole (app, worker, Patroni, PostgreSQL), run `failover`, and time from
the kill to the first checkout B accepts. Orders lost = orders A acknowledged (201) that B's database lacks.
Prints one JSON object (each run and the medians).
Usage: PYTHONPATH=src:. python bench/regions_failover.py [--runs 3] [--dir DIR] [--port-base N]"""

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
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/shopfloor-bench-regions")
    ap.add_argument("--port-base", type=int, default=27400)
    ap.add_argument("--load-s", type=float, default=5.0, help="Seconds of checkouts through A before the kill.")
    args = ap.parse_args()
    runs = [one_run(args) for _ in range(args.runs)]
    rtos = [r["rto_s"] for r in runs if r["rto_s"] is not None]
    print(json.dumps({"runs": runs, "rto_s_median": statistics.median(rtos) if rtos else None,
                      "rto_s_max": max(rtos) if rtos else None,
                      "orders_lost_total": sum(r["orders_lost"] for r in runs),
                      "orders_acknowledged_total": sum(r["orders_acknowledged_before_kill"] for r in runs),
                      "target": {"rto_s": 30, "orders_lost": 0}}, indent=2))


def one_run(args) -> dict:
    layout = RegionsLayout.from_settings(Settings(regions_dir=Path(args.dir), regions_port_base=args.port_base))
    down(layout, purge=True)
    try:
        started = up(layout)
        engine = make_engine(layout.a.database_url)
        seed(engine, {"w1": ("us-west", "US", ["9"])}, {"A1": 1299}, {("A1", "w1"): 100_000})
        _, key = new_key(engine, "storefront")
        engine.dispose()
        acknowledged: list[str] = []
        stop = threading.Event()

        def load() -> None:  # a shopper hammering region A until it dies
            while not stop.is_set():
                r = checkout(layout.a.app_url, key)
                if r is not None and r.status_code == 201:
                    acknowledged.append(r.json()["order_id"])

        shopper = threading.Thread(target=load)
        shopper.start()
        time.sleep(args.load_s)
        killed_at = time.monotonic()
        kill_region(layout, "A")
        stop.set()
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
            "synchronous": layout.synchronous, "promoted_s_after_failover_call": promoted.get("promoted_s"),
            "up_s": round(started["timings"]["total_s"], 1),
        }
    finally:
        down(layout, purge=True)


if __name__ == "__main__":
    main()
