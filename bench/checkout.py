"""Checkout throughput vs the server's own /healthz ceiling, measured in the same run.

    python bench/checkout.py [--database-url URL] [--seconds 10] [--connections 64] [--runs 3]
                             [--simulators process|inline]

Prints one JSON object per run and a final summary with medians.
"""

from __future__ import annotations

import argparse
import json

from shopfloor.gameday import run_checkout_benchmark, summarize_checkout_runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--simulators", choices=("process", "inline"), default="process",
                    help="simulated processors and rate service as their own process (default) or in the server")
    args = ap.parse_args()
    runs = []
    for _ in range(args.runs):
        r = run_checkout_benchmark(args.database_url, seconds=args.seconds, connections=args.connections,
                                   workers=args.workers, simulators=args.simulators)
        runs.append(r)
        print(json.dumps(r), flush=True)
    summary = summarize_checkout_runs(runs)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
