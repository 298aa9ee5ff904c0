"""Capacity on a synthetic stand-in for the unseen trace the capacity issue describes.

Usage:
    PYTHONPATH=src python bench/capacity_standin.py [--seeds 101,102,103] [--mix episodes]

The unseen trace: per-minute requests over about 12 weeks, a strong daily cycle, quiet hours far below capacity,
sudden multi-fold surges lasting an hour or two; on it the issue's ten-line heuristic (last hour's level x the ratio
of the same clock-minute yesterday to yesterday's same hour) beat the previous planner (0.38x against 1.00x), so
its surges must often come back at about the same clock time on the next day. The stand-in: NASA's weekday /
weekend daily cycle (mean per clock minute, 31-minute smoothing) laid over 84 days with the quiet hours deepened
(profile squared) and a lognormal day-to-day factor, Poisson counts
(:func:`shopfloor.forecast.flash_crowds.stretched_daily_cycle`), plus flash crowds of x3-x10 lasting 60-120
minutes (:func:`inject_flash_crowds`) in three mixes: ``episodes`` (about one run a week of surges on 2-4
consecutive days at the same clock time +-3 minutes, plus 0.05 unannounced surges a day: the mix closest to the
unseen trace), ``slot`` (one daily slot at which a surge comes on 70 % of days, plus 0.5 irregular surges a day)
and ``irregular`` (1 irregular surge a day, none recurring). Seed 100 (episodes) is the one stand-in case the
configuration was chosen on (in-sample); seeds 101+ were never used for any choice. C = ceil(peak / 20), lag 10,
the default planner configuration and the same planner without the surge echo, the reactive HPA replayed on the
same trace; yardsticks: the issue's ten-line heuristic, without and with 20 % headroom.
``lost_minutes_per_onset``: violation-minutes in the first 20 minutes of each surge, by kind.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from capacity_backtest import TRACES, yardsticks  # noqa: E402
from shopfloor.forecast.flash_crowds import FlashCrowdSpec, inject_flash_crowds, stretched_daily_cycle  # noqa: E402
from shopfloor.forecast.traffic import read_request_trace  # noqa: E402
from shopfloor.planning.capacity import (  # noqa: E402
    HpaReactivePlanner,
    PredictiveConfig,
    PredictivePlanner,
    simulate,
)
from shopfloor.planning.capacity_protocol import CANDIDATES, default_capacity  # noqa: E402

#: The default before the burst memory, replayed next to the current one ("previous default" column).
PREVIOUS_DEFAULT = "relax0.85"

MIXES = {
    # Surges that come back at about the same clock time on 2-4 consecutive days (a multi-day promotion, a repeated
    # mailing), about one such run a week, plus a rare unannounced one: the mix closest to the unseen trace.
    "episodes": FlashCrowdSpec(
        duration_minutes=(60, 120), irregular_per_day=0.05, recurring_slots=0,
        episodes_per_week=1.0, episode_days=(2, 4), episode_jitter_minutes=3,
    ),
    "slot": FlashCrowdSpec(duration_minutes=(60, 120), irregular_per_day=0.5, recurring_slots=1),
    "irregular": FlashCrowdSpec(duration_minutes=(60, 120), irregular_per_day=1.0, recurring_slots=0),
}


def standin_trace(nasa: np.ndarray, seed: int, mix: str = "episodes", days: int = 84, quiet_power: float = 2.0):
    """The stand-in for ``seed`` and ``mix``: NASA's daily cycle stretched over ``days`` days, crowds injected."""
    # NASA's first day (1995-07-01) is a Saturday: weekend positions 0 and 1.
    base = stretched_daily_cycle(nasa, days=days, seed=seed, quiet_power=quiet_power, weekend=(0, 1))
    return base, inject_flash_crowds(base, seed=seed, spec=MIXES[mix])


def onset_losses(violations: np.ndarray, crowds, kind: str, window: int = 20) -> float | None:
    starts = [c.start for c in crowds if c.kind == kind]
    if not starts:
        return None
    return round(float(np.mean([violations[s : s + window].sum() for s in starts])), 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="101,102,103", help="100 is the selection seed; 101+ are for reporting")
    ap.add_argument("--days", type=int, default=84)
    ap.add_argument("--lag-minutes", type=int, default=10)
    ap.add_argument("--quiet-power", type=float, default=2.0, help="deepen the quiet hours (profile ** power)")
    ap.add_argument("--mix", action="append", choices=sorted(MIXES), help="crowd mixes to run (default: all)")
    ap.add_argument("--episode-jitter", type=int, default=None,
                    help="minutes either side of an episode's clock time its surges start at, day to day "
                         "(default: the episodes mix's 3)")
    ap.add_argument("--episode-days", default=None,
                    help="MIN,MAX consecutive days an episode's surges come back on (default: the episodes mix's 2,4)")
    ap.add_argument("--no-yardsticks", action="store_true",
                    help="skip the naive and heuristic yardsticks (they do not depend on the planner)")
    args = ap.parse_args()
    if args.episode_jitter is not None:
        MIXES["episodes"] = dataclasses.replace(MIXES["episodes"], episode_jitter_minutes=args.episode_jitter)
    if args.episode_days is not None:
        lo, hi = (int(x) for x in args.episode_days.split(","))
        MIXES["episodes"] = dataclasses.replace(MIXES["episodes"], episode_days=(lo, hi))
    name, path, tz = TRACES[0]
    nasa = read_request_trace(path, tz=tz).to_numpy(dtype=float)
    rows = []
    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
        for mix in MIXES:
            if args.mix and mix not in args.mix:
                continue
            base, inj = standin_trace(nasa, seed, mix, days=args.days, quiet_power=args.quiet_power)
            v = inj.values
            c = default_capacity(v)
            lag = args.lag_minutes
            t0 = time.perf_counter()
            r = simulate(v, HpaReactivePlanner(c), capacity=c, lag=lag)
            p = simulate(v, PredictivePlanner(c, lag), capacity=c, lag=lag)
            no_echo = simulate(v, PredictivePlanner(c, lag, PredictiveConfig(echo_factor=0)), capacity=c, lag=lag)
            prev = simulate(v, PredictivePlanner(c, lag, CANDIDATES[PREVIOUS_DEFAULT]), capacity=c, lag=lag)
            secs = time.perf_counter() - t0
            vr = (r.ready * c < v).astype(int)
            vp = (p.ready * c < v).astype(int)
            row = {
                "case": f"standin-{mix}(seed={seed})",
                "sample": "in-sample" if seed == 100 and mix == "episodes" else "out-of-sample",
                "minutes": len(v),
                "capacity_per_replica": c,
                "quiet_hour_replicas_needed": float(np.percentile(base, 10) / c),
                "crowds": {k: sum(1 for x in inj.crowds if x.kind == k) for k in ("recurring", "episode", "irregular")},
                "reactive": r.summary(),
                "predictive": p.summary(),
                "violation_ratio": round(p.violation_minutes / max(r.violation_minutes, 1), 4),
                "replica_minutes_ratio": round(p.replica_minutes / r.replica_minutes, 4),
                "violations_in_crowds": {"reactive": int(vr[inj.mask].sum()), "predictive": int(vp[inj.mask].sum())},
                "lost_minutes_per_onset": {
                    k: {"reactive": onset_losses(vr, inj.crowds, k), "predictive": onset_losses(vp, inj.crowds, k)}
                    for k in ("recurring", "episode", "irregular")
                },
                "planner_without_surge_echo": {
                    "violation_ratio": round(no_echo.violation_minutes / max(r.violation_minutes, 1), 4),
                    "replica_minutes_ratio": round(no_echo.replica_minutes / r.replica_minutes, 4),
                },
                "previous_default": {
                    "config": PREVIOUS_DEFAULT,
                    "violation_ratio": round(prev.violation_minutes / max(r.violation_minutes, 1), 4),
                    "replica_minutes_ratio": round(prev.replica_minutes / r.replica_minutes, 4),
                },
                "yardsticks": None if args.no_yardsticks else yardsticks(v, c, lag),
                "seconds": round(secs, 1),
            }
            rows.append(row)
            print(json.dumps({k: row[k] for k in ("case", "violation_ratio", "replica_minutes_ratio")}),
                  file=sys.stderr, flush=True)
    print(json.dumps({"lag_minutes": args.lag_minutes, "days": args.days, "quiet_power": args.quiet_power,
                      "episode_jitter_minutes": MIXES["episodes"].episode_jitter_minutes,
                      "episode_days": list(MIXES["episodes"].episode_days),
                      "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
