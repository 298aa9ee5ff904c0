"""Traffic forecast accuracy at 5-minute grain: statsforecast MSTL vs the online seasonal model vs seasonal naive.

Usage:
    PYTHONPATH=src python bench/traffic_forecast_accuracy.py [--trace PATH] [--origins 16] [--horizon 12]

For each origin (every 31 hours through the last three weeks of the trace, so origins cover every time of day),
every model sees only the data before the origin: MSTL (daily 288 + weekly 2016 seasonality, AutoETS trend) is
fitted on the previous 15 days of 5-minute sums; the online model replays the same minutes one at a time; the
seasonal naive repeats the same 5 minutes of the previous day. Reports MAE per model over the next ``horizon``
5-minute buckets, the ratio to MSTL, the coverage of MSTL's q_0.9, and seconds spent per model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from shopfloor.forecast.traffic import (  # noqa: E402
    OnlineTrafficForecaster,
    aggregate_frame,
    forecast_traffic_mstl,
    read_request_trace,
    to_long_frame,
)

NASA = "/work/shared/data/nasa_http_1995/nasa_requests_per_minute.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", default=NASA)
    ap.add_argument("--tz", default="Etc/GMT+4")
    ap.add_argument("--origins", type=int, default=16)
    ap.add_argument("--horizon", type=int, default=12, help="5-minute buckets ahead (12 = one hour)")
    args = ap.parse_args()
    series = read_request_trace(args.trace, tz=args.tz)
    values = series.to_numpy(dtype=float)
    n = len(values)
    first = n - 21 * 1440
    origins = [first + i * 31 * 60 for i in range(args.origins) if first + i * 31 * 60 + args.horizon * 5 <= n]
    err = {"MSTL": [], "OnlineSeasonal": [], "SeasonalNaive": []}
    covered = total = 0
    secs = {k: 0.0 for k in err}
    for o in origins:
        truth = values[o : o + args.horizon * 5].reshape(-1, 5).sum(axis=1)
        hist = series.iloc[o - 15 * 1440 : o]
        t0 = time.perf_counter()
        five = aggregate_frame(to_long_frame(hist), "5min")
        fc = forecast_traffic_mstl(five, horizon=args.horizon, freq="5min", quantiles=(0.9,))
        secs["MSTL"] += time.perf_counter() - t0
        err["MSTL"].append(np.abs(fc["MSTL"].to_numpy() - truth))
        covered += int((truth <= fc["q_0.9"].to_numpy()).sum())
        total += len(truth)
        t0 = time.perf_counter()
        model = OnlineTrafficForecaster()
        for i, v in enumerate(values[o - 15 * 1440 : o]):
            model.observe(v)
        online = model.forecast(args.horizon * 5).mean.reshape(-1, 5).sum(axis=1)
        secs["OnlineSeasonal"] += time.perf_counter() - t0
        err["OnlineSeasonal"].append(np.abs(online - truth))
        naive = values[o - 1440 : o - 1440 + args.horizon * 5].reshape(-1, 5).sum(axis=1)
        err["SeasonalNaive"].append(np.abs(naive - truth))
    mae = {k: float(np.mean(np.concatenate(v))) for k, v in err.items()}
    out = {
        "trace": args.trace,
        "origins": len(origins),
        "horizon_5min_buckets": args.horizon,
        "mae_requests_per_5min": {k: round(v, 2) for k, v in mae.items()},
        "mae_ratio_vs_mstl": {k: round(v / mae["MSTL"], 3) for k, v in mae.items()},
        "mstl_q0.9_coverage": round(covered / total, 3),
        "seconds": {k: round(v, 2) for k, v in secs.items()},
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
