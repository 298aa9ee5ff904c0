"""How far 28-day fills scatter for a policy that is right on average: the noise floor of 28-day fill tracking.

The textbook MA(28)·(L+R) + z·σ·√(L+R) policy fed the true demand, one ``z`` for all windows, bisected with
hindsight until the *mean* fill over the windows equals the target, is run on the same 28-day windows as the agent
(each: all history before it, a 28-day warm-up, 28 scored days, lost sales, L = 7). Its windows miss the target only
through what 28 days of demand do to a fixed policy; the count of windows within ±1.5 points says how much of the
agent's 28-day misses any policy that does not know the window would share. A measurement, not a policy.

    PYTHONPATH=src python bench/restock_window_noise.py --end-offset 364     # M5 2014-15 (selection year)
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from shopfloor.planning.restock_backtest import load_demand_panel, neutral_start
from shopfloor.planning.restock_sim import NormalSafetyStockPolicy, simulate

M5 = "/work/shared/data/m5_walmart/tiny_m5_long.csv.gz"


def window_fills(demand: np.ndarray, weekdays: np.ndarray, offsets, z: float, target: float) -> list[float]:
    out = []
    for off in offsets:
        d = demand[:, :demand.shape[1] - off] if off else demand
        start = d.shape[1] - 56
        stock = neutral_start(d[:, :start], 7, 1, target)
        n = d.shape[0]
        r = simulate(d, weekdays[:d.shape[1]], NormalSafetyStockPolicy(n, lead_time=7, review_days=1, z=z),
                     lead_time=7, review_days=1, start=start, warmup=28, initial_on_hand=stock)
        out.append(r.fill_rate)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--history", default=M5)
    ap.add_argument("--end-offset", type=int, default=364)
    ap.add_argument("--fill-rates", default="0.90,0.95,0.98")
    args = ap.parse_args(argv)
    panel = load_demand_panel(args.history)
    demand = panel.demand
    weekdays = panel.weekdays
    offsets = [args.end_offset + 28 * k for k in range(13)]
    for target in (float(x) for x in args.fill_rates.split(",")):
        lo, hi = -1.0, 6.0
        for _ in range(14):
            mid = 0.5 * (lo + hi)
            fills = window_fills(demand, weekdays, offsets, mid, target)
            lo, hi = (mid, hi) if np.mean(fills) < target else (lo, mid)
        err = np.abs(np.array(fills) - target)
        print(json.dumps({"end_offset": args.end_offset, "target": target, "z": round(mid, 3),
                          "mean_fill": round(float(np.mean(fills)), 4),
                          "within_1_5_pts": int((err <= 0.015).sum()), "windows": len(fills),
                          "mean_abs_error_pts": round(100 * float(err.mean()), 2),
                          "range": [round(min(fills), 4), round(max(fills), 4)]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
