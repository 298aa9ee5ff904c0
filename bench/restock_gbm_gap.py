"""Why a better forecast does not buy stock: the restock agent's average on-hand taken apart, per forecast model.

The shipped agent runs the usual lost-sales simulation (sales-only, L = 7, daily review, 28-day warm-up); its engine
records, at every decision, the protection-interval forecast ``fc``, the order-up-to level ``S``, the spread the
engine used (``sd``, from its negative-binomial size), the inventory position before and after the order, and
the quantile level in force. With the lead time ``L`` and daily review, end-of-day on-hand on day ``t`` is exactly
the position after the order of day ``t - L - 1`` minus the units sold on days ``t - L .. t``, so per SKU

    avg on-hand = bias + safety + overhang + lost
    bias     = mean(fc - D)     D: the true demand of the protection interval (t - L .. t)
    safety   = mean(S - fc)     what the quantile level and the spread add on top of the forecast
    overhang = mean(P - S)      P: position after ordering; > 0 when S fell below what was already held or on
                                order (stock cannot be sent back), < 0 when the order cap held the order back
    lost     = mean(D - sales)  units lost over the interval (unmet demand walks away, it is not on the shelf)

summed over SKUs (units). Beside it: the closed-loop forecast RMSE on the true demand (the model fed the agent's
censored view, as in the store) against ``MA(28)·8`` on the true demand, the ratio of the spread the engine used to
the error it then made (``sd_over_rmse``), the day-to-day swing of ``S`` and of ``fc``, and the stock ratio against
the demand-fed baseline at equal fill, as in ``bench/restock_backtest.py``. A measurement, not a policy.

    PYTHONPATH=src python bench/restock_gbm_gap.py --end-offset 364 --targets 0.95 \\
        --variants "level=;gbm=forecast_model=gbm,gbm_halflife=0"
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from _restock_args import window_arguments  # bench/, the script's own folder
from shopfloor.planning.restock_agent import ReplenishmentAgent
from shopfloor.planning.restock_backtest import (
    DemandPanel,
    bisect_baseline_z,
    load_demand_panel,
    neutral_start,
    simulate_agent,
)
from shopfloor.planning.restock_engine import EngineTuning, RestockEngine





class Recording(RestockEngine):
    """The shipped engine, recording each decision (one row per order day, engine SKU order). With ``oracle``
    (panel, f) its daily forecasts are blended with the demand that really comes, as in
    ``bench/restock_forecast_bound.py`` (a reference: every error shrinks by ``1 - f``)."""

    def __init__(self, oracle: tuple[DemandPanel, float] | None = None, **kw) -> None:
        super().__init__(**kw)
        self._oracle = oracle
        if oracle:
            self._pos = {d: i for i, d in enumerate(oracle[0].dates.date)}
            self._ids = list(oracle[0].ids)
        self.rec: dict[str, list] = {k: [] for k in ("day", "fc", "S", "sd", "pos", "qty", "alpha")}
        self._lv: dict | None = None

    def daily_means(self, k, profile=None):
        own = super().daily_means(k, profile)
        if not self._oracle or self.n != len(self._ids):
            return own
        panel, f = self._oracle
        t = self._pos.get(self.day)
        if t is None:
            return own
        order = [panel.ids.index(s) for s in self.skus] if not hasattr(self, "_order") else self._order
        self._order = order
        actual = own.copy()
        hi = min(t + 1 + k, panel.demand.shape[1])
        actual[:, :hi - t - 1] = panel.demand[order, t + 1:hi]
        return (1 - f) * own + f * actual

    def levels(self):
        self._lv = super().levels()
        return self._lv

    def orders(self, position, **kw):
        qty = super().orders(position, **kw)
        lv = self._lv
        m, k = lv["mean_protect"], lv["size"]
        self.rec["day"].append(self.day)
        self.rec["fc"].append(m.copy())
        self.rec["S"].append(lv["order_up_to"].astype(float))
        self.rec["sd"].append(np.sqrt(m + m * m / k))
        self.rec["pos"].append(np.asarray(position, dtype=float).copy())
        self.rec["qty"].append(np.asarray(qty, dtype=float).copy())
        self.rec["alpha"].append(self.alpha)
        return qty


def take_apart(panel: DemandPanel, eng: Recording, sales: np.ndarray, start: int, warmup: int,
               lead: int, masks: dict[str, np.ndarray]) -> dict:
    """The identity above, per mask of SKUs (panel order), over the scored days."""
    n, days = panel.demand.shape
    order = np.array([eng.index[s] for s in panel.ids])
    pos_of = {d: i for i, d in enumerate(panel.dates.date)}
    dec = {pos_of[d]: i for i, d in enumerate(eng.rec["day"])}
    h = lead + 1
    rows = []
    for t in range(start + warmup, days):
        u = t - h  # the decision whose order arrived on day t - L .. covers t - L .. t
        if u not in dec:
            continue
        i = dec[u]
        fc = eng.rec["fc"][i][order]
        S = eng.rec["S"][i][order]
        P = eng.rec["pos"][i][order] + eng.rec["qty"][i][order]
        D = panel.demand[:, u + 1:t + 1].sum(axis=1).astype(float)
        sold = sales[:, u + 1:t + 1].sum(axis=1)
        ma = panel.demand[:, u - 27:u + 1].mean(axis=1) * h
        sd = eng.rec["sd"][i][order]
        prevS = eng.rec["S"][dec[u - 1]][order] if (u - 1) in dec else S
        prevfc = eng.rec["fc"][dec[u - 1]][order] if (u - 1) in dec else fc
        rows.append((fc, S, P, D, sold, ma, sd, np.abs(S - prevS), np.abs(fc - prevfc), P - sold))
    fc, S, P, D, sold, ma, sd, dS, dfc, oh = (np.array(x) for x in zip(*rows))
    out = {}
    for name, m in masks.items():
        def tot(a):
            return round(float(a[:, m].mean(axis=0).sum()), 1)

        rmse = np.sqrt(((fc[:, m] - D[:, m]) ** 2).mean(axis=0))
        rmse_ma = np.sqrt(((ma[:, m] - D[:, m]) ** 2).mean(axis=0))
        out[name] = {
            "skus": int(m.sum()),
            "avg_on_hand": tot(oh),
            "bias": tot(fc - D), "safety": tot(S - fc), "overhang": tot(P - S), "lost": tot(D - sold),
            "bias_pct_of_demand": round(100 * float((fc[:, m] - D[:, m]).sum() / max(D[:, m].sum(), 1)), 2),
            "mean_sd_used": tot(sd),
            "rmse_closed_loop": round(float(rmse.sum()), 1),
            "rmse_vs_ma28": round(float(rmse.sum() / max(rmse_ma.sum(), 1e-9)), 4),
            "sd_over_rmse": round(float(sd[:, m].mean(axis=0).sum() / max(rmse.sum(), 1e-9)), 4),
            "safety_over_sd": round(float((S - fc)[:, m].mean(axis=0).sum() / max(sd[:, m].mean(axis=0).sum(), 1e-9)), 3),
            "mean_abs_dS": tot(dS), "mean_abs_dfc": tot(dfc),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    window_arguments(ap)
    ap.add_argument("--targets", default="0.95")
    ap.add_argument("--variants", default="level=;gbm=forecast_model=gbm,gbm_halflife=0",
                    help="name=knobs;name=knobs (knobs as in bench/restock_backtest.py --tuning)")
    ap.add_argument("--no-ratio", action="store_true", help="skip the baseline bisection")
    args = ap.parse_args(argv)
    full = load_demand_panel(args.history)
    off = args.end_offset
    panel = full if off == 0 else DemandPanel(full.ids, full.dates[:-off], full.demand[:, :-off])
    warmup, lead = 28, 7
    n, days = panel.demand.shape
    start = days - args.test_days - warmup
    mu = panel.demand[:, max(start - 182, 0):start].mean(axis=1)
    masks = {"all": np.ones(n, dtype=bool), "fast_ge8": mu >= 8, "slow_lt8": mu < 8}
    for spec in args.variants.split(";"):
        name, _, knobs = spec.partition("=")
        oracle = None
        if knobs.startswith("oracle:"):  # oracle:F[,knobs]
            head, _, knobs = knobs.partition(",")
            oracle = (panel, float(head.split(":")[1]))
        tuning = EngineTuning.from_text(knobs)
        for target in (float(x) for x in args.targets.split(",")):
            t0 = time.perf_counter()
            agent = ReplenishmentAgent(fill_rate=target, lead_time=lead, tuning=tuning)
            agent.engine = eng = Recording(oracle, lead_time=lead, fill_rate=target, tuning=tuning)
            stock = neutral_start(panel.demand[:, :start], lead, 1, target)
            sales = np.zeros((n, days))
            step = agent.handle
            ids = list(panel.ids)
            pos = {d.isoformat(): i for i, d in enumerate(panel.dates.date)}

            def spy(line, step=step, sales=sales):
                t = pos[line["date"]]
                for sku, q in line["sales"].items():
                    sales[idmap[sku], t] = q
                return step(line)

            idmap = {s: i for i, s in enumerate(ids)}
            ours = simulate_agent(panel, spy, lead_time=lead, start=start, warmup=warmup, on_hand=stock)
            res = {"scored": f"{panel.dates[start + warmup].date()}..{panel.dates[-1].date()}", "variant": name,
                   "tuning": knobs or "shipped defaults", "target": target, "fill": round(ours.fill_rate, 4),
                   "avg_on_hand_sim": round(ours.avg_on_hand, 1),
                   "mean_alpha": round(float(np.mean(eng.rec["alpha"][warmup:])), 4),
                   "parts": take_apart(panel, eng, sales, start, warmup, lead, masks)}
            if not args.no_ratio:
                eq = bisect_baseline_z(panel, ours.fill_rate, lead_time=lead, review_days=1, start=start,
                                       warmup=warmup, initial_on_hand=stock)
                res["ratio"] = round(ours.avg_on_hand / eq["avg_on_hand"], 4) if eq["matched"] else None
            res["seconds"] = round(time.perf_counter() - t0, 1)
            res["load"] = round(os.getloadavg()[0], 1)
            print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
