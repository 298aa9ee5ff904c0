"""The checkout writer's CPU per checkout at a fixed batch size, in process (no HTTP, no load generator).

Builds the server's container on a fresh store (SQLite by default, durable commits; or ``--database-url``), then
applies group commits the way the writer thread does: a batch of ``--batch`` new orders (each with the promise the
buy path would attach), then a batch of their approved settlements. Each batch runs on this thread and is timed
with this thread's CPU clock (``time.thread_time``), so the figure does not move with the machine's load or the
throughput the way the HTTP benchmark's does (there, the batch size follows the throughput). Prints the median
over ``--rounds`` of the order batch, the settlement batch and both, in microseconds per checkout.

    python bench/checkout_writer_cost.py [--batch 16] [--rounds 40] [--warmup 5] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--no-promise-bookkeeping", action="store_true",
                    help="leave out the promise bookkeeping the writer does for each new order (its after_place "
                         "hook), to measure its share")
    args = ap.parse_args()

    from shopfloor.bootstrap import build_container
    from shopfloor.config import Settings
    from shopfloor.domain.stock import OrderLineRequest
    from shopfloor.gameday.seed import ensure_fresh_store, seed_bench_store
    from shopfloor.orders.checkout import PlaceOrder, _Batched, request_fingerprint
    from shopfloor.orders.payment_flow import Settle
    from shopfloor.orders.service import combine_promises
    from shopfloor.payments import AuthOutcome, AuthorizationResult

    tmp = Path(tempfile.mkdtemp(prefix="sf-writer-cost-"))
    url = args.database_url or f"sqlite:///{tmp / 'writer.db'}"
    if args.database_url:
        ensure_fresh_store(url)
    key = seed_bench_store(url, 500, 2000)
    c = build_container(Settings(database_url=url))
    buy_path = c.services["buy_path"]
    writer = buy_path.checkout_service
    if args.no_promise_bookkeeping:
        writer.after_place = None
    settlement = buy_path.settlement
    shipping = {"carrier": "sim", "service": "ground", "amount": 595, "currency": "USD", "provisional": False}
    postals = ["94107", "10001", "60601", "30301", "98101"]
    n = 0

    def command(i: int) -> PlaceOrder:
        body = {"lines": [{"sku": f"SKU{(i * 37) % 500:05d}", "qty": 1 + i % 2}],
                "ship_to": {"country": "US", "postal_code": postals[i % 5], "email": None},
                "payment": {"token": "tok_ok", "customer_id": None, "billing_country": None}}
        cmd = PlaceOrder(key[:12], f"w-{os.getpid()}-{i}", request_fingerprint(body),
                         tuple(OrderLineRequest(l["sku"], l["qty"]) for l in body["lines"]), "US",
                         body["ship_to"]["postal_code"], {"token": "tok_ok"})
        extra = {"shipping": shipping, "payment_attempt_key": f"pay_{i:032x}"}
        if buy_path.promise is not None:
            promises = buy_path._line_promises(cmd)
            extra["promise"] = combine_promises(promises)
            dated = [p for p in promises if p.deliver_by is not None]
            if dated:
                extra["promise_window"] = max(dated, key=lambda p: p.deliver_by).window
        return replace(cmd, extra=extra)

    def timed(batch: list) -> tuple[float, list]:
        t0 = time.thread_time()
        writer._apply_batch(batch)
        spent = time.thread_time() - t0
        return spent, [f.result(timeout=0) for _, f in batch]

    orders_us, settle_us = [], []
    try:
        for r in range(args.warmup + args.rounds):
            cmds = [command(n + j) for j in range(args.batch)]
            n += args.batch
            spent_o, results = timed([(cmd, Future()) for cmd in cmds])
            items = []
            for cmd, res in zip(cmds, results):
                if res.status_code != 201:
                    raise SystemExit(f"a checkout answered {res.status_code}: {res.body}")
                auth = AuthorizationResult(AuthOutcome.APPROVED, cmd.extra["payment_attempt_key"], "sim-a", "ref")
                items.append(_Batched(settlement.apply_many, Settle(res.body["order_id"], auth, 1,
                                                                     (f"{cmd.api_key_id}:checkout",
                                                                      cmd.idempotency_key), res.body)))
            spent_s, settled = timed([(item, Future()) for item in items])
            if any(s[0] != 201 for s in settled):
                raise SystemExit(f"a settlement answered {settled}")
            if r >= args.warmup:
                orders_us.append(1e6 * spent_o / args.batch)
                settle_us.append(1e6 * spent_s / args.batch)
    finally:
        buy_path.close()
    med_o, med_s = statistics.median(orders_us), statistics.median(settle_us)
    print(json.dumps({"database": "postgresql" if url.startswith("postgres") else "sqlite", "batch": args.batch,
                      "rounds": args.rounds, "order_batch_us_per_checkout": round(med_o, 1),
                      "settlement_batch_us_per_checkout": round(med_s, 1),
                      "writer_us_per_checkout": round(med_o + med_s, 1),
                      "promise_bookkeeping": not args.no_promise_bookkeeping,
                      "load_average": round(os.getloadavg()[0], 1)}))


if __name__ == "__main__":
    main()
