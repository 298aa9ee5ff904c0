"""The checkout load run behind ``bench/checkout.py`` and ``shopfloor bench checkout``.

It starts the real server (production settings: durable commits), seeds a store, drives it with ``wrk`` (a load
generator faster than the server, pinned to another core), measures the ``/healthz`` ceiling and checkout
throughput/latency in the same run, and verifies afterwards that nothing was oversold, lost or duplicated.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


from ..runtime import ServerProcess, SimulatorProcess, interrupt_on_termination, os_thread_cpu_s
from .checks import verify_store
from .seed import ensure_fresh_store, seed_bench_store

WRK_CHECKOUT_LUA = r"""
local counter = 0
local skus = {}
statuses = {}
local hot = os.getenv("SF_HOT") == "1"
local nskus = tonumber(os.getenv("SF_NSKUS") or "500")
local key = os.getenv("SF_KEY")
local run = os.getenv("SF_RUN") or "r"
local postals = {"94107", "10001", "60601", "30301", "98101"}
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16 or 10))

local threads = {}
function setup(thread)
  thread:set("tid", tostring(math.random(1, 1e9)))
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  ids = {}
end

function request()
  counter = counter + 1
  local sku
  if hot then sku = "HOT" else sku = string.format("SKU%05d", math.random(0, nskus - 1)) end
  local body = string.format(
    '{"lines":[{"sku":"%s","qty":%d}],"ship_to":{"country":"US","postal_code":"%s"},"payment":{"token":"tok_ok"}}',
    sku, math.random(1, 2), postals[math.random(1, #postals)])
  local headers = {}
  headers["Content-Type"] = "application/json"
  headers["Authorization"] = "Bearer " .. key
  headers["Idempotency-Key"] = run .. "-" .. tid .. "-" .. counter
  return wrk.format("POST", "/v1/checkouts", headers, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 201 then
    local id = body:match('"order_id":"([%w_]+)"')
    if id then ids[#ids + 1] = id end
  end
end
"""

# wrk's done() cannot see per-thread tables, so per-status counts are reported from each thread at teardown.
WRK_STATUS_LUA = r"""
function done(summary, latency, requests)
  local agg = {}
  for _, t in ipairs(threads) do
    local st = t:get("statuses")
    if st then for k, v in pairs(st) do agg[k] = (agg[k] or 0) + v end end
  end
  local parts = {}
  for k, v in pairs(agg) do table.insert(parts, string.format('"%s": %d', k, v)) end
  io.write("STATUS_JSON {" .. table.concat(parts, ", ") .. "}\n")
  -- The order id of every 201, so that the store check can look each one up.
  local out = os.getenv("SF_IDS_OUT")
  if out then
    local f = io.open(out, "w")
    for _, t in ipairs(threads) do
      local got = t:get("ids")
      if got then for _, id in ipairs(got) do f:write(id, "\n") end end
    end
    f:close()
  end
end
"""


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    statuses: dict[str, int]


def _to_ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v


def parse_wrk(out: str) -> WrkResult:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _to_ms(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = _to_ms(re.search(r"\s99%\s+(\S+)", out).group(1))
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    err = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        err = sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    statuses: dict[str, int] = {}
    sm = re.search(r"STATUS_JSON (\{.*\})", out)
    if sm:
        statuses = json.loads(sm.group(1))
    return WrkResult(rps, p50, p99, reqs, err, statuses)


def _core(core: int | None) -> int | None:
    """``core`` where processes can be pinned to it (``taskset`` installed, two cores or more), else None."""
    if core is None or shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return None
    return core


def _pin(core: int | None) -> list[str]:
    core = _core(core)
    return [] if core is None else ["taskset", "-c", str(core)]


def run_wrk(url: str, path: str, seconds: float, connections: int, script: str | None = None,
            env: dict | None = None, core: int | None = 1, threads: int = 2) -> WrkResult:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk)")
    cmd = _pin(core) + ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, int(round(seconds)))}s", "--latency", "--timeout", "10s"]
    if script:
        cmd += ["-s", script]
    cmd.append(url + path)
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=True).stdout
    return parse_wrk(out)


def _process_rss_mb(pid: int) -> float:
    import psutil

    try:
        p = psutil.Process(pid)
        procs = [p] + p.children(recursive=True)
        return sum(x.memory_info().rss for x in procs if x.is_running()) / 2**20
    except psutil.Error:
        return float("nan")


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by the server process and its children (``--workers N``)."""
    import psutil

    try:
        p = psutil.Process(pid)
        total = 0.0
        for x in [p] + p.children(recursive=True):
            t = x.cpu_times()
            total += t.user + t.system
        return total
    except psutil.Error:
        return float("nan")


def _cpu_during(pid: int, phase: Callable[[], WrkResult]) -> tuple[WrkResult, float, float]:
    """Run ``phase``; also return the server's CPU seconds and the wall seconds it took."""
    cpu0, wall0 = _process_cpu_s(pid), time.perf_counter()
    res = phase()
    return res, _process_cpu_s(pid) - cpu0, time.perf_counter() - wall0


def _ratio(num: float, den: float, scale: float, digits: int) -> float | None:
    """``scale * num / den`` rounded, or None where it is unknown (no requests, CPU time unreadable)."""
    import math

    return round(scale * num / den, digits) if den and math.isfinite(num) else None


def _read_ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    ids = path.read_text().split()
    path.unlink()
    return ids


def run_checkout_benchmark(database_url: str | None = None, *, seconds: float = 10.0, connections: int = 64,
                           n_skus: int = 500, hot_units: int = 2000, server_core: int | None = 0,
                           client_core: int | None = 1, workers: int = 1, simulators: str = "process",
                           progress: Callable[[str], None] | None = None) -> dict:
    """One benchmark run; ``progress`` is told the name of each phase as it starts. ``simulators="process"``
    runs the simulated processors and rate service as their own process (``shopfloor simulate serve``, pinned
    with the load generator, as a real gateway would be another machine); ``"inline"`` runs them inside the
    server."""
    if simulators not in ("process", "inline"):
        raise ValueError("simulators must be 'process' or 'inline'")
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk)")
    say = progress or (lambda _phase: None)
    tmp = Path(tempfile.mkdtemp(prefix="sf-bench-"))
    if database_url:
        ensure_fresh_store(database_url)
    database_url = database_url or f"sqlite:///{tmp / 'bench.db'}"
    say("seeding the store")
    key = seed_bench_store(database_url, n_skus, hot_units)
    say("starting the server")
    env: dict[str, str] = {}
    restore_signals = interrupt_on_termination()
    sim: SimulatorProcess | None = None
    if simulators == "process":
        say("starting the simulator process")
        sim = SimulatorProcess(database_url, log_path=tmp / "simulators.log", pin_core=_core(client_core))
        try:
            sim.start(timeout=30)
        except BaseException:
            sim.stop()
            restore_signals()
            raise
        env["SHOPFLOOR_PAYMENTS_SIM_URL"] = sim.url
    server = ServerProcess(database_url, workers=workers, env=env, log_path=tmp / "server.log",
                           pin_core=_core(server_core))
    try:
        server.start(timeout=30)
        url = server.url
        server_pid = server.proc.pid
        script = tmp / "checkout.lua"
        script.write_text(WRK_CHECKOUT_LUA + WRK_STATUS_LUA)
        wrk_env = {"SF_KEY": key, "SF_NSKUS": str(n_skus), "SF_IDS_OUT": str(tmp / "ids.txt")}
        say("ceiling: /healthz")
        run_wrk(url, "/healthz", 2, connections, core=client_core)  # warm-up
        ceiling, ceiling_cpu, ceiling_wall = _cpu_during(
            server_pid, lambda: run_wrk(url, "/healthz", seconds, connections, core=client_core))
        say("checkout warm-up")
        ids: list[str] = []
        warm = run_wrk(url, "/v1/checkouts", 2, connections, str(script), {**wrk_env, "SF_RUN": "warm"},
                       client_core)
        ids += _read_ids(tmp / "ids.txt")
        say("checkouts over many SKUs")
        threads0 = os_thread_cpu_s(server_pid)
        sim_cpu0 = _process_cpu_s(sim.proc.pid) if sim is not None else float("nan")
        many, many_cpu, many_wall = _cpu_during(server_pid, lambda: run_wrk(
            url, "/v1/checkouts", seconds, connections, str(script), {**wrk_env, "SF_RUN": "many"}, client_core))
        sim_cpu = (_process_cpu_s(sim.proc.pid) - sim_cpu0) if sim is not None else float("nan")
        thread_cpu = {name: s - threads0.get(name, 0.0) for name, s in os_thread_cpu_s(server_pid).items()}
        ids += _read_ids(tmp / "ids.txt")
        say("hot-SKU flash sale")
        hot = run_wrk(url, "/v1/checkouts", max(seconds / 2, 2), connections, str(script),
                      {**wrk_env, "SF_RUN": "hot", "SF_HOT": "1"}, client_core)
        ids += _read_ids(tmp / "ids.txt")
        rss = _process_rss_mb(server_pid)
    finally:
        server.stop()
        if sim is not None:
            sim.stop()
        restore_signals()
    # Every phase's 201s, the warm-up's included: each 201's order id must be in the store.
    created = sum(r.statuses.get("201", 0) for r in (warm, many, hot))
    say("verifying the store")
    checks = verify_store(database_url, ids)
    # A 201 whose body carried no order id would escape the per-id check: count it as unverified.
    checks["unverified_201"] = created - len(ids)
    # Orders without a counted 201 are requests still in flight when a phase's clock ran out (wrk drops them).
    checks["orders_without_counted_201"] = max(0, checks["orders_in_db"] - created)
    result = {
        "benchmark": "checkout",
        "database": "postgresql" if database_url.startswith("postgres") else "sqlite",
        "connections": connections,
        "seconds_per_phase": seconds,
        "server_workers": workers,
        "simulators": simulators,
        "ceiling_rps": round(ceiling.rps, 1),
        "ceiling_p99_ms": round(ceiling.p99_ms, 2),
        "checkout_rps": round(many.rps, 1),
        "checkout_p50_ms": round(many.p50_ms, 2),
        "checkout_p99_ms": round(many.p99_ms, 2),
        "checkout_statuses": many.statuses,
        "checkout_socket_errors": many.errors,
        "hot_rps": round(hot.rps, 1),
        "hot_p50_ms": round(hot.p50_ms, 2),
        "hot_p99_ms": round(hot.p99_ms, 2),
        "hot_statuses": hot.statuses,
        "ratio": round(many.rps / ceiling.rps, 3) if ceiling.rps else None,
        # Cores the server kept busy in each phase (1.0 = its one pinned core saturated) and its CPU per request:
        # what says whether a phase was bound by the server's CPU or by waiting.
        "ceiling_server_cores_busy": _ratio(ceiling_cpu, ceiling_wall, 1, 3),
        "ceiling_server_cpu_us_per_request": _ratio(ceiling_cpu, ceiling.requests, 1e6, 1),
        "checkout_server_cores_busy": _ratio(many_cpu, many_wall, 1, 3),
        "checkout_server_cpu_us_per_request": _ratio(many_cpu, many.requests, 1e6, 1),
        # The simulator process (the payment gateway and rate service stand-in) shares the load generator's core:
        # its CPU per checkout says how much of that core it takes from wrk (None with inline simulators).
        "checkout_simulator_cores_busy": _ratio(sim_cpu, many_wall, 1, 3),
        "checkout_simulator_cpu_us_per_request": _ratio(sim_cpu, many.requests, 1e6, 1),
        # Where that CPU went, by thread (event loop, checkout writer, buy-path threads, ...); single-process
        # servers only (``--workers 1``): with several workers the threads live in the children.
        "checkout_server_cpu_us_by_thread": {
            name: _ratio(cpu_s, many.requests, 1e6, 1)
            for name, cpu_s in sorted(thread_cpu.items(), key=lambda kv: -kv[1]) if cpu_s > 0
        } if workers == 1 else {},
        "server_rss_mb": round(rss, 1),
        **checks,
    }
    result["hot_sku_oversold"] = max(0, result["hot_sku_sold"] - hot_units)
    shutil.rmtree(tmp, ignore_errors=True)
    return result


SUMMARY_KEYS = ("ceiling_rps", "checkout_rps", "ratio", "checkout_p50_ms", "checkout_p99_ms", "hot_rps", "hot_p99_ms",
                "server_rss_mb", "ceiling_server_cores_busy", "ceiling_server_cpu_us_per_request",
                "checkout_server_cores_busy", "checkout_server_cpu_us_per_request")


def _median(values: list) -> float | None:
    import statistics

    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


#: The counts that must all be 0 after a run (the summary sums them over runs).
CORRECTNESS_KEYS = ("oversold", "lost", "duplicate_orders", "unverified_201")


def summarize_checkout_runs(runs: list[dict]) -> dict:
    """Medians of the headline figures over runs, and the correctness counts summed over them (the hot SKU's
    oversold units count as oversold)."""
    totals = {k: sum(r[k] for r in runs) for k in CORRECTNESS_KEYS}
    totals["oversold"] += sum(r["hot_sku_oversold"] for r in runs)
    return {
        "benchmark": "checkout", "runs": len(runs), "database": runs[0]["database"],
        "connections": runs[0]["connections"],
        **{f"median_{k}": _median([r.get(k) for r in runs]) for k in SUMMARY_KEYS},
        "median_checkout_server_cpu_us_by_thread": {
            name: _median([r.get("checkout_server_cpu_us_by_thread", {}).get(name) for r in runs])
            for name in dict.fromkeys(n for r in runs for n in r.get("checkout_server_cpu_us_by_thread", {}))
        },
        **totals,
    }
