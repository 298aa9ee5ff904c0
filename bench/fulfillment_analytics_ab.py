"""Fulfillment analytics: an earlier version of the report's queries against the current one, in the same run.

    git show e02e8ce:src/shopfloor/store/analytics.py > /tmp/old_analytics.py
    PYTHONPATH=src python bench/fulfillment_analytics_ab.py /tmp/old_analytics.py OLD_URL NEW_URL [--runs 5]

OLD_URL and NEW_URL hold the same generated store (``bench/fulfillment_analytics.py``'s, seed 7), each with the
indexes of its version (a copy of the database works: drop the new indexes from the old one). The two reports run
alternately (old first on even runs, new first on odd ones) so that a busy machine weighs on both alike; printed:
the median wall and CPU seconds of each (CPU: this process plus, on PostgreSQL, the server backends that served it,
read from /proc with parallel workers off) and their ratios. Prints JSON.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old_module", help="An earlier shopfloor/store/analytics.py (relative imports made absolute).")
    ap.add_argument("old_url")
    ap.add_argument("new_url")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--days", type=int, default=30)
    args = ap.parse_args()

    import fulfillment_analytics as fa
    from shopfloor.store import analytics as new

    source = Path(args.old_module).read_text().replace("from ..", "from shopfloor.").replace(
        "from .", "from shopfloor.store.")
    spec = importlib.util.spec_from_loader("old_analytics", loader=None)
    old = importlib.util.module_from_spec(spec)
    exec(compile(source, args.old_module, "exec"), old.__dict__)  # noqa: S102 - a file the caller names

    def make(url, module):
        eng, pids = fa.counted_engine(url)
        return module.SqlFulfillmentAnalytics(eng), pids

    until = fa.UNTIL
    since = until - timedelta(days=args.days)
    sides = {"old": make(args.old_url, old), "new": make(args.new_url, new)}
    out: dict = {"load_average_at_start": os.getloadavg(), "runs": args.runs}
    reports = {k: an.report(since, until) for k, (an, _) in sides.items()}  # warm-up
    out["same_numbers"] = fa.sql_as_baseline_shape(reports["old"]) == fa.sql_as_baseline_shape(reports["new"])
    m = {k: {"wall": [], "cpu": []} for k in sides}
    for i in range(args.runs):
        for k in (("old", "new") if i % 2 == 0 else ("new", "old")):
            an, pids = sides[k]
            c0, s0, t0 = time.process_time(), fa._backend_cpu_s(pids), time.perf_counter()
            an.report(since, until)
            m[k]["wall"].append(time.perf_counter() - t0)
            m[k]["cpu"].append(time.process_time() - c0 + fa._backend_cpu_s(pids) - s0)
    for k in m:
        out[k] = {"wall_s_median": round(statistics.median(m[k]["wall"]), 3),
                  "cpu_s_median": round(statistics.median(m[k]["cpu"]), 3)}
    out["cpu_ratio_old_over_new"] = round(out["old"]["cpu_s_median"] / out["new"]["cpu_s_median"], 2)
    out["wall_ratio_old_over_new"] = round(out["old"]["wall_s_median"] / out["new"]["wall_s_median"], 2)
    out["load_average_at_end"] = os.getloadavg()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
