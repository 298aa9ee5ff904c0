"""Where the fill controller stands: the quantile level over the scored days and the controller's view of the fill.

Runs the shipped agent (sales-only, lost sales, L = 7, daily review, 28-day warm-up) on one panel and reports, per
engine setting and target, the true fill, the controller's censoring-aware view of it (units sold over units sold
plus estimated lost units, summed over the scored days), the share of scored days the common quantile level sat at
its cap, its median and the average stock. ``uncapped`` lifts both caps (``max_alpha`` 0.99999, ``max_sd`` 50).

    PYTHONPATH=src python bench/prepare_uci_restock.py --out /tmp/uci_next200.csv.gz --skip 200
    PYTHONPATH=src python bench/restock_controller_view.py --history /tmp/uci_next200.csv.gz --test-days 182
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from shopfloor.planning.restock_agent import ReplenishmentAgent
from shopfloor.planning.restock_backtest import load_demand_panel, neutral_start, simulate_agent
from shopfloor.planning.restock_engine import EngineTuning

SETTINGS = {"shipped": {}, "uncapped": {"max_alpha": 0.99999, "max_sd": 50.0},
            "uncapped_no_lost_scale": {"max_alpha": 0.99999, "max_sd": 50.0, "lost_calibration_days": 0}}


def run(panel, target: float, tuning: EngineTuning, test_days: int, warmup: int = 28) -> dict:
    start = panel.demand.shape[1] - test_days - warmup
    agent = ReplenishmentAgent(fill_rate=target, lead_time=7, tuning=tuning)
    seen: list[tuple[float, float, float]] = []

    def step(line: dict) -> dict:
        first = not seen and agent.engine.n == 0
        out = agent.handle(line)
        if first:  # wrap after the first line: its calibration runs copies of the engine
            record = agent.engine.record_fill

            def recorded(sold: float, estimate: float) -> None:
                seen.append((sold, estimate, agent.engine.alpha))
                record(sold, estimate)

            agent.engine.record_fill = recorded
        return out

    stock = neutral_start(panel.demand[:, :start], 7, 1, target)
    r = simulate_agent(panel, step, lead_time=7, start=start, warmup=warmup, on_hand=stock)
    a = np.array(seen[warmup - 1:])
    return {"target": target, "fill": round(r.fill_rate, 4),
            "controller_view_fill": round(float(a[:, 0].sum() / a[:, 1].sum()), 4),
            "alpha_at_cap_share": round(float((a[:, 2] >= tuning.max_alpha - 1e-9).mean()), 3),
            "alpha_median": round(float(np.median(a[:, 2])), 5), "avg_on_hand": round(r.avg_on_hand, 1),
            "lost_scale": round(agent.engine.lost_scale, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--history", required=True)
    ap.add_argument("--test-days", type=int, default=182)
    ap.add_argument("--fill-rates", default="0.95,0.98")
    ap.add_argument("--settings", default="shipped,uncapped,uncapped_no_lost_scale")
    args = ap.parse_args(argv)
    panel = load_demand_panel(args.history)
    for name in args.settings.split(","):
        tuning = EngineTuning.from_mapping(SETTINGS[name])
        for target in (float(x) for x in args.fill_rates.split(",")):
            print(json.dumps({"setting": name, **run(panel, target, tuning, args.test_days)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
