"""What a better demand forecast would buy the restock engine: an oracle-blend bound on the stock ratio.

The shipped agent runs the usual lost-sales simulation (sales-only, L = 7, daily review, 28-day warm-up), except
that its per-day forecast (``RestockEngine.daily_means``) is replaced by ``(1 - f) * own + f * actual``, where
``actual`` is the demand that will really happen on those days. Every error of the engine's forecasts shrinks by
the factor ``1 - f`` (its own error records, and so its spread, follow), so ``f`` maps a forecast-accuracy gain to
the stock ratio against the demand-fed MA(28) baseline at equal fill. ``f = 0`` is the shipped engine; ``f = 1``
knows the future. This is a measurement, not a policy: nothing here is shipped.

    PYTHONPATH=src python bench/restock_forecast_bound.py --end-offset 364 --blend 0,0.05,0.1   # M5 2014-15
"""

from __future__ import annotations

import argparse
import json
import sys
import time

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
from shopfloor.planning.restock_engine import RestockEngine



def oracle_engine(panel: DemandPanel, blend: float, days_part: str = "all", **kw) -> RestockEngine:
    demand = panel.demand.astype(float)
    n, days = demand.shape
    position = {d.date(): i for i, d in enumerate(panel.dates)}

    class Blended(RestockEngine):
        def daily_means(self, k, profile=None):
            own = super().daily_means(k, profile)
            t = position.get(self.day)
            if blend <= 0 or t is None or own.shape[0] != n:
                return own
            actual = own.copy()
            hi = min(t + 1 + k, days)
            actual[:, :hi - t - 1] = demand[:, t + 1:hi]
            out = (1 - blend) * own + blend * actual
            lead = self.lead_time
            if days_part == "lead":  # the days before an order placed today arrives
                out[:, lead:] = own[:, lead:]
            elif days_part == "review":  # the days from its arrival on
                out[:, :lead] = own[:, :lead]
            return out

    return Blended(**kw)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    window_arguments(ap)
    ap.add_argument("--blend", default="0,0.05,0.1", help="comma-separated f: share of the actual demand")
    ap.add_argument("--fill-rates", default="0.90,0.95,0.98")
    ap.add_argument("--days", choices=("all", "lead", "review"), default="all",
                    help="which forecast days get the blend: all L+R, the L days before today's order arrives "
                         "(lead), or the R days from its arrival on (review)")
    args = ap.parse_args(argv)
    full = load_demand_panel(args.history)
    off = args.end_offset
    panel = full if off == 0 else DemandPanel(full.ids, full.dates[:-off], full.demand[:, :-off])
    start = panel.demand.shape[1] - args.test_days - 28
    for f in (float(x) for x in args.blend.split(",")):
        for target in (float(x) for x in args.fill_rates.split(",")):
            t0 = time.perf_counter()
            agent = ReplenishmentAgent(fill_rate=target, lead_time=7)
            agent.engine = oracle_engine(panel, f, args.days, lead_time=7, fill_rate=target)
            stock = neutral_start(panel.demand[:, :start], 7, 1, target)
            ours = simulate_agent(panel, agent.handle, lead_time=7, start=start, warmup=28, on_hand=stock)
            eq = bisect_baseline_z(panel, ours.fill_rate, lead_time=7, review_days=1, start=start, warmup=28,
                                   initial_on_hand=stock)
            ratio = ours.avg_on_hand / eq["avg_on_hand"] if eq["matched"] else None
            print(json.dumps({"scored": f"{panel.dates[start + 28].date()}..{panel.dates[-1].date()}",
                              "blend": f, "days": args.days, "forecast_error_vs_engine": round(1 - f, 3), "target": target,
                              "fill": round(ours.fill_rate, 4), "ratio": ratio and round(float(ratio), 4),
                              "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
