"""Payments and shipping-quote resilience, measured at the service level (router + simulated gateways on a real
database), each fault scenario compared with the healthy baseline of the same run.

    PYTHONPATH=src python bench/payments_failover.py [--n 400] [--concurrency 8] [--db-url URL]

Prints one JSON document. Scenarios: healthy; primary hard down (connection refused); primary stalled 10 s;
rate service blackholed (then reconciled when it returns). This measures the inline authorization and quote
that checkout performs, not the whole HTTP checkout.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

from prometheus_client import CollectorRegistry

from shopfloor.config import Settings
from shopfloor.domain.clock import SystemClock
from shopfloor.domain.stats import percentile
from shopfloor.orders.payments_service import build_payments_service
from shopfloor.payments import PaymentAttempt
from shopfloor.simulators import FaultPatch
from shopfloor.store.engine import make_engine
from shopfloor.store.migrate import upgrade_database

HEALTHY = FaultPatch(latency_ms=50, latency_jitter=0.25, decline_rate=0, error_rate=0, timeout_rate=0,
                     lost_response_rate=0, down=False)


def pct(values: list[float], q: float) -> float:
    value = percentile(values, q / 100)
    return float("nan") if value is None else value


def run_payments(svc, label: str, n: int, concurrency: int) -> dict:
    attempts = [PaymentAttempt(f"{label}-{i}", f"{label}-o{i}", 1000 + i, "USD", "tok") for i in range(n)]

    def one(a):
        t0 = time.perf_counter()
        r = svc.authorize_inline(a)
        return r, (time.perf_counter() - t0) * 1000

    with cf.ThreadPoolExecutor(concurrency) as pool:
        out = list(pool.map(one, attempts))
    lat = [ms for _, ms in out]
    outcomes = Counter(str(r.outcome) for r, _ in out)
    by_proc = Counter(r.processor for r, _ in out if r.approved)
    return {
        "n": n,
        "success_rate": outcomes["approved"] / n,
        "outcomes": dict(outcomes),
        "approved_by": dict(by_proc),
        "p50_ms": round(pct(lat, 50), 1),
        "p99_ms": round(pct(lat, 99), 1),
        "max_ms": round(max(lat), 1),
        "mean_ms": round(statistics.fmean(lat), 1),
        "breakers": {h["processor"]: h["breaker_state"] for h in svc.health()},
    }


def run_rates(svc, n: int, concurrency: int) -> tuple[dict, list[dict]]:
    def one(i):
        t0 = time.perf_counter()
        q = svc.shipping.quote_for_checkout("US", "10001", 1500)
        return q, (time.perf_counter() - t0) * 1000

    with cf.ThreadPoolExecutor(concurrency) as pool:
        out = list(pool.map(one, range(n)))
    lat = [ms for _, ms in out]
    quotes = [q for q, _ in out]
    return {
        "n": n,
        "provisional_fraction": sum(1 for q in quotes if q["provisional"]) / n,
        "reasons": dict(Counter(q.get("reason") for q in quotes if q["provisional"])),
        "p50_ms": round(pct(lat, 50), 1),
        "p99_ms": round(pct(lat, 99), 1),
        "max_ms": round(max(lat), 1),
    }, quotes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400, help="attempts per scenario")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--db-url", default=None, help="default: a fresh SQLite file in a temp dir")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="sf_bench_pay_")
    url = args.db_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
    upgrade_database(url)
    settings = Settings(database_url=url, payments_sim_seed=42)
    engine = make_engine(url, pool_size=args.concurrency + 4)

    def fresh_service():
        svc = build_payments_service(settings, engine, SystemClock(), registry=CollectorRegistry())
        for name in ("primary", "secondary", "rates"):
            svc.set_faults(name, HEALTHY)
        return svc

    result: dict = {"bench": "payments_failover", "db": url.split(":", 1)[0], "settings": {
        "checkout_budget_s": settings.payments_checkout_budget_s,
        "call_timeout_s": settings.payments_call_timeout_s,
        "breaker": {"window_s": settings.payments_breaker_window_s, "min_calls": settings.payments_breaker_min_calls,
                    "failure_pct": settings.payments_breaker_failure_pct, "open_s": settings.payments_breaker_open_s},
        "sim_latency_ms": 50, "n": args.n, "concurrency": args.concurrency,
        "shipping_quote_timeout_s": settings.shipping_quote_timeout_s,
    }}

    svc = fresh_service()
    healthy = run_payments(svc, "healthy", args.n, args.concurrency)
    svc.close()

    svc = fresh_service()
    svc.set_faults("primary", FaultPatch(down=True))
    down = run_payments(svc, "down", args.n, args.concurrency)
    svc.close()

    svc = fresh_service()
    svc.set_faults("primary", FaultPatch(latency_ms=10_000, latency_jitter=0))
    stall = run_payments(svc, "stall", args.n, args.concurrency)
    svc.close()

    svc = fresh_service()
    rates_healthy, _ = run_rates(svc, args.n, args.concurrency)
    svc.set_faults("rates", FaultPatch(timeout_rate=1.0))
    rates_down, quotes = run_rates(svc, args.n, args.concurrency)
    svc.set_faults("rates", HEALTHY)
    time.sleep(settings.payments_breaker_open_s)  # let the quote breaker half-open, as time would
    reconciled = 0
    for q in quotes:
        if q["provisional"]:
            try:
                final = svc.shipping.reconcile(q, "US", "10001", 1500)
            except Exception:
                continue
            reconciled += bool(final and not final["provisional"] and final.get("provisional_estimate"))
    provisional = sum(1 for q in quotes if q["provisional"])
    rates_down["reconciled_fraction"] = reconciled / provisional if provisional else None
    svc.close()
    engine.dispose()

    result["scenarios"] = {
        "healthy": healthy,
        "primary_down": {**down, "p99_increase_ms": round(down["p99_ms"] - healthy["p99_ms"], 1),
                          "p99_ratio": round(down["p99_ms"] / healthy["p99_ms"], 2)},
        "primary_stall_10s": {**stall, "p99_increase_ms": round(stall["p99_ms"] - healthy["p99_ms"], 1),
                               "p99_ratio": round(stall["p99_ms"] / healthy["p99_ms"], 2)},
        "rates_healthy": rates_healthy,
        "rates_blackholed": {**rates_down, "p99_ratio": round(rates_down["p99_ms"] / rates_healthy["p99_ms"], 2)},
    }
    result["targets"] = {
        "primary_down_success_rate>=0.99": down["success_rate"] >= 0.99,
        "primary_down_p99_increase<=1500ms": down["p99_ms"] - healthy["p99_ms"] <= 1500,
        "rates_blackholed_p99<=400ms": rates_down["p99_ms"] <= 400,
        "rates_blackholed_all_provisional": rates_down["provisional_fraction"] == 1.0,
        "rates_reconciled_all": rates_down["reconciled_fraction"] == 1.0,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
