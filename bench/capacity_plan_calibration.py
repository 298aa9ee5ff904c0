"""Live-plan calibration: how often would the planned replicas have been short, and at what size.

Usage:
    PYTHONPATH=src python bench/capacity_plan_calibration.py [--trace PATH] [--origins 24]

For each origin (every 17 hours from 1995-08-06, so all times of day), ``plan_capacity`` plans 3 hours of 15-minute
slots from the data before the origin (C = 21 requests/minute per replica, as in the backtest). Reports the share
of the following minutes whose demand exceeded C x the slot's replicas, and the mean replicas, for the
horizon-widened band (the default) and for the forecaster's short-horizon band alone (the baseline).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import shopfloor.planning.capacity as cap  # noqa: E402
from shopfloor.forecast.traffic import read_request_trace  # noqa: E402

NASA = "/work/shared/data/nasa_http_1995/nasa_requests_per_minute.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", default=NASA)
    ap.add_argument("--tz", default="Etc/GMT+4")
    ap.add_argument("--origins", type=int, default=24)
    ap.add_argument("--capacity-per-replica", type=float, default=21.0)
    args = ap.parse_args()
    series = read_request_trace(args.trace, tz=args.tz)
    c = args.capacity_per_replica
    widened = cap._horizon_aware_upper
    out = {"trace": args.trace, "origins": args.origins, "capacity_per_replica": c}
    for mode in ("horizon_widened", "short_horizon_band"):
        cap._horizon_aware_upper = widened if mode == "horizon_widened" else (lambda fc, *a: fc.upper.copy())
        short, reps = [], []
        for j in range(args.origins):
            now = datetime(1995, 8, 6, tzinfo=timezone.utc) + timedelta(minutes=j * 17 * 60 + 7)
            plan = cap.plan_capacity(series, cap.CapacityPolicy(capacity_per_minute=c, min_replicas=1), now=now)
            actual = series[now : now + pd.Timedelta(minutes=179)].to_numpy()
            for k, slot in enumerate(plan.slots):
                seg = actual[k * 15 : (k + 1) * 15]
                short.extend((seg > c * slot.replicas).tolist())
                reps.append(slot.replicas)
        out[mode] = {"short_minute_share": round(float(np.mean(short)), 4), "mean_replicas": round(float(np.mean(reps)), 2)}
    cap._horizon_aware_upper = widened
    b = out["short_horizon_band"]
    out["replicas_ratio_widened_vs_short_band"] = round(out["horizon_widened"]["mean_replicas"] / b["mean_replicas"], 3)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
