"""Where the fill controller stands: the quantile level over the scored days and the controller's view of the fill.

Runs the shipped agent (sales-only, lost sales, L = 7, daily review, 28-day warm-up) on one panel and reports, per
engine setting and target, the true fill, the controller's censoring-aware view of it (units sold over units sold
plus estimated lost units, summed over the scored days), the share of scored days the common quantile level sat at
its cap, its median and the average stock. ``uncapped`` lifts both caps (``max_alpha`` 0.99999, ``max_sd`` 50).

Diagnostics (none of them is a policy a store could run):

- ``--view true`` feeds the controller each day's true demand instead of its censoring-aware estimate: what the
  same controller does when it knows its fill;
- ``--fixed-alpha A,B`` holds the common quantile level at each value for the whole run (no control): with
  several values, the level a store would have needed in hindsight;
- ``--blocks N`` prints the scored days in blocks of N days: demand per day and on the block's busiest day, the
  share of the block's excess demand (each SKU's over its mean of the 28 days before) carried by its top 10 SKUs,
  true fill, the controller's view, the median level and the forecast made the evening before over the demand
  that came.

    PYTHONPATH=src python bench/prepare_uci_restock.py --out /tmp/uci_next200.csv.gz --skip 200
    PYTHONPATH=src python bench/restock_controller_view.py --history /tmp/uci_next200.csv.gz --test-days 182
    PYTHONPATH=src python bench/restock_controller_view.py --history /tmp/uci_next200.csv.gz --test-days 120 \\
        --fill-rates 0.95 --settings shipped --view true --blocks 14
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


def pinned(alpha: float) -> dict:
    """Tuning that holds the common quantile level at ``alpha`` (the controller's range shrunk around it)."""
    if not 0.5 <= alpha < 1:
        raise ValueError(f"fixed alpha must be in [0.5, 1), got {alpha}")
    return {"min_alpha": alpha, "max_alpha": alpha + (1.0 - alpha) * 1e-3, "max_sd": 50.0}


def run(panel, target: float, tuning: EngineTuning, test_days: int, warmup: int = 28, *, true_view: bool = False,
        block: int = 0) -> dict:
    start = panel.demand.shape[1] - test_days - warmup
    agent = ReplenishmentAgent(fill_rate=target, lead_time=7, tuning=tuning)
    seen: list[tuple[float, float, float]] = []
    days: list[tuple[int, float, float, float, float, float]] = []  # t, demand, sold, view's demand, alpha, forecast
    today = {"t": start}

    def step(line: dict) -> dict:
        first = not seen and agent.engine.n == 0
        today["t"] = int(np.searchsorted(panel.dates.values, np.datetime64(line["date"])))
        out = agent.handle(line)
        eng = agent.engine
        if first:  # wrap after the first line: its calibration runs copies of the engine
            record = eng.record_fill

            def recorded(sold: float, estimate: float) -> None:
                if true_view:
                    estimate = float(panel.demand[:, today["t"]].sum())
                seen.append((sold, estimate, eng.alpha))
                record(sold, estimate)

            eng.record_fill = recorded
        t = today["t"]
        days.append((t, float(panel.demand[:, t].sum()), float(sum(line["sales"].values())),
                     float(eng.last_estimate.sum()), eng.alpha, float(eng.daily_means(1).sum())))
        return out

    stock = neutral_start(panel.demand[:, :start], 7, 1, target)
    r = simulate_agent(panel, step, lead_time=7, start=start, warmup=warmup, on_hand=stock)
    a = np.array(seen[warmup - 1:])
    out = {"target": target, "fill": round(r.fill_rate, 4),
           "controller_view_fill": round(float(a[:, 0].sum() / a[:, 1].sum()), 4),
           "alpha_at_cap_share": round(float((a[:, 2] >= tuning.max_alpha - 1e-9).mean()), 3),
           "alpha_median": round(float(np.median(a[:, 2])), 5), "avg_on_hand": round(r.avg_on_hand, 1),
           "lost_scale": round(agent.engine.lost_scale, 3)}
    if block:
        d = np.array(days)
        rows = []
        for b in range(warmup, len(d), block):
            x = d[b:b + block]
            fc = d[b - 1:b - 1 + len(x), 5].sum()  # each day's forecast was made the evening before
            t0, t1 = int(x[0, 0]), int(x[-1, 0]) + 1
            # each SKU's demand over the block against its mean over the 28 days before, per day
            excess = np.maximum(panel.demand[:, t0:t1].sum(axis=1)
                                - panel.demand[:, t0 - 28:t0].mean(axis=1) * (t1 - t0), 0.0)
            rows.append({"from": str(panel.dates[t0].date()), "days": len(x),
                         "demand_per_day": round(float(x[:, 1].mean()), 1),
                         "max_day_demand": round(float(x[:, 1].max()), 1),
                         "top10_share_of_excess": (round(float(np.sort(excess)[-10:].sum() / excess.sum()), 3)
                                                   if excess.sum() > 0 else None),
                         "fill": round(float(x[:, 2].sum() / x[:, 1].sum()), 4),
                         "view": round(float(x[:, 2].sum() / x[:, 3].sum()), 4),
                         "alpha_median": round(float(np.median(x[:, 4])), 5),
                         "forecast_over_demand": round(float(fc / x[:, 1].sum()), 3)})
        out["blocks"] = rows
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--history", required=True)
    ap.add_argument("--test-days", type=int, default=182)
    ap.add_argument("--fill-rates", default="0.95,0.98")
    ap.add_argument("--settings", default="shipped,uncapped,uncapped_no_lost_scale",
                    help=f"comma-separated, of {sorted(SETTINGS)}")
    ap.add_argument("--tuning", default="", help="engine knobs on top of each setting, e.g. controller_gain=0.9")
    ap.add_argument("--view", choices=("agent", "true"), default="agent",
                    help="what the controller is fed: its own censoring-aware estimate (the agent) or, as a "
                         "diagnostic, each day's true demand")
    ap.add_argument("--fixed-alpha", default="",
                    help="comma-separated quantile levels to hold fixed for the whole run instead of the settings "
                         "(a hindsight diagnostic; max_sd lifted to 50)")
    ap.add_argument("--blocks", type=int, default=0, help="also print the scored days in blocks of this many days")
    args = ap.parse_args(argv)
    panel = load_demand_panel(args.history)
    # the --tuning keys, read as their fields' types, laid over each setting
    named = [pair.split("=")[0].strip() for pair in args.tuning.split(",")] if args.tuning.strip() else []
    parsed = EngineTuning.from_text(args.tuning)
    over = {k: getattr(parsed, k) for k in named}
    if args.fixed_alpha:
        runs = [(f"fixed_alpha={a}", pinned(float(a))) for a in args.fixed_alpha.split(",")]
    else:
        unknown = set(args.settings.split(",")) - set(SETTINGS)
        if unknown:
            ap.error(f"unknown setting(s) {sorted(unknown)}; known: {sorted(SETTINGS)}")
        runs = [(name, SETTINGS[name]) for name in args.settings.split(",")]
    for name, setting in runs:
        tuning = EngineTuning.from_mapping({**setting, **over})
        for target in (float(x) for x in args.fill_rates.split(",")):
            print(json.dumps({"setting": name, "view": args.view, **run(panel, target, tuning, args.test_days,
                                                                      true_view=args.view == "true",
                                                                      block=args.blocks)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
