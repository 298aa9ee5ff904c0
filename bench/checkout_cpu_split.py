"""``bench/checkout.py`` runs with the server's CPU per checkout split by thread into user and system time.

    python bench/checkout_cpu_split.py [RUNS]

Each run is ``run_checkout_benchmark`` (SQLite, 64 connections, 6 s phases) with the per-thread clocks read as
``<thread>:usr`` and ``<thread>:sys`` instead of their sum; prints a short JSON line per run with the load average.
"""
import argparse, json, os

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0].replace("``", ""))
ap.add_argument("runs", nargs="?", type=int, default=1, help="benchmark runs, one JSON line each (default 1)")
args = ap.parse_args()

import shopfloor.gameday.load as L

def split(pid):
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
            f = open(f"/proc/{pid}/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if tid == str(pid):
            name = "loop"
        key = name.rstrip("0123456789").rstrip("_-") or name
        for part, i in (("usr", 11), ("sys", 12)):
            out[f"{key}:{part}"] = out.get(f"{key}:{part}", 0.0) + int(f[i]) / tick
    return out

L.os_thread_cpu_s = split
n = args.runs
for _ in range(n):
    r = L.run_checkout_benchmark(None, seconds=6, connections=64)
    keep = ("ceiling_rps", "ceiling_server_cores_busy", "ceiling_server_cpu_us_per_request", "checkout_rps",
            "checkout_p50_ms", "checkout_p99_ms", "ratio", "checkout_server_cores_busy",
            "checkout_server_cpu_us_per_request", "checkout_server_cpu_us_by_thread", "oversold", "lost",
            "duplicate_orders", "unverified_201")
    r2 = {k: r[k] for k in keep}
    r2["load"] = os.getloadavg()
    print(json.dumps(r2), flush=True)
