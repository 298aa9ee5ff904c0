"""Where the agent's lost units fall, day by day: against the order-up-to level in force and the caps.

Runs the shipped agent (sales-only, lost-sales store, L = 7, daily review, 28-day warm-up) on the last
``--test-days`` days of a panel at one fill-rate target and prints JSON: the fill, average stock, the common
quantile level (median, share of scored days at ``max_alpha``), and the share of lost units that fell

- beyond the order-up-to level: the part of a day's demand above the level set the evening before, which a shelf
  filled to that level could not have served;
- on days whose demand exceeds 5x the SKU's scored mean (lumpy orders), or the mean of the 8-day protection
  interval;
- on SKU-days whose level was held down by the ``max_sd`` cap (the NB quantile above ``mean + max_sd * sd``);
- on the 10 and 30 SKUs that lost most.

    PYTHONPATH=src python bench/restock_lost_days.py --history /tmp/uci_next200.csv.gz --target 0.98 [--tuning ...]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from shopfloor.planning.restock_agent import ReplenishmentAgent
from shopfloor.planning.restock_backtest import load_demand_panel, neutral_start
from shopfloor.planning.restock_engine import EngineTuning, nb_quantiles
from shopfloor.planning.restock_sim import LostSalesStore


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--history", required=True)
    ap.add_argument("--target", type=float, default=0.98)
    ap.add_argument("--test-days", type=int, default=182)
    ap.add_argument("--warmup-days", type=int, default=28)
    ap.add_argument("--tuning", default="")
    args = ap.parse_args(argv)
    tuning = EngineTuning.from_text(args.tuning)
    panel = load_demand_panel(args.history)
    demand = panel.demand
    n, days = demand.shape
    warmup = args.warmup_days
    start = days - args.test_days - warmup
    ids = list(panel.ids)
    agent = ReplenishmentAgent(fill_rate=args.target, lead_time=7, tuning=tuning)
    store = LostSalesStore(neutral_start(demand[:, :start], 7, 1, args.target), days, 7)
    catalog = {sku: {"category": "all", "price": 1.0} for sku in ids}
    history = [{"date": panel.dates[t].date().isoformat(), "sku": ids[i], "units": int(demand[i, t])}
               for t in range(start) for i in np.flatnonzero(demand[:, t])]
    sold_all = np.zeros((n, days))
    up_to, capped, m_prot, alpha = [], [], [], []
    for t in range(start, days):
        sold = store.serve_day(t, demand[:, t], scored=t >= start + warmup)
        sold_all[:, t] = sold
        line = {"date": panel.dates[t].date().isoformat(),
                "sales": {ids[i]: int(sold[i]) for i in np.flatnonzero(sold)},
                "on_hand": {ids[i]: int(store.on_hand[i]) for i in range(n)},
                "on_order": {ids[i]: int(store.pipeline[i]) for i in np.flatnonzero(store.pipeline)}}
        if t == start:
            line["catalog"], line["history"] = catalog, history
        answer = agent.handle(line)
        for sku, qty in answer["orders"].items():
            store.order(t, int(qty), ids.index(sku))
        e = agent.engine
        lv = e.levels()
        order = [e.index[s] for s in ids]
        raw = nb_quantiles(e.alpha, lv["mean_protect"], lv["size"])
        up_to.append(lv["order_up_to"][order])
        capped.append((raw > lv["order_up_to"])[order])
        m_prot.append(lv["mean_protect"][order])
        alpha.append(e.alpha)
    scored = slice(start + warmup, days)
    d, s = demand[:, scored], sold_all[:, scored]
    lost = d - s
    k = d.shape[1]
    level = np.array(up_to).T[:, warmup - 1: warmup - 1 + k]  # the level set the evening before
    cap = np.array(capped).T[:, warmup - 1: warmup - 1 + k]
    mp = np.array(m_prot).T[:, warmup - 1: warmup - 1 + k]
    a = np.array(alpha[warmup:])
    total = lost.sum()
    per = np.sort(lost.sum(axis=1))[::-1]
    share = lambda x: round(float(x) / float(total), 3) if total else 0.0  # noqa: E731
    print(json.dumps({
        "history": args.history, "target": args.target, "tuning": args.tuning,
        "fill": round(1.0 - total / d.sum(), 4), "avg_on_hand": round(float(store.oh_sum.sum() / n / k), 1),
        "alpha_median": round(float(np.median(a)), 5),
        "alpha_at_cap_share": round(float((a >= tuning.max_alpha - 1e-9).mean()), 3),
        "lost_units": int(total),
        "lost_share_beyond_order_up_to": share(np.minimum(lost, np.maximum(d - level, 0)).sum()),
        "lost_share_day_over_5x_mean": share(lost[d > 5 * d.mean(axis=1, keepdims=True)].sum()),
        "lost_share_day_over_protection_mean": share(lost[d > mp].sum()),
        "lost_share_on_max_sd_capped_sku_days": share(lost[cap].sum()),
        "max_sd_capped_share_of_sku_days": round(float(cap.mean()), 3),
        "lost_share_top10_skus": share(per[:10].sum()), "lost_share_top30_skus": share(per[:30].sum()),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
