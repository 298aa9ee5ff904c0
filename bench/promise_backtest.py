"""Olist promise backtest at several confidence levels, plus the calibration plot.

Runs the same forward replay as ``shopfloor promise backtest`` at 0.80 / 0.90 / 0.95 and at the confidence whose
on-time rate matches the dataset's own estimate, and writes docs/img/promise_calibration.png. Prints JSON.

    PYTHONPATH=src python bench/promise_backtest.py --data /work/shared/data/olist --score-from 2017-07-01
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from pathlib import Path

from shopfloor.promise.backtest import load_olist, replay
from shopfloor.promise.calibration_plot import plot_calibration


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/olist"))
    ap.add_argument("--score-from", default="2017-07-01")
    ap.add_argument("--plot", type=Path, default=Path("docs/img/promise_calibration.png"))
    ap.add_argument("--levels", default="0.8,0.9,0.95,0.96,0.965,0.97")
    args = ap.parse_args()
    d = args.data
    orders = load_olist(d / "sample2017_olist_orders.csv", d / "sample2017_olist_order_items.csv",
                        d / "sample2017_olist_customers.csv", d / "olist_sellers_dataset.csv")
    start = datetime.fromisoformat(args.score_from).replace(tzinfo=timezone.utc)
    runs = {}
    rows = {}
    for conf in [float(x) for x in args.levels.split(",")]:
        t = time.perf_counter()
        res = replay(orders, confidence=conf, score_from=start)
        runs[f"{conf:g}"] = dict(res.summary, seconds=round(time.perf_counter() - t, 1))
        rows[conf] = res.rows
    ref = next(iter(runs.values()))["reference"]
    # Sharpness: the level whose on-time rate is closest to the reference's, and the mean promised days linearly
    # interpolated between the two runs whose on-time rates bracket the reference's.
    matched = min(runs.items(), key=lambda kv: abs(kv[1]["on_time_rate"] - ref["on_time_rate"]))
    pts = sorted((v["on_time_rate"], v["mean_promised_days"]) for v in runs.values())
    interp = None
    for (r0, d0), (r1, d1) in zip(pts, pts[1:]):
        if r0 <= ref["on_time_rate"] <= r1 and r1 > r0:
            interp = round(d0 + (ref["on_time_rate"] - r0) / (r1 - r0) * (d1 - d0), 2)
    plot_calibration(rows[0.9], args.plot, 0.9, extra={c: rows[c] for c in (0.8, 0.95) if c in rows})
    out = {
        "benchmark": "promise_backtest",
        "score_from": args.score_from,
        "runs": runs,
        "reference": ref,
        "calibration_gap_points": {k: round(100 * (v["on_time_rate"] - float(k)), 2) for k, v in runs.items()},
        "sharpness": {
            "matched_confidence": matched[0],
            "on_time_rate": matched[1]["on_time_rate"],
            "mean_promised_days": matched[1]["mean_promised_days"],
            "reference_mean_promised_days": ref["mean_promised_days"],
            "ratio_vs_reference": round(matched[1]["mean_promised_days"] / ref["mean_promised_days"], 3),
            "interpolated_days_at_reference_on_time_rate": interp,
            "interpolated_ratio_vs_reference": round(interp / ref["mean_promised_days"], 3) if interp else None,
        },
        "p50_mae_ratio_vs_reference": round(runs["0.9"]["p50_eta_mae_days"] / ref["p50_eta_mae_days"], 3),
        "plot": str(args.plot),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
