"""The edge cache under faults: product-page availability and latency with the edge (two nginx edge nodes and a
shield) versus the same shoppers, load and origin faults straight against the origin, measured in the same run.

    PYTHONPATH=src python bench/edge.py [--runs 3] [--seconds 60] [--browsers 12]

Each run is one `shopfloor gameday --scenario edge` (edge_down, sell-out, origin_slow, origin_down, origin back)
and one baseline run without the edge. Prints one JSON document: per-run figures, medians, and the ratios
edge / baseline.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path


def _p99(result) -> float | None:
    values = [p["p99_ms"] for p in result.phases if p["p99_ms"] is not None]
    return max(values) if values else None


def _summary(result) -> dict:
    down = next((p for p in result.phases if p["phase"] == "origin down"), {})
    return {"product_page_availability": result.product_page_availability,
            "availability_while_origin_down": down.get("availability"),
            "edge_hit_ratio": result.edge_hit_ratio,
            "stale_in_stock_after_sellout_s": result.stale_in_stock_after_sellout_s,
            "worst_phase_p99_ms": _p99(result), "product_views": result.totals["product_views"],
            "views_per_checkout": result.totals["views_per_checkout"],
            "checks_failed": {k: v for k, v in result.checks.items() if v}, "passed": result.passed}


def _median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r[key] is not None]
    return round(statistics.median(values), 5) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--browsers", type=int, default=12)
    args = parser.parse_args()
    from shopfloor.gameday import run_edge_gameday

    edge_runs, base_runs = [], []
    for i in range(args.runs):
        for through_edge, runs in ((True, edge_runs), (False, base_runs)):
            work = Path(tempfile.mkdtemp(prefix=f"sf-bench-edge-{i}-"))
            result = run_edge_gameday(seconds=args.seconds, browsers=args.browsers, seed=7 + i, workdir=work,
                                      through_edge=through_edge,
                                      progress=lambda m: print(f"[run {i}] {m}", file=sys.stderr))
            runs.append(_summary(result))
    keys = ("product_page_availability", "availability_while_origin_down", "edge_hit_ratio",
            "stale_in_stock_after_sellout_s", "worst_phase_p99_ms", "product_views")
    edge = {k: _median(edge_runs, k) for k in keys}
    base = {k: _median(base_runs, k) for k in keys}

    def ratio(key):
        return round(edge[key] / base[key], 3) if edge[key] is not None and base[key] else None

    print(json.dumps({
        "runs": args.runs, "seconds": args.seconds, "browsers": args.browsers,
        "edge": {"median": edge, "runs": edge_runs},
        "baseline_origin_only": {"median": base, "runs": base_runs},
        "ratio_edge_over_baseline": {k: ratio(k) for k in ("product_page_availability",
                                                           "availability_while_origin_down", "worst_phase_p99_ms")},
        "targets": {"product_page_availability": 0.999, "edge_hit_ratio": 0.90,
                    "stale_in_stock_after_sellout_s": 5.0},
        "all_edge_runs_passed": all(r["passed"] for r in edge_runs),
    }, indent=2))
    return 0 if all(r["passed"] for r in edge_runs) else 1


if __name__ == "__main__":
    sys.exit(main())
