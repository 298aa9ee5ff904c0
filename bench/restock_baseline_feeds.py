"""Where the sales-fed textbook baseline loses its sales: series whose order-up-to level sits at 0.

For each fill given (e.g. the agent's achieved fills from ``bench/restock_backtest.py``), both baselines
(MA(28)*(L+R) + z*sigma*sqrt(L+R) fed the true demand, and fed units sold) get their z bisected to that fill, and
the run is split by series: those whose level is 0 on 28 consecutive scored days or more (a series whose 28-day
window holds only zeros orders nothing; fed sales, a sold-out series records zeros and stays there) and the share
of the lost units they carry. Same simulator, starting stock and warm-up as the backtest; the simulation is
deterministic, so one run is the figure.

    PYTHONPATH=src python bench/restock_baseline_feeds.py --fills 0.91697,0.96297,0.98381   # M5 2015-16
    PYTHONPATH=src python bench/restock_baseline_feeds.py --history /tmp/restock-helper/uci_top200.csv.gz \\
        --test-days 182 --fills 0.88428,0.9157,0.9209 --targets 0.90,0.95,0.98                # UCI top 200
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from shopfloor.planning.restock_backtest import bisect_baseline_z, load_demand_panel, neutral_start
from shopfloor.planning.restock_sim import NormalSafetyStockPolicy, simulate

M5 = "/work/shared/data/m5_walmart/tiny_m5_long.csv.gz"


def stuck_at_zero(levels: np.ndarray, days: int = 28) -> np.ndarray:
    """Per series: is the level 0 on ``days`` consecutive days or more?"""
    out = np.zeros(levels.shape[0], dtype=bool)
    for i, row in enumerate(levels == 0):
        run = 0
        for zero in row:
            run = run + 1 if zero else 0
            if run >= days:
                out[i] = True
                break
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--history", default=M5)
    ap.add_argument("--test-days", type=int, default=364)
    ap.add_argument("--warmup-days", type=int, default=28)
    ap.add_argument("--lead-time", type=int, default=7)
    ap.add_argument("--fills", required=True, help="comma-separated fills to bisect both baselines to")
    ap.add_argument("--targets", default="0.90,0.95,0.98", help="the targets the fills belong to (starting stock)")
    args = ap.parse_args(argv)
    panel = load_demand_panel(args.history)
    n, days = panel.demand.shape
    start = days - args.test_days - args.warmup_days
    sim = dict(lead_time=args.lead_time, review_days=1, start=start, warmup=args.warmup_days)
    rows = []
    for fill, target in zip((float(x) for x in args.fills.split(",")), (float(x) for x in args.targets.split(","))):
        stock = neutral_start(panel.demand[:, :start], args.lead_time, 1, target)
        row: dict = {"target": target, "fill": fill}
        for feed in ("demand", "sales"):
            eq = bisect_baseline_z(panel, fill, initial_on_hand=stock, feed=feed, **sim)
            z = eq["z"] if eq["reachable"] else eq["z_range"][1]
            res = simulate(panel.demand, panel.weekdays,
                           NormalSafetyStockPolicy(n, lead_time=args.lead_time, review_days=1, z=z, feed=feed),
                           **sim, initial_on_hand=stock)
            stuck = stuck_at_zero(res.levels[:, start + args.warmup_days:])
            lost = res.demand - res.sales
            row[feed] = {"z": z, "reached_fill": eq["reachable"], "fill": round(res.fill_rate, 5),
                         "avg_on_hand": round(res.avg_on_hand, 3), "series_at_level_0_for_28_days": int(stuck.sum()),
                         "share_of_lost_units_in_them": round(float(lost[stuck].sum() / max(lost.sum(), 1)), 3)}
        rows.append(row)
    json.dump({"benchmark": "restock_baseline_feeds", "history": args.history, "series": n, "rows": rows},
              sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
