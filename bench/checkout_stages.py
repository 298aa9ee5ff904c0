"""Where a checkout's CPU goes: the buy path in-process, stage by stage, against the bare order path.

    python bench/checkout_stages.py [--database-url URL] [--checkouts 4000] [--concurrency 64] [--runs 3]

No HTTP: the container is built exactly as ``shopfloor serve`` builds it (durable commits, group-commit writer,
production settings) and checkouts go through ``BuyPath.checkout`` from ``--concurrency`` concurrent coroutines
on one event loop, pinned to one core. Four variants share that container:

* ``order``: the order path alone (validated command -> reservation, order, outbox event in the group commit),
  which is the whole checkout of the foundation issue; it is the baseline of every ratio;
* ``order+promise``: plus the delivery promise per line (stock read, delivery window) and its calibration
  bookkeeping in the group commit;
* ``order+payments``: plus the rate quote, the inline authorization through the payment router (breakers,
  failover) and the settlement in a second group commit;
* ``full``: both, which is what ``POST /v1/checkouts`` runs.

The simulated processors and rate service answer with zero latency here (their default is a 20 ms median), so the
figures are the server's own CPU per checkout, not waiting. The simulated processor still writes its ledger (its
stand-in for a real client's HTTP call costs about as much). ``--stub-externals`` is a diagnostic: the simulated
processors' ``authorize`` and the rate service's ``quote`` answer at once (approved; a fixed rate), without their
ledger writes and fault dice, which separates what the simulators cost from our own routing, settlement and
thread hand-offs. Prints one JSON object per run and a summary with medians; ``ratio_cpu`` = CPU per checkout of
the variant / of ``order``.
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

VARIANTS = ("order", "order+promise", "order+payments", "full")


def _zero_latency_env() -> None:
    os.environ["SHOPFLOOR_PAYMENTS_SIM_FAULTS"] = json.dumps(
        {name: {"latency_ms": 0} for name in ("primary", "secondary", "rates")})


def _stub_externals(payments) -> None:
    """Instant answers from the simulated processors and rate service (diagnostic only)."""
    from shopfloor.payments import ProcessorResponse
    from shopfloor.orders.shipping import RateQuote

    for name in payments.router.processor_names:
        payments.router.processor(name).authorize = (
            lambda key, amount, currency, token, order_id, *, timeout_s: ProcessorResponse(True, f"stub_{key[-12:]}"))
    payments.shipping.quoter.quote = lambda country, postal, weight_g, *, timeout_s: RateQuote(
        500, "USD", 3, "stubcarrier", "ground")


def run_once(database_url: str | None, checkouts: int, concurrency: int, n_skus: int = 500,
             stub_externals: bool = False) -> dict:
    from shopfloor.bootstrap import build_container
    from shopfloor.config import Settings
    from shopfloor.domain.stock import OrderLineRequest
    from shopfloor.gameday import seed_bench_store
    from shopfloor.orders.checkout import PlaceOrder, request_fingerprint
    from shopfloor.orders.service import BuyPath

    tmp = Path(tempfile.mkdtemp(prefix="sf-stages-"))
    url = database_url or f"sqlite:///{tmp / 'stages.db'}"
    seed_bench_store(url, n_skus, hot_units=0)
    os.environ["SHOPFLOOR_DATABASE_URL"] = url
    _zero_latency_env()
    c = build_container(Settings())
    full = c.services["buy_path"]
    if stub_externals:
        _stub_externals(full.payments)
    paths = {
        "order": BuyPath(full.checkout_service, None, None, promise=None, observer=full.observer),
        "order+promise": BuyPath(full.checkout_service, None, None, promise=full.promise, observer=full.observer),
        "order+payments": BuyPath(full.checkout_service, full.payments, full.settlement, promise=None,
                                  observer=full.observer),
        "full": full,
    }
    if full.promise is None:
        raise SystemExit("SHOPFLOOR_CHECKOUT_PROMISE is off; this benchmark needs the promise stage")
    postal = ("94107", "10001", "60601")

    def command(i: int) -> PlaceOrder:
        lines = (OrderLineRequest(f"SKU{i % n_skus:05d}", 1 + i % 3),)
        body = {"lines": [{"sku": l.sku, "qty": l.qty} for l in lines],
                "ship_to": {"country": "US", "postal_code": postal[i % 3]}, "payment": {"token": "tok_ok"}}
        return PlaceOrder("bench", f"stage-{uuid.uuid4().hex}", request_fingerprint(body), lines, "US",
                          postal[i % 3], {"token": "tok_ok"}, {})

    async def drive(bp: BuyPath, n: int) -> list[int]:
        sem = asyncio.Semaphore(concurrency)
        statuses: list[int] = []

        async def one(i: int) -> None:
            async with sem:
                statuses.append((await bp.checkout(command(i))).status_code)

        await asyncio.gather(*(one(i) for i in range(n)))
        return statuses

    out: dict = {"benchmark": "checkout_stages", "database": "postgresql" if url.startswith("postgres") else "sqlite",
                 "checkouts": checkouts, "concurrency": concurrency, "stub_externals": stub_externals,
                 "variants": {}}
    loop = asyncio.new_event_loop()
    try:
        for name in VARIANTS:
            loop.run_until_complete(drive(paths[name], min(500, checkouts)))  # warm-up: caches, pool, JIT-free paths
            cpu0, wall0 = time.process_time(), time.perf_counter()
            statuses = loop.run_until_complete(drive(paths[name], checkouts))
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            ok = sum(1 for s in statuses if s == 201)
            if ok != checkouts:
                raise SystemExit(f"{name}: only {ok} of {checkouts} checkouts got a 201")
            out["variants"][name] = {"cpu_us_per_checkout": round(1e6 * cpu / checkouts, 1),
                                     "wall_us_per_checkout": round(1e6 * wall / checkouts, 1),
                                     "checkouts_per_s": round(checkouts / wall, 1)}
    finally:
        loop.close()
        c.close()
    base = out["variants"]["order"]["cpu_us_per_checkout"]
    for v in out["variants"].values():
        v["ratio_cpu"] = round(v["cpu_us_per_checkout"] / base, 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=None, help="default: a fresh SQLite file per run")
    ap.add_argument("--checkouts", type=int, default=4000, help="checkouts per variant and run")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--core", type=int, default=0, help="CPU core to pin to (-1: no pinning)")
    ap.add_argument("--stub-externals", action="store_true",
                    help="diagnostic: simulated processors and rate service answer at once, without their own work")
    args = ap.parse_args()
    if args.checkouts < 1 or args.concurrency < 1 or args.runs < 1:
        ap.error("--checkouts, --concurrency and --runs must be positive")
    if args.core >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.core})
    runs = []
    for _ in range(args.runs):
        r = run_once(args.database_url, args.checkouts, args.concurrency, stub_externals=args.stub_externals)
        runs.append(r)
        print(json.dumps(r), flush=True)
    summary = {"benchmark": "checkout_stages", "runs": len(runs), "database": runs[0]["database"],
               "stub_externals": args.stub_externals, "variants": {}}
    for name in VARIANTS:
        summary["variants"][name] = {
            f"median_{k}": statistics.median(r["variants"][name][k] for r in runs)
            for k in ("cpu_us_per_checkout", "wall_us_per_checkout", "checkouts_per_s", "ratio_cpu")}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
