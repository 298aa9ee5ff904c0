"""The flash_crowd game day, several times, with the medians of its figures and ratios.

Each run is a baseline (ordinary shoppers only) and a crowd (ordinary shoppers plus the crowd and its bots for the
hot product) on fresh stores, measured back to back: the p99 ratios compare them within the run.

    python bench/flash_crowd.py [--runs 3] [--shoppers 20000] [--units 200] [--workers 1]
                                [--redis-url redis://127.0.0.1:6379/0] [--crowd-nice 4]
                                [--hold-s 20]
"""

from __future__ import annotations

import argparse
import json
import statistics

from shopfloor.gameday import FlashCrowdConfig, run_flash_crowd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--shoppers", type=int, default=20_000)
    ap.add_argument("--units", type=int, default=200)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--redis-url", default=None)
    ap.add_argument("--hold-s", type=float, default=FlashCrowdConfig.hold_s,
                    help="how long shoppers hold GET /v1/queue/{token}?wait= (0: they poll it every Retry-After)")
    ap.add_argument("--crowd-nice", type=int, default=FlashCrowdConfig.crowd_nice,
                    help="niceness added to the crowd's load processes (0: the server's priority)")
    ap.add_argument("--through-shield", action="store_true",
                    help="shoppers reach the server through one nginx node of the edge's shield tier")
    ap.add_argument("--in-process-simulators", action="store_true",
                    help="run the simulated processors inside the server process (the form of runs before "
                         "2026-12-04 evening) instead of their own process")
    args = ap.parse_args()
    runs = []
    for i in range(args.runs):
        cfg = FlashCrowdConfig(shoppers=args.shoppers, units=args.units, server_workers=args.workers, seed=7 + i,
                               crowd_nice=args.crowd_nice, hold_s=args.hold_s,
                               through_shield=args.through_shield,
                               simulator_process=not args.in_process_simulators)
        r = run_flash_crowd(config=cfg, redis_url=args.redis_url)
        runs.append({
            "sold": r.sold, "units": r.units, "checks": r.checks, "passed": r.passed,
            "sellout_notice_max_s": r.sellout_notice_max_s, "admitted_p99_ms": r.admitted_p99_ms,
            "ordinary_p99_ms": r.ordinary_p99_ms, "baseline_p99_ms": r.baseline_p99_ms,
            "admitted_p99_ratio": _ratio(r.admitted_p99_ms, r.baseline_p99_ms),
            "ordinary_p99_ratio": _ratio(r.ordinary_p99_ms, r.baseline_p99_ms),
            "bot_units_share": r.bot_units_share, "pre_open_units_share": r.pre_open_units_share,
            "server_cpu_s": r.totals["server_cpu_s"], "simulator_cpu_s": r.totals["simulator_cpu_s"],
            "simulators": "in-process" if args.in_process_simulators else "own process",
            "requests": r.totals["requests"],
            "crowd_requests": r.totals["crowd_requests"], "sellout_notice_by": r.totals["sellout_notice_by"],
            "generator_lag_ms": r.totals["generator_lag_ms"], "listen_overflows": r.totals["listen_overflows"],
            "load_average": r.totals["load_average"],
            "sellout_at_s": r.totals["sellout_at_s"], "sellout_notice_tail": r.totals["sellout_notice_tail"],
            "sellout_seen_by_server_after_s": r.totals["sellout_seen_by_server_after_s"],
            "held_told_sold_out_at_once": r.totals["held_told_sold_out_at_once"],
            "sold_out_in_protocol": r.totals["sold_out_in_protocol"],
            "queued_in_protocol": r.totals.get("queued_in_protocol"),
            "queue_status_in_protocol": r.totals.get("queue_status_in_protocol"),
            "sellout_buyer_answered_after_s": r.totals["sellout_buyer_answered_after_s"],
            "outcomes": r.totals["outcomes"], "refusals": r.totals["refusals"],
            "ordinary_timeline": r.totals["ordinary_timeline"],
            "server_cpu_timeline": r.totals["server_cpu_timeline"],
        })

    def median(key: str):
        values = [run[key] for run in runs if run[key] is not None]
        return statistics.median(values) if values else None

    print(json.dumps({
        "runs": runs,
        "median": {k: median(k) for k in ("sellout_notice_max_s", "admitted_p99_ms", "ordinary_p99_ms",
                                          "baseline_p99_ms", "admitted_p99_ratio", "ordinary_p99_ratio",
                                          "bot_units_share")},
        "all_passed": all(run["passed"] for run in runs),
    }, indent=2))


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 2)


if __name__ == "__main__":
    main()
