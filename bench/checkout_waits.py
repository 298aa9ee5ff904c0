"""Where a checkout's wall time goes under the checkout benchmark's load: one ``bench/checkout.py`` run with the
server's stage log on (``SHOPFLOOR_CHECKOUT_STAGES_LOG``, see ``shopfloor/orders/stages.py``), summarised over the
"checkouts over many SKUs" phase. Prints one JSON object per run.

    python bench/checkout_waits.py [--seconds 6] [--runs 1] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

STAGES = ["promise", "rate_quote", "order_commit", "authorization", "settlement_commit", "total"]
KEEP = ("checkout_rps", "checkout_p50_ms", "checkout_p99_ms", "ceiling_rps", "ratio",
        "checkout_server_cores_busy", "checkout_server_cpu_us_per_request", "oversold", "lost", "duplicate_orders")


def _pct(xs: list[float]) -> dict:
    if not xs:
        return {}
    xs = sorted(xs)
    q = lambda p: xs[min(len(xs) - 1, int(p * len(xs)))]  # noqa: E731
    return {"mean": round(statistics.fmean(xs), 2), "p50": round(q(0.5), 2), "p90": round(q(0.9), 2),
            "p99": round(q(0.99), 2)}


def summarise(path: Path, start: float, end: float) -> dict:
    rows, batches, lags = [], [], []
    for line in path.read_text().splitlines():
        d = json.loads(line)
        kind, v = next(iter(d.items()))
        if not start <= v[0] <= end:
            continue
        (rows if kind == "c" else batches if kind == "b" else lags).append(v)
    out: dict = {"checkouts_timed": len(rows)}
    out["stages_ms"] = {name: _pct([r[i + 1] for r in rows]) for i, name in enumerate(STAGES)}
    if batches:
        items = sum(b[1] for b in batches)
        span = max(end - start, 1e-9)
        out["writer"] = {
            "batches": len(batches), "items_per_batch": round(items / len(batches), 2),
            "orders_per_batch": round(sum(b[2] for b in batches) / len(batches), 2),
            "queue_wait_ms": _pct([b[3] for b in batches]),
            "batch_wall_ms": _pct([b[5] for b in batches]),
            "batch_cpu_ms": _pct([b[6] for b in batches]),
            "wall_over_cpu": round(sum(b[5] for b in batches) / max(sum(b[6] for b in batches), 1e-9), 2),
            "busy_share_of_phase": round(sum(b[5] for b in batches) / 1e3 / span, 3),
        }
    out["loop_lag_ms"] = _pct([x[1] for x in lags])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--seconds", type=float, default=6)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    from shopfloor.gameday import run_checkout_benchmark

    for _ in range(args.runs):
        path = Path(tempfile.mkdtemp(prefix="sf-stages-")) / "stages.jsonl"
        os.environ["SHOPFLOOR_CHECKOUT_STAGES_LOG"] = str(path)
        marks: dict[str, float] = {}
        r = run_checkout_benchmark(args.database_url, seconds=args.seconds, connections=args.connections,
                                   progress=lambda phase: marks.setdefault(phase, time.time()))
        start, end = marks["checkouts over many SKUs"], marks["hot-SKU flash sale"]
        out = {"benchmark": "checkout_waits", **{k: r.get(k) for k in KEEP}, "load_avg_1m": os.getloadavg()[0],
               **summarise(path, start + 0.5, end - 0.2)}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
