"""Capacity backtest benchmark: one configuration on every visible trace, with and without synthetic flash crowds.

Usage:
    PYTHONPATH=src python bench/capacity_backtest.py [--seeds 1,4,5,6] [--standin-seeds 100,101,102,103] \
        [--select-on nasa --select-on clarknet --select-on standin-episodes-100] [--nab]

Prints one JSON object. Rules as in `shopfloor capacity backtest`: per case C = ceil(peak minute / 20), lag 10
minutes, minutes missing from a trace are zero demand, the reactive HPA baseline is replayed in the same run.
Cases: NASA, ClarkNet, EPA, SDSC, and each with seeded synthetic flash crowds (shopfloor.forecast.flash_crowds),
announced as a calendar too (the "+calendar" columns), plus the stand-in for the unseen trace (episodes mix of
bench/capacity_standin.py, one row per ``--standin-seeds`` seed, named ``standin-episodes-<seed>``). Rows are
labelled in-sample (seen by the choice of the configuration) or out-of-sample. Yardsticks on the same cases:
``naive_yesterday`` (the same minutes yesterday, HPA floor) and ``seasonal_ratio_heuristic`` (the last hour's level
x the ratio of the same clock-minute yesterday to yesterday's same hour, HPA floor; the heuristic the capacity issue
quotes), without and with 20 % headroom; the heuristic without headroom is also in every row (``heuristic_*``, from
the protocol). ``replay_seconds_longest_trace`` times the predictive planner alone on the longest visible trace
(NASA, 89,280 minutes).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import deque
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from shopfloor.forecast.traffic import OnlineForecastConfig, read_request_trace  # noqa: E402
from shopfloor.planning.capacity import (  # noqa: E402
    HpaReactivePlanner,
    PredictiveConfig,
    PredictivePlanner,
    SeasonalRatioHeuristic,
    hpa_desired,
    simulate,
)
from shopfloor.planning.capacity_protocol import TraceCase, build_cases, default_capacity, run_protocol  # noqa: E402

DATA = Path("/work/shared/data")
TRACES = [
    ("nasa", DATA / "nasa_http_1995/nasa_requests_per_minute.csv", "Etc/GMT+4"),
    ("clarknet", DATA / "traffic_traces/clarknet/clarknet_1995-08-28_1995-09-10_per_minute.csv", "Etc/GMT+4"),
    ("epa", DATA / "traffic_traces/epa/epa_1995-08-29_30_per_minute.csv", "Etc/GMT+4"),
    ("sdsc", DATA / "traffic_traces/sdsc/sdsc_1995-08-22_per_minute.csv", "Etc/GMT+7"),
]


class NaiveYesterdayPlanner:
    """Needs for the next ``lag`` minutes = the same minutes yesterday; HPA floor; 5-minute scale-in window."""

    def __init__(self, capacity: float, lag: int) -> None:
        self.capacity, self.lag = capacity, lag
        self.history: list[float] = []
        self.targets: deque[int] = deque(maxlen=5)

    def observe(self, demand: float) -> None:
        self.history.append(demand)

    def target(self, minute: int, requested: int, ready: int) -> int:
        if not self.history:
            return requested
        floor = hpa_desired(self.history[-1], ready, self.capacity, Fraction(7, 10))
        lo, hi = minute - 1440, minute - 1440 + self.lag + 1
        past = self.history[max(lo, 0) : max(hi, 0)]
        need = math.ceil(max(past) / self.capacity) if past else 0
        raw = max(floor, need, 1)
        self.targets.append(raw)
        return raw if raw >= requested else min(requested, max(self.targets))


NAB = DATA / "nab_real/data"
TWEETS = ("AAPL", "AMZN", "CRM", "CVS", "FB", "GOOG", "IBM", "KO", "PFE", "UPS")
NAB_TRACES = [f"realTweets/Twitter_volume_{t}.csv" for t in TWEETS] + [
    "realAWSCloudwatch/elb_request_count_8c0756.csv"
]


def nab_minutes(path: Path, seed: int = 0) -> np.ndarray:
    """A NAB 5-minute count series spread over its minutes (seeded multinomial split, totals kept)."""
    import pandas as pd

    d = pd.read_csv(path, parse_dates=["timestamp"]).set_index("timestamp")["value"].resample("5min").sum()
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.multinomial(int(v), [0.2] * 5) for v in d.to_numpy()]).astype(float)


def yardsticks(values: np.ndarray, capacity: float, lag: int) -> dict:
    base = simulate(values, HpaReactivePlanner(capacity), capacity=capacity, lag=lag)
    out = {}
    for name, planner in (
        ("naive_yesterday", NaiveYesterdayPlanner(capacity, lag)),
        ("seasonal_ratio_heuristic", SeasonalRatioHeuristic(capacity, lag)),
        ("seasonal_ratio_heuristic_20pct_headroom", SeasonalRatioHeuristic(capacity, lag, headroom=1.2)),
    ):
        sim = simulate(values, planner, capacity=capacity, lag=lag)
        out[name] = {
            "violation_ratio": round(sim.violation_minutes / max(base.violation_minutes, 1), 4),
            "replica_minutes_ratio": round(sim.replica_minutes / base.replica_minutes, 4),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1,2,3", help="flash-crowd seeds (comma-separated)")
    ap.add_argument("--select-on", action="append", default=[], help="choose the configuration on these traces")
    ap.add_argument("--lag-minutes", type=int, default=10, help="minutes from a scale decision to ready replicas (L)")
    ap.add_argument("--standin-seeds", default="100,101,102,103",
                    help="stand-in traces (bench/capacity_standin.py, episodes mix) to add as rows; '' for none")
    ap.add_argument("--no-yardsticks", action="store_true",
                    help="skip the naive and heuristic yardsticks (they do not depend on the planner)")
    ap.add_argument("--nab", action="store_true", help="also run NAB tweet-volume and ELB request-count series")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    loaded = []
    for name, path, tz in TRACES:
        series = read_request_trace(path, tz=tz)
        loaded.append((name, series.to_numpy(dtype=float), series.index[0].to_pydatetime()))
    cases = build_cases(loaded, crowd_seeds=seeds, crowd_calendar=True)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from capacity_standin import standin_trace

    for seed in [int(s) for s in args.standin_seeds.split(",") if s.strip()]:
        _, inj = standin_trace(loaded[0][1], seed, "episodes")
        name = f"standin-episodes-{seed}"
        start = datetime(2024, 1, 1, tzinfo=timezone.utc)
        cases.append(TraceCase(name=name, trace=name, values=inj.values, start=start, crowd_mask=inj.mask,
                               crowds=len(inj.crowds)))
    result = run_protocol(cases, lag=args.lag_minutes, select_on=args.select_on)
    if not args.no_yardsticks:
        for case, row in zip(cases, result["rows"]):
            row["yardsticks"] = yardsticks(case.values, default_capacity(case.values), args.lag_minutes)
    longest = max(loaded, key=lambda t: len(t[1]))
    values = longest[1]
    c = default_capacity(values)
    chosen = dict(result["predictive_config"])
    cfg = PredictiveConfig(**{**chosen, "forecast": OnlineForecastConfig(**chosen["forecast"])})
    t0 = time.perf_counter()
    simulate(values, PredictivePlanner(c, args.lag_minutes, cfg), capacity=c, lag=args.lag_minutes)
    result["replay_seconds_longest_trace"] = {"trace": longest[0], "minutes": len(values),
                                              "seconds": round(time.perf_counter() - t0, 2)}
    if args.nab:
        nab = {}
        for rel in NAB_TRACES:
            v = nab_minutes(NAB / rel)
            cap = default_capacity(v)
            base = simulate(v, HpaReactivePlanner(cap), capacity=cap, lag=args.lag_minutes)
            pred = simulate(v, PredictivePlanner(cap, args.lag_minutes, cfg), capacity=cap, lag=args.lag_minutes)
            nab[rel.split("/")[-1]] = {
                "capacity_per_replica": cap,
                "violation_ratio": round(pred.violation_minutes / max(base.violation_minutes, 1), 4),
                "replica_minutes_ratio": round(pred.replica_minutes / base.replica_minutes, 4),
            }
        result["nab_5min_series_spread_to_minutes"] = nab
    print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
