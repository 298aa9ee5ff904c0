"""Checkout throughput vs the server's own /healthz ceiling, measured in the same run.

    python bench/checkout.py [--database-url URL] [--seconds 10] [--connections 64] [--runs 3]

Prints one JSON object per run and a final summary with medians.
"""

from __future__ import annotations

import argparse
import json
import statistics

from shopfloor.loadtest import run_checkout_benchmark


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    runs = []
    for _ in range(args.runs):
        r = run_checkout_benchmark(args.database_url, seconds=args.seconds, connections=args.connections,
                                   workers=args.workers)
        runs.append(r)
        print(json.dumps(r), flush=True)
    keys = ["ceiling_rps", "checkout_rps", "ratio", "checkout_p50_ms", "checkout_p99_ms", "hot_rps", "hot_p99_ms",
            "server_rss_mb"]
    summary = {"benchmark": "checkout", "runs": len(runs), "database": runs[0]["database"],
               **{f"median_{k}": statistics.median(r[k] for r in runs) for k in keys},
               "oversold": sum(r["oversold"] + r["hot_sku_oversold"] for r in runs),
               "lost": sum(r["lost"] for r in runs),
               "duplicate_orders": sum(r["duplicate_orders"] for r in runs)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
