"""Capacity backtest benchmark: predictive planner vs the reactive HPA baseline (and a naive seasonal planner).

Usage:
    PYTHONPATH=src python bench/capacity_backtest.py [--trace PATH] [--tz Etc/GMT+4] [--crowds]

Prints one JSON object. Rules as in `shopfloor capacity backtest`: C = ceil(peak minute / 20) unless given,
lag 10 minutes, minutes missing from the trace are zero demand. ``naive_yesterday`` plans from the same minutes
of the previous day (plus the same HPA floor and scale-in rule), the yardstick the issue quotes. ``--crowds`` adds
a robustness check: the same trace with 15 synthetic flash crowds injected (step, ramp, spike-and-decay shapes),
reporting violation minutes inside the crowds as well as over the whole trace.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import deque
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from shopfloor.forecast.traffic import read_request_trace  # noqa: E402
from shopfloor.planning.capacity import (  # noqa: E402
    HpaReactivePlanner,
    PredictiveConfig,
    PredictivePlanner,
    hpa_desired,
    simulate,
)

NASA = "/work/shared/data/nasa_http_1995/nasa_requests_per_minute.csv"


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


def inject_crowds(values: np.ndarray, seed: int = 1, n: int = 15) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = values.copy()
    mask = np.zeros(len(values), dtype=bool)
    for i in range(n):
        start = int(rng.integers(10 * 1440, len(values) - 300))
        m = rng.uniform(3, 8)
        kind = i % 3
        if kind == 0:  # step up, hold, fall
            prof = np.concatenate([np.full(int(rng.integers(30, 90)), m), np.linspace(m, 1, 10)])
        elif kind == 1:  # 11-minute ramp, hold, fall
            prof = np.concatenate([np.linspace(1, m, 12)[1:], np.full(int(rng.integers(30, 90)), m), np.linspace(m, 1, 20)])
        else:  # spike, exponential decay
            prof = 1 + (2 * m - 1) * np.exp(-np.arange(60) / 15)
        out[start : start + len(prof)] = np.round(out[start : start + len(prof)] * prof)
        mask[start : start + len(prof) + 15] = True
    return out, mask


NAB = "/work/shared/data/nab_real/data"
NAB_TRACES = [f"realTweets/Twitter_volume_{t}.csv" for t in ("AAPL", "AMZN", "CRM", "CVS", "FB", "GOOG", "IBM", "KO", "PFE", "UPS")] + [
    "realAWSCloudwatch/elb_request_count_8c0756.csv"
]


def nab_minutes(path: str, seed: int = 0) -> np.ndarray:
    """A NAB 5-minute count series spread over its minutes (seeded multinomial split, totals kept)."""
    import pandas as pd

    d = pd.read_csv(path, parse_dates=["timestamp"]).set_index("timestamp")["value"].resample("5min").sum()
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.multinomial(int(v), [0.2] * 5) for v in d.to_numpy()]).astype(float)


def run(values: np.ndarray, capacity: float, lag: int, mask: np.ndarray | None = None) -> dict:
    res = {}
    for name, planner in (
        ("reactive", HpaReactivePlanner(capacity)),
        ("predictive", PredictivePlanner(capacity, lag, PredictiveConfig())),
        ("naive_yesterday", NaiveYesterdayPlanner(capacity, lag)),
    ):
        t0 = time.perf_counter()
        sim = simulate(values, planner, capacity=capacity, lag=lag)
        res[name] = dict(sim.summary(), seconds=round(time.perf_counter() - t0, 2))
        if mask is not None:
            res[name]["violation_minutes_in_crowds"] = int(((values > capacity * sim.ready) & mask).sum())
    base = res["reactive"]
    for name in ("predictive", "naive_yesterday"):
        r = res[name]
        r["violation_ratio_vs_reactive"] = round(r["violation_minutes"] / base["violation_minutes"], 4)
        r["replica_minutes_ratio_vs_reactive"] = round(r["replica_minutes"] / base["replica_minutes"], 4)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", default=NASA)
    ap.add_argument("--tz", default="Etc/GMT+4", help="zone of naive timestamps (NASA logs are UTC-4)")
    ap.add_argument("--capacity-per-replica", type=float, default=None)
    ap.add_argument("--lag-minutes", type=int, default=10)
    ap.add_argument("--crowds", action="store_true")
    ap.add_argument("--nab", action="store_true", help="also run NAB tweet-volume and ELB request-count series")
    args = ap.parse_args()
    series = read_request_trace(args.trace, tz=args.tz)
    values = series.to_numpy(dtype=float)
    capacity = args.capacity_per_replica or float(math.ceil(values.max() / 20))
    out = {
        "trace": args.trace,
        "minutes": len(values),
        "peak_minute": float(values.max()),
        "capacity_per_replica": capacity,
        "lag_minutes": args.lag_minutes,
        "targets": {"violation_ratio_max": 0.25, "replica_minutes_ratio_max": 1.10},
        "results": run(values, capacity, args.lag_minutes),
    }
    p = out["results"]["predictive"]
    out["meets_target"] = p["violation_ratio_vs_reactive"] <= 0.25 and p["replica_minutes_ratio_vs_reactive"] <= 1.10
    if args.crowds:
        crowded, mask = inject_crowds(values)
        out["with_synthetic_flash_crowds"] = run(crowded, capacity, args.lag_minutes, mask)
    if args.nab:
        nab = {}
        for rel in NAB_TRACES:
            v = nab_minutes(f"{NAB}/{rel}")
            c = float(math.ceil(v.max() / 20))
            res = run(v, c, args.lag_minutes)
            nab[rel.split("/")[-1]] = {
                "minutes": len(v),
                "capacity_per_replica": c,
                "reactive": res["reactive"],
                "predictive": res["predictive"],
            }
        out["nab_5min_series_spread_to_minutes"] = nab
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
