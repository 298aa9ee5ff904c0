"""Score `shopfloor restock agent` through its contract: a subprocess fed one JSON line per simulated day.

The lost-sales simulator (``simulate_agent``: receipts at the start of a day, unmet demand lost, orders at the end
of the day arriving L + 1 days later) writes each day's sales, stock at close and stock on order to the agent's
stdin and reads its orders from stdout, exactly as a store's ERP would. The baseline MA(28)*(L+R) + z*sigma*sqrt(L+R)
runs in the same process, with z bisected until its fill equals the agent's. Prints JSON: fill and average on-hand
per target, the baseline at equal fill, and the agent's seconds per simulated day.

``--scale-skus N`` instead times the agent on a synthetic N-SKU store (history + ``--scale-days`` days), the
per-day cost the agent contract has to meet for 30,490 SKUs.

    PYTHONPATH=src python bench/restock_agent.py [--history FILE] [--test-days 364] [--end-offset 0]
    PYTHONPATH=src python bench/restock_agent.py --scale-skus 30490 --scale-days 14
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from shopfloor.planning.restock_backtest import DemandPanel, load_demand_panel, neutral_start, run_restock_backtest, \
    simulate_agent

M5 = "/work/shared/data/m5_walmart/tiny_m5_long.csv.gz"
SRC = str(Path(__file__).resolve().parents[1] / "src")


class AgentProcess:
    """`shopfloor restock agent` as a child process: one line in, one line out."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen([sys.executable, "-m", "shopfloor", "restock", "agent", *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, bufsize=1)
        self.lines = 0
        self.seconds = 0.0
        self.per_line: list[float] = []

    def __call__(self, line: dict) -> dict:
        t0 = time.perf_counter()
        self.proc.stdin.write(json.dumps(line, separators=(",", ":")) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        self.seconds += time.perf_counter() - t0
        self.per_line.append(time.perf_counter() - t0)
        self.lines += 1
        if not answer:
            raise RuntimeError(f"agent exited (code {self.proc.poll()})")
        return json.loads(answer)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def score(args) -> dict:
    panel = load_demand_panel(args.history)
    if args.end_offset:
        panel = DemandPanel(panel.ids, panel.dates[: -args.end_offset], panel.demand[:, : -args.end_offset])
    procs: list[AgentProcess] = []

    def factory(target: float):
        p = AgentProcess("--fill-rate", str(target), "--lead-time", str(args.lead_time))
        procs.append(p)
        return p

    t0 = time.perf_counter()
    res = run_restock_backtest(panel, service_levels=tuple(float(x) for x in args.fill_rates.split(",")),
                               lead_time=args.lead_time, test_days=args.test_days, warmup_days=args.warmup_days,
                               agent_factory=factory)
    for p in procs:
        p.close()
    rows = []
    for t, p in zip(res["targets"], procs):
        eq = t["baseline_at_equal_fill"]
        rows.append({
            "target": t["target"], "fill": t["ours"]["fill_rate"], "fill_error_pts": t["fill_error_pts"],
            "avg_on_hand": t["ours"]["avg_on_hand"], "baseline_avg_on_hand_at_equal_fill": eq["avg_on_hand"],
            "baseline_z_at_equal_fill": eq["z"], "ratio": t["inventory_ratio_vs_baseline"],
            "reduction_pct": t["inventory_reduction_pct"],
            "agent_ms_per_day": round(1000 * p.seconds / max(p.lines, 1), 2),
        })
    return {"benchmark": "restock_agent_contract", "history": args.history, "data": res["data"],
            "lead_time_days": args.lead_time, "warmup_days": args.warmup_days, "baseline": res["baseline"],
            "targets": rows, "runtime_s": round(time.perf_counter() - t0, 1)}


def scale(args) -> dict:
    n, hist_days, days = args.scale_skus, 56, args.scale_days
    rng = np.random.default_rng(0)
    lam = rng.gamma(0.6, 2.0, size=(n, 1))
    demand = rng.poisson(np.repeat(lam, hist_days + days, axis=1)).astype(np.int64)
    ids = [f"SKU{i:05d}" for i in range(n)]
    panel = DemandPanel(ids, pd.date_range("2016-03-01", periods=hist_days + days), demand)
    agent = AgentProcess("--fill-rate", "0.95", "--lead-time", str(args.lead_time))
    t0 = time.perf_counter()
    simulate_agent(panel, agent, lead_time=args.lead_time, start=hist_days, warmup=0,
                   on_hand=neutral_start(demand[:, :hist_days], args.lead_time, 1, 0.95))
    agent.close()
    return {"benchmark": "restock_agent_scale", "skus": n, "history_days": hist_days, "simulated_days": days,
            "agent_seconds_total": round(agent.seconds, 2),
            "first_line_s": round(agent.per_line[0], 2),
            "day_line_s_median": round(float(np.median(agent.per_line[1:])), 3),
            "day_line_s_max": round(float(np.max(agent.per_line[1:])), 3),
            "note": "first line carries the history (replay + first quantile-level fit); later lines are one day each, "
                    "JSON encode + pipe + parse included",
            "wall_s": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--history", default=M5)
    ap.add_argument("--test-days", type=int, default=364)
    ap.add_argument("--warmup-days", type=int, default=28)
    ap.add_argument("--end-offset", type=int, default=0)
    ap.add_argument("--lead-time", type=int, default=7)
    ap.add_argument("--fill-rates", default="0.90,0.95,0.98")
    ap.add_argument("--scale-skus", type=int, default=0)
    ap.add_argument("--scale-days", type=int, default=14)
    args = ap.parse_args(argv)
    out = scale(args) if args.scale_skus else score(args)
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
