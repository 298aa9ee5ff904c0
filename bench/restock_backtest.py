"""Restock backtest benchmark: the shipped agent vs MA(28)*(L+R) + z*sigma*sqrt(L+R), at equal fill.

Lost-sales, daily-review simulation, lead time 7, fill-rate targets 0.90 / 0.95 / 0.98. The policy is the one
`shopfloor restock agent` and `shopfloor restock plan` run (``ReplenishmentAgent`` -> ``RestockEngine``), driven
day by day through the agent protocol: it sees units sold and stock at close, never demand. Two baselines, each
with its z bisected until its fill equals the agent's: ``ratio`` against the formula fed the true demand (the
textbook formula as usually simulated; stricter, it learns from demand lost to stock-outs) and
``ratio_vs_sales_baseline`` against the same formula fed units sold (equal information with the agent). A ratio
is agent / baseline average on-hand at that equal fill; null when the baseline cannot reach the agent's fill for
any z in [-1, 6]. Each window is scored after a 28-day warm-up.

Windows are labelled: on the M5 panel, windows whose scored days end on or before ``--selection-end``
(2015-04-26) are the ones the engine's defaults were selected on (IN-SAMPLE); later windows, and every window of
another dataset, are OUT-OF-SAMPLE.

    PYTHONPATH=src python bench/restock_backtest.py                     # M5: 2013-14, 2014-15 (in), 2015-16 (out)
    PYTHONPATH=src python bench/restock_backtest.py --history /tmp/uci_top200.csv.gz \\
        --windows 0 --test-days 182                                     # UCI 2009-10 (bench/prepare_uci_restock.py)
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

from shopfloor.planning.restock_backtest import DemandPanel, load_demand_panel, run_restock_backtest

M5 = "/work/shared/data/m5_walmart/tiny_m5_long.csv.gz"


def _row(t: dict) -> dict:
    eq = t["baseline_at_equal_fill"]
    return {
        "target": t["target"],
        "fill": t["ours"]["fill_rate"],
        "fill_error_pts": t["fill_error_pts"],
        "fill_within_1_5_pts": t["fill_within_1_5_pts"],
        "avg_on_hand": t["ours"]["avg_on_hand"],
        "baseline_z_at_equal_fill": eq["z"],
        "baseline_avg_on_hand_at_equal_fill": eq["avg_on_hand"],
        "baseline_fill_range": eq.get("fill_range"),  # where no z in [-1, 6] reaches the agent's fill
        "ratio": t["inventory_ratio_vs_baseline"],
        "reduction_pct": t["inventory_reduction_pct"],
        "meets_10pct": t["meets_inventory_target"],
        "sales_baseline_z_at_equal_fill": t["sales_baseline_at_equal_fill"]["z"],
        "sales_baseline_avg_on_hand_at_equal_fill": t["sales_baseline_at_equal_fill"]["avg_on_hand"],
        "sales_baseline_fill_range": t["sales_baseline_at_equal_fill"].get("fill_range"),
        "ratio_vs_sales_baseline": t["inventory_ratio_vs_sales_baseline"],
        "reduction_pct_vs_sales_baseline": t["inventory_reduction_pct_vs_sales_baseline"],
        "meets_10pct_vs_sales_baseline": t["meets_inventory_target_vs_sales_baseline"],
        "sales_baseline_at_target_z": {k: t["sales_baseline_at_target_z"][k]
                                       for k in ("z", "fill_rate", "avg_on_hand")},
        "baseline_at_target_z": {k: t["baseline_at_target_z"][k] for k in ("z", "fill_rate", "avg_on_hand")},
        "agent_seconds": t["agent_seconds"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--history", default=M5)
    ap.add_argument("--windows", default="728,364,0",
                    help="comma-separated end offsets in days (0 = the panel's last window)")
    ap.add_argument("--test-days", type=int, default=364)
    ap.add_argument("--warmup-days", type=int, default=28)
    ap.add_argument("--lead-time", type=int, default=7)
    ap.add_argument("--fill-rates", default="0.90,0.95,0.98")
    ap.add_argument("--selection-end", default="2015-04-26",
                    help="M5 windows scored up to this date were used to select the defaults (in-sample)")
    ap.add_argument("--in-sample", action="store_true",
                    help="label every window in-sample: this history was used to choose the defaults "
                         "(e.g. UCI Online Retail products ranked 201-400)")
    ap.add_argument("--tuning", default="", help="engine knobs to override, e.g. calibration_days=0,controller_gain=0.3")
    args = ap.parse_args(argv)
    tuning = None
    if args.tuning:
        from shopfloor.planning.restock_engine import EngineTuning

        try:
            tuning = EngineTuning.from_text(args.tuning)
        except ValueError as exc:
            ap.error(f"--tuning: {exc}")
    full = load_demand_panel(args.history)
    is_m5 = args.history == M5
    targets = tuple(float(x) for x in args.fill_rates.split(","))
    t0 = time.perf_counter()
    windows = []
    for off in (int(x) for x in args.windows.split(",")):
        panel = full if off == 0 else DemandPanel(full.ids, full.dates[:-off], full.demand[:, :-off])
        res = run_restock_backtest(panel, service_levels=targets, lead_time=args.lead_time,
                                   test_days=args.test_days, warmup_days=args.warmup_days, tuning=tuning)
        scored_to = res["data"]["scored_to"]
        in_sample = args.in_sample or (is_m5 and scored_to <= args.selection_end)
        windows.append({
            "end_offset": off,
            "scored": f"{res['data']['scored_from']}..{scored_to}",
            "sample": "in-sample (selection)" if in_sample else "out-of-sample",
            "targets": [_row(t) for t in res["targets"]],
        })
        print(json.dumps({"window": windows[-1]["scored"], "sample": windows[-1]["sample"],
                          "fill/ratio/sales-ratio": [(r["fill"], r["ratio"], r["ratio_vs_sales_baseline"])
                                                    for r in windows[-1]["targets"]]}),
              file=sys.stderr, flush=True)
    out = {
        "benchmark": "restock_backtest",
        "history": args.history,
        "series": int(full.demand.shape[0]),
        "lead_time_days": args.lead_time,
        "warmup_days": args.warmup_days,
        "policy": res["policy"],
        "tuning": res["tuning"],
        "baseline": res["baseline"],
        "sales_baseline": res["sales_baseline"],
        "windows": windows,
        "runtime_s": round(time.perf_counter() - t0, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
