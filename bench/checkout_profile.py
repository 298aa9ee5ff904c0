"""Where the server's CPU per checkout goes, by thread: cProfile on each thread's own CPU clock.

Starts the server as ``bench/checkout.py`` does (production settings, SQLite or ``--database-url``, the simulators
as their own process, the server pinned to core 0 and wrk to core 1), but under cProfile with the thread CPU clock
(``time.thread_time``): one profile for the event loop and one for the checkout writer thread, each enabled in its
own thread. After a warm-up the profiles are cleared, wrk runs the checkout phase, and each thread dumps its
profile. Prints the top functions of each by own time, with the profiled CPU per checkout. The profiler's own
overhead inflates the absolute figures (about 2-3x); read the shares.

    python bench/checkout_profile.py [--seconds 6] [--connections 64] [--top 30] [--sort tottime|cumulative]
"""

from __future__ import annotations

import argparse
import io
import os
import pstats
import signal
import tempfile
import time
from pathlib import Path

import httpx

from shopfloor.gameday.load import WRK_CHECKOUT_LUA, WRK_STATUS_LUA, _core, run_wrk
from shopfloor.gameday.seed import seed_bench_store
from shopfloor.runtime import ScriptServerProcess, SimulatorProcess

_PROFILED_SERVER = r"""
import cProfile, os, signal, sys, threading, time
out = os.environ["BENCH_PROFILE_DIR"]
state = {"gen": 0}
main_prof = cProfile.Profile(time.thread_time)

def dump_main(*_):
    main_prof.disable()
    main_prof.dump_stats(os.path.join(out, f"loop-{state['gen']}.prof"))
    main_prof.clear()
    state["gen"] += 1
    main_prof.enable()

signal.signal(signal.SIGUSR1, dump_main)

from shopfloor.orders import checkout as _ck
_orig_apply = _ck.CheckoutService._apply_batch
_writer = {}

def _apply_batch(self, batch):
    p = _writer.get("prof")
    if p is None:
        p = _writer["prof"] = cProfile.Profile(time.thread_time)
        _writer["gen"] = state["gen"]
        p.enable()
    if _writer["gen"] != state["gen"]:  # the loop dumped: this thread dumps its own (cProfile is per thread)
        p.disable()
        p.dump_stats(os.path.join(out, f"writer-{_writer['gen']}.prof"))
        p.clear()
        _writer["gen"] = state["gen"]
        p.enable()
    return _orig_apply(self, batch)

_ck.CheckoutService._apply_batch = _apply_batch

import uvicorn
from shopfloor.cli.output import load_settings
from shopfloor.store.migrate import upgrade_database
settings = load_settings()
upgrade_database(settings.database_url)
main_prof.enable()
uvicorn.run("shopfloor.api.app:app_from_env", factory=True, host="127.0.0.1", port=int(sys.argv[1]),
            log_level="warning", access_log=False, http="httptools", loop="uvloop",
            proxy_headers=settings.http_proxy_headers, forwarded_allow_ips=settings.http_forwarded_allow_ips,
            backlog=settings.http_backlog)
"""


def _top(path: Path, n: int, sort: str) -> tuple[float, str]:
    s = io.StringIO()
    st = pstats.Stats(str(path), stream=s)
    st.sort_stats(sort).print_stats(n)
    return st.total_tt, s.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--seconds", type=float, default=6)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--sort", default="tottime")
    ap.add_argument("--keep", default=None, help="copy the .prof files to this folder")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="sf-ck-prof-"))
    url_db = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    key = seed_bench_store(url_db, 500, 2000)
    sim = SimulatorProcess(url_db, log_path=tmp / "simulators.log", pin_core=_core(1))
    sim.start(timeout=30)
    env = {"SHOPFLOOR_PAYMENTS_SIM_URL": sim.url, "BENCH_PROFILE_DIR": str(tmp)}
    server = ScriptServerProcess(_PROFILED_SERVER, url_db, env=env, log_path=tmp / "server.log", pin_core=_core(0))
    try:
        server.start()
        proc, base = server.proc, server.url
        script = tmp / "checkout.lua"
        script.write_text(WRK_CHECKOUT_LUA + WRK_STATUS_LUA)
        wrk_env = {"SF_KEY": key, "SF_NSKUS": "500"}
        run_wrk(base, "/v1/checkouts", 2, args.connections, str(script), {**wrk_env, "SF_RUN": "warm"}, 1)

        def mark() -> None:  # the loop dumps and clears now; the writer at its next batch (one checkout kicks it)
            os.kill(proc.pid, signal.SIGUSR1)
            time.sleep(0.3)
            body = ('{"lines":[{"sku":"SKU00001","qty":1}],"ship_to":{"country":"US","postal_code":"94107"},'
                    '"payment":{"token":"tok_ok"}}')
            httpx.post(base + "/v1/checkouts", content=body, timeout=10,
                       headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                                "Idempotency-Key": f"mark-{time.time_ns()}"})
            time.sleep(0.3)

        mark()  # generation 0 (start-up, warm-up) ends
        res = run_wrk(base, "/v1/checkouts", args.seconds, args.connections, str(script),
                      {**wrk_env, "SF_RUN": "many"}, 1)
        mark()  # generation 1 is the measured phase
        n = res.requests
        print(f"checkouts {n}, {res.rps:.1f} rps, p99 {res.p99_ms:.1f} ms, statuses {res.statuses}, "
              f"load average {os.getloadavg()[0]:.1f}")
        for name in ("loop", "writer"):
            path = tmp / f"{name}-1.prof"
            if not path.exists():
                print(f"no {name} profile")
                continue
            if args.keep:
                Path(args.keep).mkdir(parents=True, exist_ok=True)
                (Path(args.keep) / path.name).write_bytes(path.read_bytes())
            total, text = _top(path, args.top, args.sort)
            print(f"\n=== {name}: {1e6 * total / max(n, 1):.0f} us profiled CPU per checkout ===")
            print(text)
    finally:
        server.stop()
        sim.stop()


if __name__ == "__main__":
    main()
