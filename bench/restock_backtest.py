"""Restock backtest benchmark: our NB lead-time-demand policy vs the MA + z*sigma*sqrt(L+R) baseline.

Lost-sales, daily-review simulation on the M5 subset (280 item x store series), lead time 7 days, fill-rate
targets 0.90 / 0.95 / 0.98, last 364 days scored. Our policy's mean comes from ``shopfloor.forecast`` (re-run
every 7 days, blended with a daily SES x weekday model) and its spread from its own past (L+R)-day errors.
Prints JSON with the achieved fill rates, average on-hand, and the inventory ratio ours / baseline at equal
achieved fill rate (baseline curve interpolated over a z grid). ``--variants`` adds comparison runs of other
mean/spread choices (cheap: they reuse the forecasts).

    PYTHONPATH=src python bench/restock_backtest.py [--history FILE] [--plot-out docs/img/restock_tradeoff.png]
        [--demand blend|forecast|ses] [--variants ses:nb_shrunk,ses:error_variance,forecast:error_variance]
        [--test-days 364] [--end-offset 0]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from functools import partial

from shopfloor.planning import ForecastCache, check_order_cap, forecast_package_means
from shopfloor.planning.restock_backtest import DemandPanel, load_demand_panel, plot_tradeoff, run_restock_backtest

M5 = "/work/shared/data/m5_walmart/tiny_m5_long.csv.gz"


def _summary(t: dict) -> dict:
    return {
        "target": t["target"],
        "our_fill_rate": t["ours"]["fill_rate"],
        "fill_error_pts": t["fill_error_pts"],
        "fill_within_1_5_pts": t["fill_within_1_5_pts"],
        "our_avg_on_hand": t["ours"]["avg_on_hand"],
        "mean_quantile_level": t["ours"]["mean_quantile_level"],
        "baseline_at_target_z": t["baseline_at_target_z"],
        "baseline_avg_on_hand_at_equal_fill": t["baseline_on_hand_at_equal_fill"],
        "ratio_ours_over_baseline": t["inventory_ratio_vs_baseline"],
        "inventory_reduction_pct": t["inventory_reduction_pct"],
        "meets_10pct_target": t["meets_inventory_target"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--history", default=M5)
    ap.add_argument("--lead-time", type=int, default=7)
    ap.add_argument("--test-days", type=int, default=364)
    ap.add_argument("--end-offset", type=int, default=0,
                    help="drop this many days from the end first (scores an earlier window)")
    ap.add_argument("--demand", default="blend")
    ap.add_argument("--spread", default="error_variance")
    ap.add_argument("--forecast-model", default="auto")
    ap.add_argument("--forecast-weight", type=float, default=None,
                    help="share of the forecast package in the blend (default: the policy's DEFAULT_FORECAST_WEIGHT)")
    ap.add_argument("--order-cap", type=float, default=None,
                    help="capped-base-stock factor of our policy (0 = plain base stock; default: DEFAULT_ORDER_CAP)")
    ap.add_argument("--variants", default="", help="comma-separated demand:spread pairs to run as well")
    ap.add_argument("--plot-out", default=None)
    ap.add_argument("--forecast-cache-dir", default=None,
                    help="keep forecasts here (keyed by a hash of the exact history) so re-runs skip the fits")
    args = ap.parse_args(argv)
    panel = load_demand_panel(args.history)
    if args.end_offset:
        panel = DemandPanel(panel.ids, panel.dates[: -args.end_offset], panel.demand[:, : -args.end_offset])
    # "auto" names whatever the forecast package's default is today: key the disk cache on the concrete spec.
    from shopfloor.forecast import DEFAULT_MODEL

    tag = DEFAULT_MODEL if args.forecast_model == "auto" else args.forecast_model
    cache = ForecastCache(partial(forecast_package_means, model=args.forecast_model), args.forecast_cache_dir,
                          tag=tag)
    common = dict(service_levels=(0.90, 0.95, 0.98), lead_time=args.lead_time, test_days=args.test_days,
                  forecast_model=args.forecast_model, forecaster=cache)
    if args.forecast_weight is not None:
        if not 0 <= args.forecast_weight <= 1:
            ap.error("--forecast-weight must be between 0 and 1")
        common["forecast_weight"] = args.forecast_weight
    if args.order_cap is not None:
        try:
            check_order_cap(args.order_cap)
        except ValueError as exc:
            ap.error(f"--order-cap: {exc}")
        common["order_cap"] = args.order_cap
    result = run_restock_backtest(panel, demand=args.demand, spread=args.spread, **common)
    variants = {}
    for pair in filter(None, args.variants.split(",")):
        demand, spread = pair.split(":")
        variants[pair] = run_restock_backtest(panel, demand=demand, spread=spread, **common)
    result["variants"] = variants
    if args.plot_out:
        plot_tradeoff(result, args.plot_out)
    summary = {
        "benchmark": "restock_backtest",
        "data": result["data"],
        "lead_time_days": result["lead_time_days"],
        "policy": result["policy"],
        "order_cap": result["order_cap"],
        "forecast_calls": cache.calls,
        "targets": [_summary(t) for t in result["targets"]],
        "variants": {
            name: {"policy": v["policy"], "targets": [_summary(t) for t in v["targets"]]} for name, v in variants.items()
        },
        "baseline_curve": result["baseline_curve"],
        "runtime_s": result["runtime_s"],
        "runtime_s_with_variants": round(result["runtime_s"] + sum(v["runtime_s"] for v in variants.values()), 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    json.dump(summary, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
