"""Checkout under dependency faults, through the real server, in one run:

  healthy            baseline p99 and success rate
  primary_down       primary processor refuses connections: failover + breaker (target: success >= 99%,
                     p99 at most 1.5 s above healthy)
  rates_blackholed   the shipping-rate service never answers (target: p99 <= 400 ms, every order flagged
                     provisional)

    python bench/payment_faults.py [--seconds 10] [--connections 16] [--runs 3] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import httpx

from shopfloor.gameday import WRK_CHECKOUT_LUA, WRK_STATUS_LUA, run_wrk, seed_bench_store
from shopfloor.runtime import ServerProcess


def one_run(database_url: str | None, seconds: int, connections: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="sf-faults-"))
    url = database_url or f"sqlite:///{tmp / 'bench.db'}"
    key = seed_bench_store(url, 300, 10)
    # The live-quote cache is off: the blackholed phase measures the provisional fallback itself, on every order
    # (with the cache, a destination quoted live in the last seconds would keep its live quote).
    server = ServerProcess(url, env={"SHOPFLOOR_DATA_DIR": str(tmp), "SHOPFLOOR_SHIPPING_QUOTE_CACHE_TTL_S": "0"},
                           pin_core=0).start()
    script = tmp / "checkout.lua"
    script.write_text(WRK_CHECKOUT_LUA + WRK_STATUS_LUA)
    admin = {"Authorization": f"Bearer {key}"}
    out = {}
    try:
        with httpx.Client(base_url=server.url, headers=admin, timeout=10) as c:
            def phase(name, processor_faults=None, rate_faults=None):
                c.put("/v1/admin/processors/primary/faults", json=processor_faults or {"down": False})
                c.put("/v1/admin/rates/faults", json=rate_faults or {"latency_ms": 20, "timeout_rate": 0.0})
                import time

                time.sleep(1.0)
                r = run_wrk(server.url, "/v1/checkouts", seconds, connections, str(script),
                            {"SF_KEY": key, "SF_NSKUS": "300", "SF_RUN": name}, core=1)
                total = sum(r.statuses.values()) or 1
                out[name] = {"rps": round(r.rps, 1), "p50_ms": round(r.p50_ms, 1), "p99_ms": round(r.p99_ms, 1),
                             "success_rate": round(r.statuses.get("201", 0) / total, 4), "statuses": r.statuses}

            run_wrk(server.url, "/v1/checkouts", 2, connections, str(script),
                    {"SF_KEY": key, "SF_NSKUS": "300", "SF_RUN": "warm"}, core=1)
            phase("healthy")
            phase("primary_down", processor_faults={"down": True})
            phase("rates_blackholed", rate_faults={"latency_ms": 60_000, "latency_jitter": 0})
            c.put("/v1/admin/rates/faults", json={"latency_ms": 20})
            orders = c.get("/v1/admin/processors/secondary/ledger").json()
            out["secondary_authorizations"] = sum(1 for o in orders if o["authorized"])
    finally:
        server.stop()
    out["rates_blackholed"]["provisional_share"] = provisional_share(url, "rates_blackholed-")
    out["p99_rise_primary_down_ms"] = round(out["primary_down"]["p99_ms"] - out["healthy"]["p99_ms"], 1)
    return out


def provisional_share(database_url: str, key_prefix: str) -> float | None:
    """Share of the orders a phase created (by its idempotency-key prefix) that carry a provisional quote."""
    from sqlalchemy import select

    from shopfloor.store.engine import make_engine
    from shopfloor.store.tables import orders

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(orders.c.shipping)
                                .where(orders.c.idempotency_key.like(key_prefix + "%"))).all()
    finally:
        engine.dispose()
    if not rows:
        return None
    return round(sum(1 for (doc,) in rows if (doc or {}).get("provisional") is True) / len(rows), 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    runs = []
    for _ in range(args.runs):
        r = one_run(args.database_url, args.seconds, args.connections)
        runs.append(r)
        print(json.dumps(r), flush=True)
    med = lambda path: statistics.median(path(r) for r in runs)  # noqa: E731
    print(json.dumps({
        "benchmark": "payment_faults", "runs": len(runs),
        "median_healthy_p99_ms": med(lambda r: r["healthy"]["p99_ms"]),
        "median_primary_down_p99_ms": med(lambda r: r["primary_down"]["p99_ms"]),
        "median_p99_rise_ms": med(lambda r: r["p99_rise_primary_down_ms"]),
        "median_primary_down_success_rate": med(lambda r: r["primary_down"]["success_rate"]),
        "median_rates_blackholed_p99_ms": med(lambda r: r["rates_blackholed"]["p99_ms"]),
        "median_rates_blackholed_success_rate": med(lambda r: r["rates_blackholed"]["success_rate"]),
        "min_rates_blackholed_provisional_share": min(r["rates_blackholed"]["provisional_share"] or 0.0
                                                      for r in runs),
    }))


if __name__ == "__main__":
    main()
