"""Where the agent's lost units fall: SKUs grouped by how their scored demand compares with their recent history.

Runs the shipped agent (``shopfloor restock agent``'s engine, sales-only, lost-sales store, L = 7, daily review,
28-day warm-up) on the last ``--test-days`` days of a panel at one fill-rate target and prints, per group of SKUs
(scored mean demand over the mean of the 91 days before the simulation: no sales at all in those days, >= 2.5x,
1-2.5x, < 1x), their share of demand, share of lost units and fill; plus the share of lost units on days whose
demand exceeds 5x the SKU's scored mean (lumpy orders). Used to find why the UCI panels missed their fill.

    PYTHONPATH=src python bench/restock_lost_by_growth.py --history /tmp/uci_next200.csv.gz
    PYTHONPATH=src python bench/restock_lost_by_growth.py --history ... --tuning restart_days=0,max_sd=4
"""

from __future__ import annotations

import argparse
import ast
import json

import numpy as np

from shopfloor.planning.restock_agent import ReplenishmentAgent
from shopfloor.planning.restock_backtest import load_demand_panel, neutral_start, simulate_agent
from shopfloor.planning.restock_engine import EngineTuning
from shopfloor.planning.restock_sim import LostSalesStore


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--history", required=True)
    ap.add_argument("--test-days", type=int, default=182)
    ap.add_argument("--fill-rate", type=float, default=0.95)
    ap.add_argument("--tuning", default="", help="engine knobs to override, e.g. restart_days=0,max_sd=4")
    args = ap.parse_args(argv)
    over = {k: ast.literal_eval(v) for k, v in (kv.split("=") for kv in args.tuning.split(","))} if args.tuning else {}
    panel = load_demand_panel(args.history)
    n, days = panel.demand.shape
    start = days - args.test_days - 28
    daily: list[tuple[np.ndarray, np.ndarray]] = []

    class Recording(LostSalesStore):
        def serve_day(self, t, demand, scored):
            sold = super().serve_day(t, demand, scored)
            if scored:
                daily.append((demand - sold, demand))
            return sold

    import shopfloor.planning.restock_backtest as rb

    rb.LostSalesStore = Recording
    agent = ReplenishmentAgent(fill_rate=args.fill_rate, lead_time=7, tuning=EngineTuning(**over))
    stock = neutral_start(panel.demand[:, :start], 7, 1, args.fill_rate)
    res = simulate_agent(panel, agent.handle, lead_time=7, start=start, warmup=28, on_hand=stock)
    lost = np.array([x for x, _ in daily]).T.astype(float)
    dem = np.array([d for _, d in daily]).T.astype(float)
    hist = panel.demand[:, :start][:, -91:].mean(axis=1)
    scored = dem.mean(axis=1)
    growth = np.where(hist > 0, scored / np.where(hist > 0, hist, 1.0), np.where(scored > 0, np.inf, 0.0))
    groups = {"no sales in the 91 days before": np.isinf(growth), ">= 2.5x": (growth >= 2.5) & np.isfinite(growth),
              "1 - 2.5x": (growth >= 1) & (growth < 2.5), "< 1x": growth < 1}
    out = {"history": args.history, "fill_rate_target": args.fill_rate, "tuning": over, "fill": round(res.fill_rate, 4),
           "lost_units": int(lost.sum()), "demand_units": int(dem.sum()), "groups": {}}
    for name, m in groups.items():
        out["groups"][name] = {"skus": int(m.sum()), "demand_share": round(dem[m].sum() / dem.sum(), 3),
                               "lost_share": round(lost[m].sum() / max(lost.sum(), 1), 3),
                               "fill": round(1 - lost[m].sum() / max(dem[m].sum(), 1), 4)}
    big = dem > 5 * np.maximum(scored[:, None], 1e-9)
    out["lost_share_on_days_over_5x_mean"] = round(lost[big].sum() / max(lost.sum(), 1), 3)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
