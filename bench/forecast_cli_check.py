"""The out-of-sample report's figures for one origin, reproduced through the command users and scorers run.

Cuts the history at ``--cutoff``, writes the future file a scorer would (each series' last known price, the
calendar flags as they are), runs ``shopfloor forecast --history ... --future ... --horizon H`` as a subprocess,
and scores its output with the protocol's scorer (``backtest.score_days``) on days 1-28 and 29-H. Prints JSON;
compare with the report's row for that cutoff (``docs/benchmarks/forecast_protocol_m5_v5_report.json``).

    NIXTLA_NUMBA_CACHE=1 python bench/forecast_cli_check.py --history /tmp/fc/m5_long.parquet --cutoff 2016-02-28
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from shopfloor.forecast import covariate_columns, validate_history  # noqa: E402
from shopfloor.forecast.backtest import origin_future, score_days  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--history", required=True, help="long frame (bench/prepare_m5.py)")
    ap.add_argument("--cutoff", required=True, help="last day of history the forecast sees (YYYY-MM-DD)")
    ap.add_argument("--horizon", type=int, default=56)
    ap.add_argument("--report", default="docs/benchmarks/forecast_protocol_m5_v5_report.json",
                    help="a protocol report whose 'selected' row for the cutoff is printed beside")
    args = ap.parse_args()
    cut, h = pd.Timestamp(args.cutoff), args.horizon
    hist = validate_history(pd.read_parquet(args.history) if args.history.endswith(".parquet")
                            else pd.read_csv(args.history, parse_dates=["ds"]))
    train = hist[hist["ds"] <= cut].reset_index(drop=True)
    actual = hist[(hist["ds"] > cut) & (hist["ds"] <= cut + pd.Timedelta(days=h))][["unique_id", "ds", "y"]]
    future = origin_future(hist, cut, h, covariate_columns(hist))
    with tempfile.TemporaryDirectory() as tmp:
        paths = {k: str(Path(tmp) / f"{k}.parquet") for k in ("train", "future", "forecast")}
        train.to_parquet(paths["train"], index=False)
        future.to_parquet(paths["future"], index=False)
        cli = [sys.executable, "-m", "shopfloor", "forecast", "--history", paths["train"], "--future",
               paths["future"], "--horizon", str(h), "--out", paths["forecast"], "--json"]
        t0 = time.time()
        subprocess.run(cli, check=True, stdout=subprocess.DEVNULL)
        wall = time.time() - t0
        fc = pd.read_parquet(paths["forecast"])
    out: dict = {"benchmark": "forecast_cli_check", "cutoff": str(cut.date()), "horizon": h,
                 "cli_wall_s": round(wall, 1), "cli": {}, "report": {}}
    segments = [(1, min(28, h))] + ([(29, h)] if h > 28 else [])
    report = json.loads(Path(args.report).read_text()) if Path(args.report).exists() else {"rows": []}
    for lo, hi in segments:
        s = score_days(fc, actual, train, cut, lo, hi)
        key = f"{lo}-{hi}"
        out["cli"][key] = {k: s.get(k) for k in ("wrmsse", "wspl", "coverage_95")}
        for row in report["rows"]:
            if row["cutoff"] == out["cutoff"] and row["days"] == key:
                sel = row["scores"]["selected"]
                out["report"][key] = {k: sel.get(k) for k in ("wrmsse", "wspl", "coverage_95")}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
