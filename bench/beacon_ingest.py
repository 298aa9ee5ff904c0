"""Storefront beacon ingest through a real uvicorn server (a subprocess), against a trivial route in the same run.

    PYTHONPATH=src python bench/beacon_ingest.py [--batch 100] [--seconds 8] [--concurrency 4]
        [--database-url postgresql://...]

What is measured: batched ``POST /v1/events/storefront`` (full pydantic validation, per-batch aggregation into the
process's rollup buffer, which group-commits one upsert per ``SHOPFLOOR_TOWER_BEACON_FLUSH_S``, default 1 s; pass
``--flush-s 0`` to commit on every request) over HTTP/1.1 keep-alive from ``--concurrency`` client threads, versus ``GET /healthz``
(returns a constant) on the same server with the same clients. The server has one worker process. At the end the
rollup table is read back: the counted events must equal the events sent. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "Bearer bench-storefront"


def make_app():
    """App factory for uvicorn: the tower router, a /healthz baseline and a one-key authenticator."""
    from fastapi import FastAPI, HTTPException

    from shopfloor.api.routes.tower import router
    from shopfloor.bootstrap import build_container
    from shopfloor.config import Settings

    class OneKey:
        def require(self, header, scopes):
            if header != TOKEN:
                raise HTTPException(401, "bad key")
            if "storefront" not in scopes:
                raise HTTPException(403, "scope")
            return "bench"

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        yield
        app.state.container.close()  # flushes the beacon buffer

    app = FastAPI(lifespan=lifespan)
    app.state.container = build_container(Settings())
    app.state.authenticator = OneKey()

    @app.get("/healthz")
    def healthz() -> dict:
        return {"ok": True}

    app.include_router(router)
    return app


def _pg_admin(url: str):
    from sqlalchemy import create_engine

    from shopfloor.store.engine import normalise_url

    return create_engine(normalise_url(url), isolation_level="AUTOCOMMIT")


def _create_pg_database(url: str) -> str:
    import uuid

    name = f"sf_bench_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin(url)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return f"{url.rsplit('/', 1)[0]}/{name}"


def _drop_pg_database(url: str, throwaway: str) -> None:
    admin = _pg_admin(url)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{throwaway.rsplit("/", 1)[1]}" WITH (FORCE)')
    admin.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _batch(n: int, k: int) -> dict:
    kinds = ("page_view", "product_view", "add_to_cart", "checkout_started")
    return {"events": [{"type": kinds[(k + i) % 4], "page_load_ms": 300 + (i * 37) % 2000,
                        "sku": f"SKU-{i % 50:04d}", "session": f"s{k}-{i % 10}"} for i in range(n)]}


def _drive(url: str, seconds: float, concurrency: int, make_request) -> tuple[int, float, list[float]]:
    import httpx

    stop = time.perf_counter() + seconds
    counts = [0] * concurrency
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[str] = []

    def worker(w: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            k = 0
            while time.perf_counter() < stop:
                t = time.perf_counter()
                resp = make_request(client, w, k)
                latencies[w].append(time.perf_counter() - t)
                if resp.status_code >= 300:
                    errors.append(f"{resp.status_code} {resp.text[:200]}")
                    return
                counts[w] += 1
                k += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(concurrency)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"request failed: {errors[0]}")
    return sum(counts), elapsed, sorted(x for lat in latencies for x in lat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=100, help="events per POST")
    ap.add_argument("--seconds", type=float, default=8.0, help="duration of each phase")
    ap.add_argument("--concurrency", type=int, default=4, help="client threads")
    ap.add_argument("--database-url", default="",
                    help="default: a fresh SQLite file (WAL, synchronous=FULL); for a PostgreSQL URL a throwaway "
                         "database is created on that server and dropped afterwards")
    ap.add_argument("--flush-s", type=float, default=1.0, help="group-commit interval (0: commit per request)")
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT / "src"))
    from shopfloor.domain.stats import percentile
    from shopfloor.store.migrate import upgrade_database

    tmp = tempfile.mkdtemp(prefix="beacon-bench-")
    throwaway = None
    if args.database_url.startswith("postgres"):
        throwaway = _create_pg_database(args.database_url)  # never touch the given database's own tables
        url = throwaway
    else:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
    upgrade_database(url)
    port = _free_port()
    env = {**os.environ, "SHOPFLOOR_DATABASE_URL": url, "SHOPFLOOR_TOWER_BEACON_FLUSH_S": str(args.flush_s),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.beacon_ingest:make_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1", "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        import httpx

        for _ in range(200):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError("server did not start")
        headers = {"Authorization": TOKEN}
        bodies = [_batch(args.batch, k) for k in range(16)]
        # warm-up, then the baseline and the beacon phases on the same server
        _drive(base, 1.0, args.concurrency, lambda c, w, k: c.get("/healthz"))
        hz_n, hz_s, hz_lat = _drive(base, args.seconds, args.concurrency, lambda c, w, k: c.get("/healthz"))
        post = lambda c, w, k: c.post("/v1/events/storefront", json=bodies[k % 16], headers=headers)  # noqa: E731
        b_n, b_s, b_lat = _drive(base, args.seconds, args.concurrency, post)
    finally:
        server.terminate()
        server.wait(timeout=10)

    from sqlalchemy import func, select

    from shopfloor.store.engine import make_engine
    from shopfloor.store.tower_tables import funnel_minutes

    eng = make_engine(url)
    with eng.connect() as conn:
        stored = int(conn.execute(select(func.sum(funnel_minutes.c.count))).scalar() or 0)
    eng.dispose()
    if throwaway:
        _drop_pg_database(args.database_url, throwaway)
    events_sent = b_n * args.batch
    p = lambda lat, q: round(percentile(lat, q) * 1000, 2) if lat else None  # noqa: E731
    result = {
        "bench": "beacon_ingest",
        "server": "real uvicorn subprocess, 1 worker, HTTP/1.1 keep-alive over loopback",
        "database": "postgresql" if url.startswith("postgres") else "sqlite (WAL, synchronous=FULL)",
        "batch_size": args.batch,
        "flush_interval_s": args.flush_s,
        "concurrency": args.concurrency,
        "beacon": {"requests": b_n, "seconds": round(b_s, 2), "requests_per_s": round(b_n / b_s, 1),
                   "events_per_s": round(events_sent / b_s, 1), "p50_ms": p(b_lat, 0.5), "p99_ms": p(b_lat, 0.99)},
        "baseline_healthz": {"requests": hz_n, "seconds": round(hz_s, 2), "requests_per_s": round(hz_n / hz_s, 1),
                             "p50_ms": p(hz_lat, 0.5), "p99_ms": p(hz_lat, 0.99)},
        "ratio_beacon_requests_per_s_vs_healthz": round((b_n / b_s) / (hz_n / hz_s), 3),
        "events_sent": events_sent,
        "events_in_rollups": stored,
        "target_events_per_s": 5000,
        "meets_target": events_sent / b_s >= 5000 and stored == events_sent,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
