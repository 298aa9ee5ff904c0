"""What the simulator process (``shopfloor simulate serve``) costs per call, on its own CPU clock: wrk posts
authorizations with fresh idempotency keys (or asks ``/healthz``) at ``--connections`` in flight, with the
simulators' default latency (20 ms median), the simulator pinned to ``--sim-core`` and wrk to ``--wrk-core``.
In the checkout benchmark this process shares a core with wrk, so its CPU per authorization is CPU the load
generator does not get.

    python bench/sim_server_cost.py [--seconds 5] [--connections 64] [--runs 1]

Prints one JSON object per run: authorizations/s, p50/p99, simulator CPU us per authorization and per health check.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from shopfloor.gameday.load import _process_cpu_s, run_wrk
from shopfloor.runtime import SimulatorProcess

AUTH_LUA = """
local n = 0
local tid = math.random(1, 1000000000)
request = function()
  n = n + 1
  local key = "k" .. tid .. "_" .. n
  local body = '{"amount":1000,"currency":"USD","token":"tok_visa_4242","order_id":"o' .. key .. '","timeout_s":2.0}'
  return wrk.format("POST", "/v1/processors/primary/authorize",
                    {["Content-Type"]="application/json", ["Idempotency-Key"]=key}, body)
end
"""


def run_once(seconds: float, connections: int, sim_core: int, wrk_core: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="sf-simcost-"))
    script = tmp / "auth.lua"
    script.write_text(AUTH_LUA)
    sim = SimulatorProcess(f"sqlite:///{tmp / 'store.db'}", log_path=tmp / "sim.log", pin_core=sim_core)
    sim.start(timeout=30)
    try:
        pid = sim.proc.pid
        out: dict = {"benchmark": "sim_server_cost", "connections": connections, "seconds": seconds}
        for name, path, lua in (("healthz", "/healthz", None), ("authorize", "", str(script))):
            run_wrk(sim.url, path, 2, connections, lua, core=wrk_core, threads=1)  # warm-up
            cpu0 = _process_cpu_s(pid)
            res = run_wrk(sim.url, path, seconds, connections, lua, core=wrk_core, threads=1)
            cpu = _process_cpu_s(pid) - cpu0
            out[f"{name}_rps"] = round(res.rps, 1)
            out[f"{name}_p50_ms"] = round(res.p50_ms, 2)
            out[f"{name}_p99_ms"] = round(res.p99_ms, 2)
            out[f"{name}_non_2xx"] = sum(v for k, v in res.statuses.items() if not k.startswith("2"))
            out[f"sim_cpu_us_per_{name}"] = round(cpu / res.requests * 1e6, 1) if res.requests else None
        return out
    finally:
        sim.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--sim-core", type=int, default=1)
    ap.add_argument("--wrk-core", type=int, default=0)
    args = ap.parse_args()
    for _ in range(args.runs):
        print(json.dumps(run_once(args.seconds, args.connections, args.sim_core, args.wrk_core)), flush=True)


if __name__ == "__main__":
    main()
