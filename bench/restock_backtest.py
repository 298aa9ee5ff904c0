"""Restock backtest benchmark: our NB lead-time-demand policy vs the MA + z*sigma*sqrt(L+R) baseline.

Lost-sales, daily-review simulation on the M5 subset (280 item x store series), lead time 7 days, fill-rate
targets 0.90 / 0.95 / 0.98, last 364 days scored. Prints JSON with the achieved fill rates, average on-hand, and
the inventory ratio ours / baseline at equal achieved fill rate (baseline curve interpolated over a z grid).

    PYTHONPATH=src python bench/restock_backtest.py [--history FILE] [--plot-out docs/img/restock_tradeoff.png]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys

from shopfloor.planning.restock_backtest import load_demand_panel, plot_tradeoff, run_restock_backtest

M5 = "/work/shared/data/m5_walmart/tiny_m5_long.csv.gz"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--history", default=M5)
    ap.add_argument("--lead-time", type=int, default=7)
    ap.add_argument("--test-days", type=int, default=364)
    ap.add_argument("--plot-out", default=None)
    args = ap.parse_args(argv)
    panel = load_demand_panel(args.history)
    result = run_restock_backtest(panel, service_levels=(0.90, 0.95, 0.98), lead_time=args.lead_time,
                                  test_days=args.test_days)
    if args.plot_out:
        plot_tradeoff(result, args.plot_out)
    summary = {
        "benchmark": "restock_backtest",
        "data": result["data"],
        "lead_time_days": result["lead_time_days"],
        "targets": [
            {
                "target": t["target"],
                "our_fill_rate": t["ours"]["fill_rate"],
                "fill_error_pts": t["fill_error_pts"],
                "fill_within_1_5_pts": t["fill_within_1_5_pts"],
                "our_avg_on_hand": t["ours"]["avg_on_hand"],
                "baseline_at_target_z": t["baseline_at_target_z"],
                "baseline_avg_on_hand_at_equal_fill": t["baseline_on_hand_at_equal_fill"],
                "ratio_ours_over_baseline": t["inventory_ratio_vs_baseline"],
                "inventory_reduction_pct": t["inventory_reduction_pct"],
                "meets_10pct_target": t["meets_inventory_target"],
            }
            for t in result["targets"]
        ],
        "baseline_curve": result["baseline_curve"],
        "runtime_s": result["runtime_s"],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    json.dump(summary, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
