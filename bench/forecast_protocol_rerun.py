"""Select the default on origins before a date, then report it on the later origins, with point baselines only.

The same selection and report as ``shopfloor forecast backtest --select-before DATE`` (the functions behind it),
for machines too busy to refit AutoETS on every reporting origin: the report fits SeasonalNaive(7) in the same run
and takes AutoETS's figures per origin and segment (its point wRMSSE and its conformal wSPL) from an earlier
report of the same protocol on the same data (``--ets-from``). AutoETS is deterministic, so those figures are what
a refit would give; as a check that data and scoring are the same, this run's SeasonalNaive wRMSSE must equal the
earlier report's on every origin-segment (and members the earlier report also scored are compared with it too).

    NIXTLA_NUMBA_CACHE=1 OMP_WAIT_POLICY=PASSIVE PYTHONPATH=src nice -n 5 python bench/forecast_protocol_rerun.py \\
        --history /tmp/fc/m5_long.parquet --select-before 2014-07-01 --cache-dir /tmp/fc/cache \\
        --candidate lgbm_rel+ets_nt --ets-from docs/benchmarks/forecast_protocol_m5_v2_report.json \\
        --write-defaults /tmp/fc/selection.json --out /tmp/fc/rerun.json

Prints JSON: the selection (in-sample) and, per reporting origin and segment (out-of-sample), the scores of the
selected default and the extra models against SeasonalNaive (this run) and AutoETS (the earlier report).
``--select-only`` stops after the selection; ``--selection-from FILE`` reports a selection written earlier.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from shopfloor.forecast.demand import ForecastConfig, load_default_selection  # noqa: E402
from shopfloor.forecast.frames import validate_history  # noqa: E402
from shopfloor.forecast.protocol import (  # noqa: E402
    ProtocolSpec,
    SelectionGrid,
    check_reportable,
    protocol_origins,
    report,
    select_default,
)


def compare(rows: list[dict], earlier: dict, labels: list[str]) -> dict:
    """Join AutoETS's figures from ``earlier`` onto ``rows``; check SeasonalNaive (and shared labels) match."""
    old = {(r["cutoff"], r["days"]): r["scores"] for r in earlier["rows"]}
    checks: dict[str, float] = {}
    table = []
    for row in rows:
        prev = old[(row["cutoff"], row["days"])]
        ets = prev["baseline:ets"]
        sn_now, sn_then = row["scores"]["baseline:snaive"]["wrmsse"], prev["baseline:snaive"]["wrmsse"]
        checks[f"{row['cutoff']} {row['days']} snaive"] = abs(sn_now - sn_then)
        for label in labels:
            if label in prev and label != "selected":
                checks[f"{row['cutoff']} {row['days']} {label}"] = abs(row["scores"][label]["wrmsse"]
                                                                        - prev[label]["wrmsse"])
        out = {"cutoff": row["cutoff"], "days": row["days"], "ets_wrmsse": ets["wrmsse"],
               "ets_conformal_wspl": ets["wspl"], "snaive_wrmsse": sn_now}
        for label in labels:
            s = row["scores"][label]
            out[label] = {"wrmsse": s["wrmsse"], "vs_ets_pct": 100.0 * (s["wrmsse"] / ets["wrmsse"] - 1.0),
                          "wspl": s["wspl"], "wspl_vs_conformal_ets_pct": 100.0 * (s["wspl"] / ets["wspl"] - 1.0),
                          "coverage_95": s["coverage_95"]}
        table.append(out)
    summary = {}
    for days in sorted({r["days"] for r in table}):
        seg = [r for r in table if r["days"] == days]
        ets_mean = float(np.mean([r["ets_wrmsse"] for r in seg]))
        ets_spl = float(np.mean([r["ets_conformal_wspl"] for r in seg]))
        summary[days] = {"ets_wrmsse": ets_mean, "ets_conformal_wspl": ets_spl,
                         "snaive_wrmsse": float(np.mean([r["snaive_wrmsse"] for r in seg]))}
        for label in labels:
            w = float(np.mean([r[label]["wrmsse"] for r in seg]))
            spl = float(np.mean([r[label]["wspl"] for r in seg]))
            cov = [r[label]["coverage_95"] for r in seg]
            worst = max(r[label]["vs_ets_pct"] for r in seg)
            below = 100.0 * (1.0 - w / ets_mean)
            spl_below = 100.0 * (1.0 - spl / ets_spl)
            summary[days][label] = {
                "wrmsse": w, "wrmsse_pct_below_ets": below, "worst_origin_pct_vs_ets": worst, "wspl": spl,
                "wspl_pct_below_conformal_ets": spl_below, "coverage_95": float(np.mean(cov)),
                "coverage_95_min": float(min(cov)), "coverage_95_max": float(max(cov)),
                "met": {"wrmsse_5pct_below_ets": below >= 5.0, "no_origin_1pct_worse": worst <= 1.0,
                        "wspl_10pct_below_ets": spl_below >= 10.0,
                        "coverage_95_in_92_98": 92.0 <= float(np.mean(cov)) <= 98.0,
                        "every_origin_coverage_in_92_98": all(92.0 <= c <= 98.0 for c in cov)}}
    return {"table": table, "summary": summary,
            "max_abs_diff_vs_earlier_report": float(max(checks.values())) if checks else None,
            "checks": checks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history", type=Path, required=True)
    parser.add_argument("--select-before", required=True)
    parser.add_argument("--cache-dir", type=Path, required=True)
    parser.add_argument("--candidate", action="append", default=[], help="candidate ensemble (repeatable)")
    parser.add_argument("--model", action="append", default=[],
                        help="extra model spec reported with the packaged defaults' settings (repeatable)")
    parser.add_argument("--ets-from", type=Path, required=True, help="earlier protocol report JSON (AutoETS)")
    parser.add_argument("--write-defaults", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--select-only", action="store_true", help="stop after the selection")
    parser.add_argument("--report-cutoffs", default=None,
                        help="comma-separated subset of the reporting origins to score (default: all of them)")
    parser.add_argument("--week-scales", default=None,
                        help="comma-separated NB dispersion scales: also choose a per-week dispersion from them "
                             "(SelectionGrid.week_scales)")
    parser.add_argument("--selection-from", type=Path, default=None,
                        help="report this selection file (written by --write-defaults) instead of selecting again")
    args = parser.parse_args()

    t0 = time.perf_counter()
    hist = validate_history(pd.read_parquet(args.history))
    spec = ProtocolSpec(select_before=pd.Timestamp(args.select_before), baseline_intervals="point")
    selection_cuts, reporting_cuts = protocol_origins(hist, spec)
    if args.selection_from is not None:
        selection = load_default_selection(args.selection_from)
        check_reportable(selection, spec.select_before)
    else:
        weeks = tuple(float(x) for x in args.week_scales.split(",")) if args.week_scales else None
        grid = SelectionGrid(candidates=tuple(args.candidate), week_scales=weeks)
        selection, _ = select_default(hist, spec, grid, cutoffs=selection_cuts, cache_dir=args.cache_dir,
                                      n_jobs=args.jobs)
    if args.write_defaults is not None:
        args.write_defaults.write_text(json.dumps(selection.to_json(), indent=2) + "\n")
    if args.select_only:
        print(json.dumps(selection.to_json(), indent=2))
        return
    base = ForecastConfig()
    labelled = {"selected": (selection.model, replace(base, dispersion=selection.dispersion_config(base.dispersion)))}
    for extra in args.model:
        labelled[extra] = (extra, base)
    if args.report_cutoffs:
        wanted = {pd.Timestamp(c) for c in args.report_cutoffs.split(",")}
        unknown = wanted - set(reporting_cuts)
        if unknown:
            parser.error(f"--report-cutoffs: not reporting origins: {sorted(str(c.date()) for c in unknown)}")
        reporting_cuts = sorted(wanted)
    rep = report(hist, spec, labelled, cutoffs=reporting_cuts, cache_dir=args.cache_dir, n_jobs=args.jobs)
    earlier = json.loads(args.ets_from.read_text())
    earlier = earlier.get("report", earlier)
    result = {"benchmark": "forecast_protocol_rerun", "select_before": args.select_before,
              "selection": selection.to_json(),
              "packaged_defaults_for_extras": {"model": load_default_selection().model,
                                               "dispersion_scale": base.dispersion.scale,
                                               "dispersion_growth": base.dispersion.growth},
              "ets_from": str(args.ets_from), "report_cutoffs": rep["cutoffs"],
              "out_of_sample": compare(rep["rows"], earlier, list(labelled)),
              "rows": rep["rows"], "wall_s": round(time.perf_counter() - t0, 1),
              "load_avg_1m_at_end": round(os.getloadavg()[0], 2)}
    text = json.dumps(result, indent=2)
    if args.out is not None:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
