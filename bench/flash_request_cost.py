"""Server CPU per flash-crowd request, by kind: what one crowd request costs the server process.

Starts the real server (uvicorn, httptools, uvloop; the ``flash_crowd`` game day's settings: waiting room and
per-address limits) on a fresh SQLite store, sends ``--n`` requests of one kind at a time from this process over
keep-alive connections, and reads the server's CPU clocks per thread (``/proc`` via psutil: user + system time of
each thread, not sampled GIL shares) before and after. Kinds:

* ``healthz``: ``GET /healthz``, the HTTP server's floor;
* ``queued``: a checkout of the guarded product before its sale opens (``429 queued``, a new signed token each);
* ``poll``: ``GET /v1/queue/{token}`` of a waiting shopper (no hold);
* ``sold_out``: a checkout of a guarded product with no units left (``409 sold_out``);
* ``poll_sold_out``: ``GET /v1/queue/{token}`` of a token for a product that sold out since.

Every request comes from its own client address (``X-Forwarded-For``), as a crowd's do, so the per-address buckets
are each taken once. ``--profile`` runs the server under cProfile with the thread CPU clock
(``time.thread_time``) and prints the top functions by cumulative CPU per kind (the profiler's own overhead
inflates the absolute numbers; read the shares).

    python bench/flash_request_cost.py [--n 3000] [--repeats 3] [--profile] [--concurrency 64]
                                       [--redis-url redis://127.0.0.1:6379/4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import psutil

from shopfloor.gameday.flash_crowd import FlashCrowdConfig, _body, _env, _forget_redis_prefix, _Http
from shopfloor.gameday.seed import seed_bench_store
from shopfloor.runtime import ScriptServerProcess, ServerProcess

KINDS = ("healthz", "queued", "poll", "sold_out", "poll_sold_out")

_PROFILED_SERVER = """
import cProfile, os, signal, sys, time
import uvicorn
from shopfloor.api.app import served_app_from_env
prof = cProfile.Profile(time.thread_time)
def dump(*_):
    prof.disable(); prof.dump_stats(os.environ["BENCH_PROFILE_OUT"]); prof.clear(); prof.enable()
signal.signal(signal.SIGUSR1, dump)
prof.enable()
uvicorn.run(served_app_from_env(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
            http="httptools", loop="uvloop", proxy_headers=False)
"""


def _thread_cpu(pid: int) -> dict[int, float]:
    return {t.id: t.user_time + t.system_time for t in psutil.Process(pid).threads()}


def _main_thread_share(before: dict[int, float], after: dict[int, float], pid: int) -> tuple[float, float]:
    total = sum(after.values()) - sum(before.get(k, 0.0) for k in after)
    main = after.get(pid, 0.0) - before.get(pid, 0.0)
    return total, main


async def _send(url: str, requests: list[tuple[str, str, dict, bytes]], concurrency: int) -> list[int]:
    host, port = url.split("//", 1)[1].split(":")
    http = _Http(host, int(port))
    statuses: list[int] = []
    it = iter(requests)

    async def worker() -> None:
        for method, path, headers, body in it:
            status, _h, _payload = await http.request(method, path, headers, body)
            statuses.append(status)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    http.close()
    return statuses


def _headers(key: str, idem: str, address: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Idempotency-Key": idem, "Content-Type": "application/json",
            "X-Forwarded-For": address}


def _address(i: int) -> str:
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


def _requests(kind: str, n: int, key: str, tokens: dict[str, list[str]], offset: int):
    out = []
    for j in range(n):
        i = offset + j
        a = _address(i)
        if kind == "healthz":
            out.append(("GET", "/healthz", {"X-Forwarded-For": a}, b""))
        elif kind == "queued":
            out.append(("POST", "/v1/checkouts", _headers(key, f"q-{i}", a), _body("HOT", f"tok_h{i}")))
        elif kind == "sold_out":
            out.append(("POST", "/v1/checkouts", _headers(key, f"s-{i}", a), _body("GONE", f"tok_h{i}")))
        elif kind == "poll":
            t = tokens["HOT"][j % len(tokens["HOT"])]
            out.append(("GET", f"/v1/queue/{t}", {"X-Forwarded-For": a}, b""))
        elif kind == "poll_sold_out":
            t = tokens["LATE"][j % len(tokens["LATE"])]
            out.append(("GET", f"/v1/queue/{t}", {"X-Forwarded-For": a}, b""))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3000, help="requests per kind and repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--redis-url", default=None, help="keep the waiting room and the buckets in this Redis, as several "
                    "server processes do (the Redis server's own CPU is not counted)")
    ap.add_argument("--profile", action="store_true", help="cProfile (thread CPU clock) per kind; top functions")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        ap.error(f"--kinds: unknown {bad[0]!r} (one of {', '.join(KINDS)})")

    tmp = Path(tempfile.mkdtemp(prefix="sf-flash-cost-"))
    url_db = f"sqlite:///{tmp / 'cost.db'}"
    key = seed_bench_store(url_db, 5, 200)
    from shopfloor.store import orders_repo as repo
    from shopfloor.store.engine import make_engine

    engine = make_engine(url_db)
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        for sku, units in (("GONE", 0), ("LATE", 1)):
            repo.upsert_sku(conn, sku, sku, "promo", 999, "USD", now)
            repo.set_on_hand(conn, sku, "us-west-1", units, now)
    cfg = FlashCrowdConfig()
    run_id = f"cost{os.getpid()}"
    env = _env(cfg, now + timedelta(hours=1), args.redis_url, run_id)
    late_opens = now + timedelta(seconds=30)  # LATE: shoppers queue before it opens, then its one unit sells
    env["SHOPFLOOR_WAITROOM_PRODUCTS"] = json.dumps({"HOT": {"opens_at": (now + timedelta(hours=1)).isoformat()},
                                                     "GONE": {}, "LATE": {"opens_at": late_opens.isoformat()}})
    prof_out = tmp / "server.prof"
    if args.profile:
        env["BENCH_PROFILE_OUT"] = str(prof_out)
        http = ScriptServerProcess(_PROFILED_SERVER, url_db, env=env, log_path=tmp / "server.log")
    else:
        http = ServerProcess(url_db, env=env, log_path=tmp / "server.log")
    try:
        http.start()
        proc, base = http.proc, http.url
        server = psutil.Process(proc.pid)
        pid = server.children(recursive=True)[0].pid if server.children(recursive=True) else proc.pid
        tokens: dict[str, list[str]] = {"HOT": [], "LATE": []}
        with httpx.Client(base_url=base) as c:
            for sku in ("HOT", "LATE"):
                for i in range(64):
                    r = c.post("/v1/checkouts", content=_body(sku, f"tok_t{i}"),
                               headers=_headers(key, f"t-{sku}-{i}", f"192.0.2.{i}"))
                    if r.status_code == 429 and r.json()["error"]["code"] == "queued":
                        tokens[sku].append(r.json()["error"]["details"][0]["queue_token"])
                    else:
                        raise SystemExit(f"setup: {sku} checkout answered {r.status_code}: {r.text[:200]}")
            if "poll_sold_out" in kinds:  # wait for LATE to open, then sell its one unit
                time.sleep(max(0.0, late_opens.timestamp() - time.time() + 0.5))
                sold = [c.post("/v1/checkouts", content=_body("LATE", f"tok_t{i}"),
                               headers={**_headers(key, f"t-LATE-{i}", f"192.0.2.{i}"), "Queue-Token": t}).status_code
                        for i, t in enumerate(tokens["LATE"])]
                if 201 not in sold:  # the queued shoppers of LATE now hold tokens of a sold-out product
                    raise SystemExit(f"setup: LATE did not sell ({sold})")
        time.sleep(1.0)  # the stock cache sees LATE at 0
        results: dict[str, dict] = {}
        offset = 100_000
        for kind in kinds:
            per = []
            if args.profile:
                os.kill(pid, 10)  # SIGUSR1: dump and clear the profile, so that this kind's starts empty
                time.sleep(0.5)
            for rep in range(args.repeats):
                reqs = _requests(kind, args.n, key, tokens, offset)
                offset += args.n
                asyncio.run(_send(base, reqs[: args.concurrency], args.concurrency))  # warm the connections
                reqs = reqs[args.concurrency:]
                before = _thread_cpu(pid)
                t0 = time.perf_counter()
                statuses = asyncio.run(_send(base, reqs, args.concurrency))
                wall = time.perf_counter() - t0
                after = _thread_cpu(pid)
                total, main_thread = _main_thread_share(before, after, pid)
                per.append({"us_per_request": round(1e6 * total / len(reqs), 1),
                            "main_thread_us": round(1e6 * main_thread / len(reqs), 1),
                            "requests_per_s": round(len(reqs) / wall),
                            "statuses": {str(s): statuses.count(s) for s in sorted(set(statuses))}})
            results[kind] = {"median_us_per_request": statistics.median(p["us_per_request"] for p in per),
                             "median_main_thread_us": statistics.median(p["main_thread_us"] for p in per),
                             "runs": per}
            if args.profile:
                os.kill(pid, 10)  # SIGUSR1: this kind's profile
                time.sleep(1.0)
                results[kind]["profile_top"] = _top(prof_out, args.top)
        print(json.dumps({"load_average": os.getloadavg(), "n": args.n, "concurrency": args.concurrency,
                          "results": results}, indent=2))
    finally:
        http.stop()
        if args.redis_url:
            _forget_redis_prefix(args.redis_url, env["SHOPFLOOR_REDIS_KEY_PREFIX"])


def _top(path: Path, n: int) -> list[str]:
    import io
    import pstats

    s = io.StringIO()
    pstats.Stats(str(path), stream=s).sort_stats("tottime").print_stats(n)
    return [line for line in s.getvalue().splitlines() if line.strip()][-n - 1:]


if __name__ == "__main__":
    main()
