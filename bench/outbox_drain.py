"""How fast one outbox worker delivers the side effects of accepted orders, by handler concurrency.

    python bench/outbox_drain.py [--orders 600] [--concurrency 1,8] [--runs 3] [--database-url URL]

For each run and each concurrency (the first is the baseline of the ratio), on a fresh store: place ``--orders``
orders through the real buy path in process (promise, quote, inline authorization at the simulated processors
with their default latency), then build the worker exactly as ``shopfloor worker`` does and time how long it takes
to deliver everything that is ready: capture, confirmation mail, warehouse handoff, shipping reconciliation,
funnel stages. Reports events/s and handed-off orders/s. A checkout server takes orders far faster than a worker
delivering one event after another can follow, so this is the rate that bounds how far behind the side effects
fall under load. Each order pays with its own card and has its own buyer (one card used for every order would
make fraud screening's velocity look-up read every earlier order: a card-testing attack, not a busy shop). Prints
one JSON object per run and a summary with medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path


def run_once(database_url: str | None, orders: int, concurrency: int) -> dict:
    from sqlalchemy import func, select

    from shopfloor.bootstrap import build_container, build_worker
    from shopfloor.config import Settings
    from shopfloor.domain.stock import OrderLineRequest
    from shopfloor.gameday import ensure_fresh_store, seed_bench_store
    from shopfloor.orders import outbox_status
    from shopfloor.orders.checkout import PlaceOrder, request_fingerprint
    from shopfloor.store.tables import orders as orders_t

    tmp = Path(tempfile.mkdtemp(prefix="sf-outbox-"))
    if database_url:
        ensure_fresh_store(database_url)
    url = database_url or f"sqlite:///{tmp / 'drain.db'}"
    seed_bench_store(url, 200, hot_units=0)
    os.environ["SHOPFLOOR_DATABASE_URL"] = url
    os.environ["SHOPFLOOR_OUTBOX_CONCURRENCY"] = str(concurrency)
    os.environ["SHOPFLOOR_DATA_DIR"] = str(tmp / "var")  # maildir and plans of this run only
    c = build_container(Settings())
    bp = c.services["buy_path"]

    async def place_all() -> int:
        sem = asyncio.Semaphore(64)

        async def one(i: int) -> int:
            lines = (OrderLineRequest(f"SKU{i % 200:05d}", 1),)
            body = {"i": i}
            cmd = PlaceOrder("bench", f"drain-{uuid.uuid4().hex}", request_fingerprint(body), lines, "US",
                             "94107", {"token": f"tok_{i}"}, {"email": f"buyer{i}@example.com"})
            async with sem:
                return (await bp.checkout(cmd)).status_code

        return sum(1 for s in await asyncio.gather(*(one(i) for i in range(orders))) if s == 201)

    accepted = asyncio.run(place_all())
    before = outbox_status(c.engine)
    worker = build_worker(c)
    t0 = time.perf_counter()
    delivered = 0
    idle_rounds = 0
    # Deliver until nothing is ready for a while (an event a handler writes is ready at once).
    while idle_rounds < 3:
        n = worker.run_once()
        delivered += n
        idle_rounds = idle_rounds + 1 if n == 0 else 0
        if n == 0:
            time.sleep(0.05)
    wall = time.perf_counter() - t0
    after = outbox_status(c.engine)
    with c.engine.connect() as conn:
        handed_off = conn.execute(select(func.count()).select_from(orders_t)
                                  .where(orders_t.c.status == "handed_off")).scalar()
    worker.close()
    c.close()
    return {"concurrency": concurrency, "orders_accepted": accepted, "events_pending_before": before["pending"],
            "events_handled": delivered, "events_pending_after": after["pending"], "dead": after["dead"],
            "orders_handed_off": int(handed_off), "seconds": round(wall, 2),
            "events_per_s": round(delivered / wall, 1), "handed_off_per_s": round(handed_off / wall, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=600)
    ap.add_argument("--concurrency", default="1,8", help="comma-separated; the first is the baseline")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--database-url", default=None, help="an empty database, recreated by you between runs; "
                                                         "default: a fresh SQLite file each time")
    args = ap.parse_args()
    levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    if args.orders < 1 or args.runs < 1 or not levels or min(levels) < 1:
        ap.error("--orders, --runs and every --concurrency must be positive")
    if args.database_url and (args.runs > 1 or len(levels) > 1):
        ap.error("--database-url takes one run at one concurrency (the store must be empty each time)")
    runs = []
    for _ in range(args.runs):
        r = {str(level): run_once(args.database_url, args.orders, level) for level in levels}
        base = r[str(levels[0])]["handed_off_per_s"]
        for v in r.values():
            v["ratio_vs_baseline"] = round(v["handed_off_per_s"] / base, 2) if base else None
        runs.append(r)
        print(json.dumps(r), flush=True)
    summary = {"benchmark": "outbox_drain", "orders": args.orders, "runs": len(runs), "baseline": levels[0],
               "levels": {str(lv): {f"median_{k}": statistics.median(r[str(lv)][k] for r in runs)
                                    for k in ("events_per_s", "handed_off_per_s", "seconds", "ratio_vs_baseline")}
                          for lv in levels}}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
