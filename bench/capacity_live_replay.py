"""The live planner as a cluster would follow it, against the continuous backtest and the reactive HPA.

Usage:
    PYTHONPATH=src python bench/capacity_live_replay.py [--seeds 1,4,5,6] [--traces nasa,clarknet,epa,sdsc]

``capacity backtest`` replays :class:`PredictivePlanner` once over a whole trace. A cluster follows
``GET /v1/plans/capacity/desired`` instead (:class:`shopfloor.planning.capacity_live.LivePlanner`): every minute it
asks the live planner, which replays from its anchor (``history_days`` = 8 before the start of the current UTC day,
or the trace's first minute if later) and so starts afresh each UTC midnight. This benchmark calls the live planner
at every minute of each trace, exactly as the server does (``decide_grid`` on the minutes from the anchor; no
minute left unsettled, the trace being complete), drives a replica set with its answers (boot lag L = 10), and
scores it by the backtest's rules (C = ceil(peak / 20), minutes missing from a trace are zero demand, one ready
replica at the start). Same run: the reactive HPA and the continuous backtest on the same case. Prints JSON.

Nothing is chosen here: the planner's configuration is the shipped default, and every row is a report of the live
form (in-sample or out-of-sample as in docs/benchmarks/capacity.md: NASA, ClarkNet and crowd seed 1 took part in
choosing the configuration).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from shopfloor.forecast.traffic import read_request_trace, to_minute_grid  # noqa: E402
from shopfloor.planning.capacity import (  # noqa: E402
    CapacityPolicy,
    HpaReactivePlanner,
    PredictivePlanner,
    ReplicaSet,
    simulate,
)
from shopfloor.planning.capacity_live import LivePlanner  # noqa: E402
from shopfloor.planning.capacity_protocol import build_cases, default_capacity  # noqa: E402

DATA = Path("/work/shared/data")
TRACES = {
    "nasa": (DATA / "nasa_http_1995/nasa_requests_per_minute.csv", "Etc/GMT+4"),
    "clarknet": (DATA / "traffic_traces/clarknet/clarknet_1995-08-28_1995-09-10_per_minute.csv", "Etc/GMT+4"),
    "epa": (DATA / "traffic_traces/epa/epa_1995-08-29_30_per_minute.csv", "Etc/GMT+4"),
    "sdsc": (DATA / "traffic_traces/sdsc/sdsc_1995-08-22_per_minute.csv", "Etc/GMT+7"),
}
IN_SAMPLE = {"nasa", "clarknet", "nasa+crowds(seed=1)", "clarknet+crowds(seed=1)"}
LAG = 10


def live_run(values: np.ndarray, start, capacity: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-minute requested and ready replicas when a cluster follows the live planner; and its fresh replays."""
    policy = CapacityPolicy(capacity_per_minute=capacity, lag_minutes=LAG, min_replicas=1, max_replicas=10**9)
    live = LivePlanner(policy, history_days=8, settle_minutes=0)
    replicas = ReplicaSet(LAG, initial_ready=1)
    n = len(values)
    requested = np.zeros(n, dtype=np.int64)
    ready = np.zeros(n, dtype=np.int64)
    for t in range(n):
        now = start + timedelta(minutes=t)
        anchor = live.anchor_for(now, start)
        k = int((anchor - start).total_seconds() // 60)
        decision = live.decide_grid(anchor, values[k:t])
        replicas.scale_to(max(decision.desired_replicas, 1), t)
        requested[t] = len(replicas)
        ready[t] = replicas.ready(t)
    return requested, ready, live.rebuilds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="",
                    help="Flash-crowd seeds to inject (comma-separated), besides the real traces.")
    ap.add_argument("--traces", default="nasa,clarknet,epa,sdsc")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    traces = []
    for name in args.traces.split(","):
        path, tz = TRACES[name]
        grid = to_minute_grid(read_request_trace(path, tz=tz))
        traces.append((name, grid.to_numpy(dtype=float), grid.index[0].to_pydatetime()))
    rows = []
    for case in build_cases(traces, crowd_seeds=seeds):
        values, capacity = case.values, default_capacity(case.values)
        t0 = time.perf_counter()
        reactive = simulate(values, HpaReactivePlanner(capacity), capacity=capacity, lag=LAG)
        continuous = simulate(values, PredictivePlanner(capacity, LAG), capacity=capacity, lag=LAG)
        t1 = time.perf_counter()
        requested, ready, rebuilds = live_run(values, case.start, capacity)
        t2 = time.perf_counter()
        live_viol = int((values > capacity * ready).sum())
        live_cost = int(requested.sum())
        rv, rc = reactive.violation_minutes, reactive.replica_minutes
        row = {
            "case": case.name,
            "sample": "in-sample" if case.name in IN_SAMPLE else "out-of-sample",
            "minutes": len(values),
            "capacity": capacity,
            "reactive": {"violation_minutes": rv, "replica_minutes": rc},
            "continuous": {"violation_minutes": continuous.violation_minutes,
                           "replica_minutes": continuous.replica_minutes,
                           "violation_ratio": round(continuous.violation_minutes / rv, 3) if rv else None,
                           "replica_minutes_ratio": round(continuous.replica_minutes / rc, 3)},
            "live": {"violation_minutes": live_viol, "replica_minutes": live_cost,
                     "violation_ratio": round(live_viol / rv, 3) if rv else None,
                     "replica_minutes_ratio": round(live_cost / rc, 3),
                     "fresh_replays": rebuilds},
            "minutes_live_equals_continuous": round(float((requested == continuous.requested).mean()), 4),
            "seconds": {"continuous_and_reactive": round(t1 - t0, 1), "live": round(t2 - t1, 1)},
        }
        rows.append(row)
        print(json.dumps({"done": case.name, "live": row["live"], "continuous": row["continuous"]}), file=sys.stderr)
    print(json.dumps({"rows": rows}, indent=1))


if __name__ == "__main__":
    main()
