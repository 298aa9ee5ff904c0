"""Where the restock engine's stock goes: per-SKU-group fill and stock at equal fill, and 8-day forecast error.

Two diagnostics of the shipped engine on one scored window, printed as JSON:

* ``groups``: the agent (``shopfloor restock agent``'s engine, sales-only, lost-sales store, L = 7, daily review)
  and the MA(28)·(L+R) + z·σ·√(L+R) baseline with ``z`` bisected to the agent's aggregate fill, run at each
  target; per group of SKUs (by mean daily demand over the 182 days before the window) their fill, average
  on-hand and lost units. Between two targets, ``lost units saved / stock added`` per group is the marginal
  value of stock in that group: equal values mean the allocation across SKUs is already efficient.
* ``forecast``: root-mean-square error of the engine's forecast of the next L+R = 8 days' demand (fed the true
  demand, no stock-outs) against ``MA(28)·8``, summed over the SKUs of each group, over the window.

    PYTHONPATH=src python bench/restock_diagnostics.py --end-offset 364      # M5 2014-04-28..2015-04-26
    PYTHONPATH=src python bench/restock_diagnostics.py --tuning month_halflife=365 --skip-groups
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from _restock_args import M5, window_arguments  # bench/, the script's own folder
from shopfloor.planning.restock_agent import ReplenishmentAgent
from shopfloor.planning.restock_backtest import (
    DemandPanel,
    bisect_baseline_z,
    load_demand_panel,
    neutral_start,
    simulate_agent,
)
from shopfloor.planning.restock_engine import EngineTuning, RestockEngine, replay_history
from shopfloor.planning.restock_sim import NormalSafetyStockPolicy, simulate

GROUPS = ((0.0, 0.5), (0.5, 2.0), (2.0, 8.0), (8.0, np.inf))




def _masks(panel: DemandPanel, start: int) -> dict[str, np.ndarray]:
    mu = panel.demand[:, max(start - 182, 0):start].mean(axis=1)
    return {f"{lo:g}-{hi:g}": (mu >= lo) & (mu < hi) for lo, hi in GROUPS}


def groups(panel: DemandPanel, targets, tuning: EngineTuning, test_days: int, warmup: int = 28) -> list[dict]:
    n, days = panel.demand.shape
    start = days - test_days - warmup
    masks = _masks(panel, start)
    out = []
    for target in targets:
        stock = neutral_start(panel.demand[:, :start], 7, 1, target)
        agent = ReplenishmentAgent(fill_rate=target, lead_time=7, tuning=tuning)
        ours = simulate_agent(panel, agent.handle, lead_time=7, start=start, warmup=warmup, on_hand=stock)
        eq = bisect_baseline_z(panel, ours.fill_rate, lead_time=7, review_days=1, start=start, warmup=warmup,
                               initial_on_hand=stock)
        base = simulate(panel.demand, panel.weekdays,
                        NormalSafetyStockPolicy(n, lead_time=7, review_days=1, z=eq["z"] or 0.0),
                        lead_time=7, review_days=1, start=start, warmup=warmup, initial_on_hand=stock)
        rows = {}
        for name, m in masks.items():
            if not m.any():
                continue
            rows[name] = {
                "skus": int(m.sum()),
                "demand_share": round(float(ours.demand[m].sum() / ours.demand.sum()), 4),
                **{f"{who}_{k}": v for who, r in (("agent", ours), ("baseline", base)) for k, v in (
                    ("fill", round(float(r.sales[m].sum() / max(r.demand[m].sum(), 1)), 4)),
                    ("avg_on_hand", round(float(r.on_hand_sum[m].sum() / r.scored_days), 1)),
                    ("lost_units", int(r.demand[m].sum() - r.sales[m].sum())))},
            }
        out.append({"target": target, "agent_fill": round(ours.fill_rate, 5), "baseline_z": eq["z"],
                    "ratio": round(ours.avg_on_hand / base.avg_on_hand, 4), "groups": rows})
    for lo, hi in zip(out, out[1:]):
        hi["lost_saved_per_stock_added_vs_previous_target"] = {
            g: round((lo["groups"][g]["agent_lost_units"] - hi["groups"][g]["agent_lost_units"])
                     / max(hi["groups"][g]["agent_avg_on_hand"] - lo["groups"][g]["agent_avg_on_hand"], 1e-9), 2)
            for g in hi["groups"]}
    return out


def forecast_error(panel: DemandPanel, tuning: EngineTuning, test_days: int, horizon: int = 8) -> dict:
    demand = panel.demand.astype(float)
    n, days = demand.shape
    first = days - test_days
    eng = RestockEngine(lead_time=horizon - 1, tuning=tuning)
    eng.ensure(panel.ids)
    # the days before the window are replayed as the agent's history (a gbm forecast is fitted on them)
    replay_history(eng, demand[:, :first - 1], panel.weekdays[:first - 1], calibrate=False,
                   first_day=panel.dates[0].date())
    fe, fb, act = [], [], []
    for t in range(first - 1, days - horizon):
        eng.observe(int(panel.dates[t].weekday()), demand[:, t])
        if t >= first - 1:
            fe.append(eng.daily_means(horizon).sum(axis=1))
            fb.append(demand[:, t - 27:t + 1].mean(axis=1) * horizon)
            act.append(demand[:, t + 1:t + 1 + horizon].sum(axis=1))
    fe, fb, act = map(np.asarray, (fe, fb, act))
    out = {}
    for name, m in {**_masks(panel, first), "all": np.ones(n, dtype=bool)}.items():
        e = float(np.sqrt(((act[:, m] - fe[:, m]) ** 2).mean(axis=0)).sum())
        b = float(np.sqrt(((act[:, m] - fb[:, m]) ** 2).mean(axis=0)).sum())
        out[name] = {"engine_rmse_sum": round(e, 1), "ma28_rmse_sum": round(b, 1), "ratio": round(e / b, 4)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    window_arguments(ap)
    ap.add_argument("--fill-rates", default="0.90,0.95,0.98")
    ap.add_argument("--tuning", default="", help="engine knobs, e.g. month_halflife=365,allocation=marginal")
    ap.add_argument("--skip-groups", action="store_true", help="only the forecast-error table (seconds)")
    args = ap.parse_args(argv)
    try:
        tuning = EngineTuning.from_text(args.tuning)
    except ValueError as exc:
        ap.error(f"--tuning: {exc}")
    full = load_demand_panel(args.history)
    off = args.end_offset
    panel = full if off == 0 else DemandPanel(full.ids, full.dates[:-off], full.demand[:, :-off])
    out = {
        "benchmark": "restock_diagnostics",
        "history": args.history,
        "scored": f"{panel.dates[-args.test_days].date()}..{panel.dates[-1].date()}",
        "tuning": args.tuning or "shipped defaults",
        "forecast_8day": forecast_error(panel, tuning, args.test_days),
    }
    if not args.skip_groups:
        out["groups"] = groups(panel, [float(x) for x in args.fill_rates.split(",")], tuning, args.test_days)
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
