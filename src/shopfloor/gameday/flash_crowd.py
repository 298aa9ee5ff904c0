"""Game day ``flash_crowd``: a crowd (a share of it bots) for the few units of one product, while ordinary shoppers
keep buying other products; then the checks.

Two runs on fresh stores, each with the real ``shopfloor serve`` and ``shopfloor worker`` processes and the same
settings (waiting room on the ``HOT`` product, per-address rate limits):

1. **baseline**: only the ordinary shoppers, at the same arrival rate, for the same time;
2. **crowd**: the ordinary shoppers plus ``shoppers`` arrivals for ``HOT``. Some humans arrive before the sale
   opens (their places are shuffled at the opening), the rest during the sale. Humans follow the protocol: on
   ``429 queued`` they hold ``GET /v1/queue/{token}?wait=...`` and check out with ``Queue-Token`` once admitted.
   Bots arrive at the opening from many addresses, reuse a few cards, ignore ``Retry-After`` and repeat the
   checkout every ``bot_poll_s``.

Shoppers are coroutines on one event loop over a small raw HTTP/1.1 client (keep-alive connections), so that
20,000 of them cost the load generator little CPU. After the load the worker drains the outbox; the store and the
processors' ledgers are checked as in every game day. Reported: units, sold, the sell-out notice (from the start
of the last successful checkout of ``HOT`` to the moment each shopper who was waiting then heard ``sold_out``),
the p99 of admitted checkouts and of ordinary checkouts against the baseline's p99, and who got the units.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, ClassVar

from ..runtime import ServerProcess, SimulatorProcess, WorkerProcess
from .checks import stock_snapshot, verify_store
from .harness import drain_and_check, ledger_anomalies, simulator_env
from .report import ChecksVerdict, _percentile
from .seed import ensure_fresh_store, seed_bench_store

#: The checks that must all be 0.
FLASH_CROWD_CHECKS = ("lost", "oversold", "flash_oversold", "sold_not_units", "duplicate_orders", "double_captures",
                      "double_authorizations", "stock_not_conserved", "unanswered_shoppers",
                      "sellout_notice_over_target", "sellout_notice_not_measured", "admitted_p99_over_target",
                      "ordinary_p99_over_target", "load_generator_lagged")


@dataclass
class FlashCrowdConfig:
    shoppers: int = 20_000
    units: int = 200
    bot_share: float = 0.1
    bot_cards: int = 25  # bots reuse this many cards between them
    pre_open_share: float = 0.3  # humans who arrive before the sale opens
    pre_open_s: float = 5.0
    arrive_s: float = 15.0  # humans keep arriving this long after the opening
    bot_poll_s: float = 0.5
    ordinary_rate_per_s: float = 20.0
    hold_s: float = 20.0  # how long a human's GET /v1/queue/{token}?wait= is held (0: poll it, see _hold)
    notice_target_s: float = 2.0
    p99_factor_target: float = 1.5
    n_skus: int = 50
    seed: int = 7
    tail_s: float = 3.0  # ordinary shoppers keep going this long after the last arrival
    start_allowance_s: float = 40.0  # the sale opens this long (plus pre_open_s) after the server is launched
    server_workers: int = 1  # more than one needs redis_url (one shared queue and one set of buckets)
    # the shoppers (crowd and ordinary, baseline too) reach the server through one nginx node of the edge's shield
    # tier (kept-alive connections to the origin, no per-address limit: every shopper here is 127.0.0.1)
    through_shield: bool = False
    # The simulated payment processors and rate service as their own process (``shopfloor simulate serve``), as in
    # every other game day and benchmark: a real gateway is another system, whose CPU and threads the server under
    # test does not pay. False runs them inside the server process (for comparisons with earlier runs).
    simulator_process: bool = True
    load_processes: int = 3  # processes that play the crowd (the ordinary shoppers get one more of their own)
    crowd_nice: int = 4  # niceness added to the crowd's processes (not the ordinary shoppers' nor the server's)
    # a load process whose event loop lags more than this (p99, ms) measures itself, not the server: the run's
    # latencies and notice are then not the server's, and the check load_generator_lagged fails the run
    max_generator_lag_ms: float = 250.0
    # ... or whose loop stopped once for longer than this (ms): the lag is sampled every 50 ms, so a process frozen
    # for tens of seconds at once (starved by other jobs) leaves one sample among thousands and passes the p99
    max_generator_stall_ms: float = 2000.0


@dataclass
class _Shopper:
    kind: str  # "human" | "bot"
    arrive_s: float
    address: str
    card: str
    pre_open: bool
    queued_s: float | None = None  # first 429 queued
    outcome: str | None = None  # "bought" | "sold_out" | "expired" | "error:<status>"
    outcome_s: float | None = None
    order_id: str | None = None
    admitted_latency_ms: float | None = None  # the checkout that bought, request to answer
    bought_started_s: float | None = None
    requests: int = 0
    holds: int = 0  # of the requests, held status requests (GET /v1/queue/{token}?wait=)
    # for sold_out/expired: "hold" (a held status request's answer), "checkout_sold_out" (the gate's answer to a
    # checkout) or "checkout_out_of_stock" (the buy path's: the purchase started and found no unit)
    told_by: str | None = None
    told_sent_s: float | None = None  # when the request that told the outcome was sent


@dataclass
class FlashCrowdResult(ChecksVerdict):
    scenario: ClassVar[str] = "flash_crowd"

    database: str
    config: dict[str, Any]
    units: int = 0
    sold: int = 0
    sellout_notice_max_s: float | None = None
    admitted_p99_ms: float | None = None
    ordinary_p99_ms: float | None = None
    baseline_p99_ms: float | None = None
    bot_units_share: float | None = None
    pre_open_units_share: float | None = None
    totals: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, int] = field(default_factory=dict)
    drain: dict[str, Any] = field(default_factory=dict)


# --- a small HTTP/1.1 client: keep-alive connections, one request at a time each ------------------------------


class _Http:
    def __init__(self, host: str, port: int, max_idle: int = 512) -> None:
        self.host = host
        self.port = port
        self.max_idle = max_idle
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def request(self, method: str, path: str, headers: dict[str, str],
                      body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        # Three tries on fresh connections. A kept-alive connection the server closed while idle (uvicorn drops
        # idle ones after 5 s, and in a backlog many sit idle that long) fails before the request reaches it: such
        # a failure does not use up a try, so a pool of stale connections cannot make a shopper give up. Every
        # POST carries an Idempotency-Key, so sending it again is safe; the lost/duplicate checks verify that.
        attempt = 0
        while attempt < 3:
            reused = bool(self.idle)
            conn = self.idle.pop() if reused else await asyncio.open_connection(self.host, self.port, limit=1 << 20)
            reader, writer = conn
            try:
                head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", f"Content-Length: {len(body)}"]
                head += [f"{k}: {v}" for k, v in headers.items()]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
                raw = await reader.readuntil(b"\r\n\r\n")
                lines = raw.decode("latin-1").split("\r\n")
                status = int(lines[0].split(" ", 2)[1])
                hdrs = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        hdrs[k.strip().lower()] = v.strip()
                payload = await reader.readexactly(int(hdrs.get("content-length", "0")))
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                writer.close()
                if reused:  # a kept-alive connection the server closed: try the next one, or a fresh one
                    continue
                attempt += 1
                if attempt < 3:
                    await asyncio.sleep(0.05 * attempt)
                    continue
                raise
            if hdrs.get("connection", "").lower() == "close" or len(self.idle) >= self.max_idle:
                writer.close()
            else:
                self.idle.append(conn)
            return status, hdrs, payload
        raise ConnectionError("no answer after 3 connections")

    def close(self) -> None:
        for _reader, writer in self.idle:
            writer.close()
        self.idle.clear()


def _body(sku: str, card: str, qty: int = 1) -> bytes:
    return json.dumps({"lines": [{"sku": sku, "qty": qty}], "ship_to": {"country": "US", "postal_code": "94107"},
                       "payment": {"token": card}}).encode()


# --- the load -------------------------------------------------------------------------------------------------


class _Load:
    def __init__(self, http: _Http, key: str, cfg: FlashCrowdConfig, t0: float) -> None:
        self.http = http
        self.key = key
        self.cfg = cfg
        self.t0 = t0  # wall-clock time of load start (shared by the load processes)
        self.ordinary: list[tuple[float, float, int, str | None]] = []  # (started_s, ms, status, order id)
        self.errors: list[str] = []
        self.lags_ms: list[float] = []  # this process's event-loop lag, sampled every 50 ms

    def now_s(self) -> float:
        return time.time() - self.t0

    async def _sleep_until(self, at_s: float) -> None:
        delay = at_s - self.now_s()
        if delay > 0:
            await asyncio.sleep(delay)

    def _headers(self, idem: str, address: str, token: str | None = None) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.key}", "Idempotency-Key": idem, "Content-Type": "application/json",
             "X-Forwarded-For": address}
        if token is not None:
            h["Queue-Token"] = token
        return h

    async def ordinary_shopper(self, i: int, at_s: float, sku: str, rng: random.Random) -> None:
        await self._sleep_until(at_s)
        started = self.now_s()
        address = f"198.51.{(i >> 8) & 255}.{i & 255}"
        try:
            status, _h, payload = await self.http.request(
                "POST", "/v1/checkouts", self._headers(f"ord-{i}", address), _body(sku, f"tok_ord{i}",
                                                                                  rng.randint(1, 3)))
        except (ConnectionError, OSError) as exc:
            self.errors.append(f"ordinary: {exc}")
            self.ordinary.append((started, 1000 * (self.now_s() - started), 0, None))
            return
        order_id = json.loads(payload).get("order_id") if status == 201 else None
        self.ordinary.append((started, 1000 * (self.now_s() - started), status, order_id))

    async def crowd_shopper(self, i: int, s: _Shopper, deadline_s: float) -> None:
        await self._sleep_until(s.arrive_s)
        idem = f"hot-{i}"
        token: str | None = None
        body = _body("HOT", s.card)
        while self.now_s() < deadline_s:
            started = self.now_s()
            try:
                s.requests += 1
                status, hdrs, payload = await self.http.request("POST", "/v1/checkouts",
                                                                self._headers(idem, s.address, token), body)
            except (ConnectionError, OSError) as exc:
                self.errors.append(f"crowd: {exc}")
                await asyncio.sleep(0.2)
                continue
            answered = self.now_s()
            doc = json.loads(payload) if payload else {}
            code = (doc.get("error") or {}).get("code")
            if status == 201:
                s.outcome, s.outcome_s, s.order_id = "bought", answered, doc.get("order_id")
                s.admitted_latency_ms, s.bought_started_s = 1000 * (answered - started), started
                return
            if status == 409 and code in ("sold_out", "out_of_stock"):
                # the gate's sold_out, or the buy path's out_of_stock (a purchase that started and found no unit)
                s.outcome, s.outcome_s, s.told_by = "sold_out", answered, f"checkout_{code}"
                s.told_sent_s = started
                return
            if status == 429 and code == "queued":
                if s.queued_s is None:
                    s.queued_s = answered
                token = doc["error"]["details"][0]["queue_token"]
                if s.kind == "bot":
                    await asyncio.sleep(self.cfg.bot_poll_s)  # bots ignore Retry-After and the held status
                    continue
                state, sent = await self._hold(s, token, deadline_s, float(hdrs.get("retry-after", "1")))
                if state in ("sold_out", "expired"):
                    s.outcome, s.outcome_s, s.told_by, s.told_sent_s = state, self.now_s(), "hold", sent
                    return
                continue  # admitted (or the hold ended): check out with the token
            if status == 429:  # a rate limit: humans wait as told, bots hammer on
                wait = self.cfg.bot_poll_s if s.kind == "bot" else float(hdrs.get("retry-after", "1"))
                await asyncio.sleep(wait)
                continue
            if status >= 500:
                await asyncio.sleep(0.2)
                continue
            s.outcome, s.outcome_s = f"error:{status}:{code}", answered
            return

    async def _hold(self, s: _Shopper, token: str, deadline_s: float,
                    retry_after_s: float = 1.0) -> tuple[str, float]:
        """Hold GET /v1/queue/{token}?wait= until admitted, sold out or expired. With ``hold_s`` 0 the shopper
        polls instead (no ``wait``), every ``retry_after_s`` (the queued checkout's Retry-After): the protocol
        without the long poll, to count what holding saves. Returns the state and when its request was sent."""
        query = f"?wait={self.cfg.hold_s:g}" if self.cfg.hold_s > 0 else ""
        first = True
        while self.now_s() < deadline_s:
            if not query and not first:
                await asyncio.sleep(retry_after_s)
            first = False
            sent = self.now_s()
            try:
                s.requests += 1
                s.holds += 1
                status, hdrs, payload = await self.http.request(
                    "GET", f"/v1/queue/{token}{query}", {"X-Forwarded-For": s.address})
            except (ConnectionError, OSError) as exc:
                self.errors.append(f"hold: {exc}")
                await asyncio.sleep(0.2)
                continue
            if status == 200:
                state = json.loads(payload)["state"]
                if state != "waiting":
                    return state, sent
                if "retry-after" in hdrs:  # not held (the server holds as many as it will): ask again after it
                    await asyncio.sleep(float(hdrs["retry-after"]))
                continue
            await asyncio.sleep(float(hdrs.get("retry-after", "1")))
        return "waiting", self.now_s()


def _crowd(cfg: FlashCrowdConfig) -> list[_Shopper]:
    rng = random.Random(cfg.seed)
    n_bots = int(round(cfg.shoppers * cfg.bot_share))
    out = []
    for i in range(cfg.shoppers - n_bots):
        pre = rng.random() < cfg.pre_open_share
        at = rng.uniform(0, cfg.pre_open_s) if pre else rng.uniform(cfg.pre_open_s, cfg.pre_open_s + cfg.arrive_s)
        out.append(_Shopper("human", at, f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", f"tok_h{i}", pre))
    for j in range(n_bots):
        at = rng.uniform(cfg.pre_open_s - 1.0, cfg.pre_open_s + 2.0)  # the farm rushes the opening
        out.append(_Shopper("bot", at, f"100.{64 + ((j >> 16) & 63)}.{(j >> 8) & 255}.{j & 255}",
                            f"tok_bot{j % max(1, cfg.bot_cards)}", at < cfg.pre_open_s))
    return out


async def _drive_part(url: str, key: str, cfg: FlashCrowdConfig, crowd: list[tuple[int, _Shopper]],
                      ordinary: list[tuple[int, float, str, int]], start_wall: float) -> _Load:
    host, port = url.split("//", 1)[1].split(":")
    http = _Http(host, int(port))
    delay = start_wall - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    load = _Load(http, key, cfg, start_wall)
    deadline_s = cfg.pre_open_s + cfg.arrive_s + cfg.tail_s + cfg.hold_s + 30.0
    tasks = [asyncio.create_task(load.ordinary_shopper(i, at, sku, random.Random(seed)))
             for i, at, sku, seed in ordinary]
    tasks += [asyncio.create_task(load.crowd_shopper(i, s, deadline_s)) for i, s in crowd]
    lag = asyncio.create_task(_watch_lag(load.lags_ms))
    if tasks:
        await asyncio.wait(tasks)
    lag.cancel()
    http.close()
    return load


async def _watch_lag(out: list[float], every_s: float = 0.05) -> None:
    """How late this load process's event loop wakes (ms past each ``every_s``): a late loop would count its own
    lag as the server's latency, so the report carries it beside the latencies it measured."""
    loop = asyncio.get_running_loop()
    while True:
        t = loop.time()
        await asyncio.sleep(every_s)
        out.append(1000 * (loop.time() - t - every_s))


def _drive_process(args) -> tuple[list[_Shopper], list, list[str]]:
    url, key, cfg, crowd, ordinary, start_wall = args
    if crowd and cfg.crowd_nice:
        import os

        os.nice(cfg.crowd_nice)  # the crowd's generators yield the CPU to the server under test when they compete
    load = asyncio.run(_drive_part(url, key, cfg, crowd, ordinary, start_wall))
    return [s for _i, s in crowd], load.ordinary, load.errors, load.lags_ms


def _drive(url: str, key: str, cfg: FlashCrowdConfig, crowd: list[_Shopper], start_wall: float,
           say: Callable[[str], None]) -> tuple[list[_Shopper], _Load]:
    """The load from ``cfg.load_processes`` processes for the crowd and one of its own for the ordinary shoppers,
    so that the ordinary checkouts' latency is the server's and not a busy load generator's. Times are seconds
    after ``start_wall`` on the wall clock every process shares."""
    import multiprocessing as mp

    end_s = cfg.pre_open_s + cfg.arrive_s + cfg.tail_s
    rng = random.Random(cfg.seed + 1)
    n_ordinary = int(cfg.ordinary_rate_per_s * end_s)
    ordinary = [(i, i / cfg.ordinary_rate_per_s, f"SKU{rng.randrange(cfg.n_skus):05d}", cfg.seed * 100_003 + i)
                for i in range(n_ordinary)]
    indexed = list(enumerate(crowd))
    parts = [(url, key, cfg, [], ordinary, start_wall)]
    n = max(1, cfg.load_processes)
    parts += [(url, key, cfg, indexed[k::n], [], start_wall) for k in range(n) if indexed[k::n]]
    say(f"{len(crowd):,} shoppers for HOT and {n_ordinary:,} ordinary checkouts from {len(parts)} processes")
    with mp.get_context("spawn").Pool(len(parts)) as pool:
        results = pool.map(_drive_process, parts)
    shoppers = [s for part, _o, _e, _l in results for s in part]
    load = _Load(None, key, cfg, start_wall)  # type: ignore[arg-type]
    load.generator_lag_ms = {}
    for k, (part, ordinary_out, errors, lags) in enumerate(results):
        load.ordinary.extend(ordinary_out)
        load.errors.extend(errors)
        name = "ordinary" if k == 0 else f"crowd{k}"
        load.generator_lag_ms[name] = {"p99": _percentile(lags, 0.99) if lags else None,
                                       "max": round(max(lags), 1) if lags else None}
    return shoppers, load


# --- one run: fresh store, server, worker, load, drain, checks ------------------------------------------------


def _env(cfg: FlashCrowdConfig, opens_at: datetime, redis_url: str | None, run_id: str) -> dict[str, str]:
    env = {
        **simulator_env(cfg.seed),
        "SHOPFLOOR_WAITROOM_PRODUCTS": json.dumps({"HOT": {"opens_at": opens_at.isoformat()}}),
        "SHOPFLOOR_WAITROOM_MAX_HOLD_S": str(cfg.hold_s),
        "SHOPFLOOR_RATELIMIT_CHECKOUT_PER_ADDRESS": json.dumps({"rate_per_s": 1, "burst": 4}),
        "SHOPFLOOR_RATELIMIT_READS_PER_ADDRESS": json.dumps({"rate_per_s": 5, "burst": 20}),
    }
    if redis_url:
        env.update({"SHOPFLOOR_REDIS_URL": redis_url, "SHOPFLOOR_REDIS_KEY_PREFIX": f"gameday-{run_id}:",
                    "SHOPFLOOR_WAITROOM_SECRET": f"gameday-secret-{run_id}"})
    return env


def _one_run(database_url: str | None, cfg: FlashCrowdConfig, with_crowd: bool, tmp: Path, redis_url: str | None,
             say: Callable[[str], None]) -> dict[str, Any]:
    import uuid

    name = "crowd" if with_crowd else "baseline"
    if database_url:
        ensure_fresh_store(database_url)
    url_db = database_url or f"sqlite:///{tmp / f'{name}.db'}"
    say(f"{name}: seeding the store")
    key = seed_bench_store(url_db, cfg.n_skus, cfg.units)
    initial = stock_snapshot(url_db)
    opens_at = datetime.now(timezone.utc) + timedelta(seconds=cfg.start_allowance_s + cfg.pre_open_s)
    env = _env(cfg, opens_at, redis_url, uuid.uuid4().hex[:12])
    sim = SimulatorProcess(url_db, env=env, log_path=tmp / f"{name}-simulators.log") if cfg.simulator_process else None
    app_env = env if sim is None else {**env, "SHOPFLOOR_PAYMENTS_SIM_URL": sim.url}
    server = ServerProcess(url_db, env=app_env, log_path=tmp / f"{name}-server.log", workers=cfg.server_workers)
    worker = WorkerProcess(url_db, env=app_env, log_path=tmp / f"{name}-worker.log")
    crowd = _crowd(cfg) if with_crowd else []
    edge = None  # the EdgeLayout of the shield node, when the shoppers go through it
    try:
        say(f"{name}: starting {'the simulated processors, ' if sim is not None else ''}server and worker")
        if sim is not None:
            sim.start()
        server.start()
        worker.start()
        entry_url = server.url
        if cfg.through_shield:
            edge = _start_shield(server.url, tmp / f"{name}-edge")
            entry_url = edge.shield.url
        start_wall = opens_at.timestamp() - cfg.pre_open_s
        late_s = max(0.0, time.time() - start_wall)  # the server took longer to start than allowed for
        say(f"{name}: load")
        cpu_before = _tree_cpu_s(server.proc.pid)
        sim_cpu_before = _tree_cpu_s(sim.proc.pid) if sim is not None else 0.0
        overflows_before = _listen_overflows()
        sampler = _CpuTimeline(server.proc.pid, start_wall)
        sampler.start()
        try:
            crowd, load = _drive(entry_url, key, cfg, crowd, start_wall, say)
        finally:
            sampler.stop()
        server_cpu_s = _tree_cpu_s(server.proc.pid) - cpu_before
        sim_cpu_s = _tree_cpu_s(sim.proc.pid) - sim_cpu_before if sim is not None else None
        listen_overflows = _listen_overflows() - overflows_before
        say(f"{name}: draining the outbox")
        drained, checks = drain_and_check(url_db, 120, cfg.units, initial)
        import httpx

        with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {key}"}) as admin:
            processors = list(admin.get(server.url + "/v1/admin/processors").json()["order"])
            alerts = admin.get(server.url + "/v1/tower/alerts").json()["alerts"]
            metrics = admin.get(server.url + "/metrics").text
            room_view = admin.get(server.url + "/v1/tower/waitroom").json()
            rooms = room_view["products"]
        _, double_captures, double_auth, _ = ledger_anomalies(server.url, key, processors,
                                                              checks["ended_unpaid_orders"])
    finally:
        if edge is not None:
            from ..edge import stop_all

            stop_all(edge)
        worker.stop()
        server.stop()
        if sim is not None:
            sim.stop()
        if redis_url:
            _forget_redis_prefix(redis_url, env["SHOPFLOOR_REDIS_KEY_PREFIX"])
    created = [o for _s, _ms, status, o in load.ordinary if status == 201 and o]
    created += [s.order_id for s in crowd if s.outcome == "bought" and s.order_id]
    store = verify_store(url_db, created)
    hot = next((r for r in rooms if r["sku"] == "HOT"), {})
    load.listen_overflows = listen_overflows
    return {"load": load, "crowd": crowd, "checks": checks, "load_average": [round(x, 1) for x in os.getloadavg()],
            "sold_out_seen_s": (None if hot.get("sold_out_seen_at") is None
                                else round(hot["sold_out_seen_at"] - start_wall, 3)),
            "held_told_sold_out": hot.get("held_told_sold_out"), "sold_out_in_protocol": hot.get("sold_out_in_protocol"),
            "queued_in_protocol": hot.get("queued_in_protocol"),
            "queue_status_in_protocol": room_view.get("queue_status_in_protocol"),
            "store": store, "alerts": alerts, "metrics": metrics,
            "server_cpu_s": round(server_cpu_s, 1), "late_start_s": round(late_s, 1),
            "simulator_cpu_s": None if sim_cpu_s is None else round(sim_cpu_s, 3),
            "server_cpu_timeline": sampler.timeline(),
            "double_captures": double_captures, "double_auth": double_auth,
            "drain": {"seconds": drained["seconds"], "outbox_pending": drained["outbox_pending"],
                      "payment_pending_orders": drained["payment_pending_orders"]}}


def _start_shield(origin_url: str, root: Path) -> Any:
    """One nginx node of the edge's shield tier in front of ``origin_url`` (the edge's own config template), started;
    returns its EdgeLayout."""
    from ..edge import EdgeLayout, start_all, write_configs
    from ..edge.layout import SHIELD, Node
    from ..runtime import free_port

    from importlib import resources

    layout = EdgeLayout(root, origin_url, (), Node(SHIELD, "shield", free_port(), root / SHIELD),
                        origin_timeout_s=30.0)
    # every held status request takes two of nginx's connections (the shopper's and the origin's)
    template = resources.files("shopfloor.edge").joinpath("nginx.conf.template").read_text()
    write_configs(layout, template.replace("worker_connections 4096;", "worker_connections 65536;")
                  .replace("worker_processes 1;", "worker_processes 1;\nworker_rlimit_nofile 131072;"))
    start_all(layout)
    return layout


def _forget_redis_prefix(redis_url: str, prefix: str) -> None:
    """The run's queue and buckets are of no use once it is over."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


class _CpuTimeline:
    """The server's CPU use (cores, its process tree) per ``step_s`` of load time, sampled from a thread of the
    harness: where a backlog builds up shows as a run of steps at the one process's full core."""

    def __init__(self, pid: int, start_wall: float, step_s: float = 0.5) -> None:
        import threading

        self.pid = pid
        self.start_wall = start_wall
        self.step_s = step_s
        self.samples: list[tuple[float, float]] = []  # (s after start_wall, CPU seconds so far)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-timeline", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time() - self.start_wall, _tree_cpu_s(self.pid)))
            self._stop.wait(self.step_s)

    def timeline(self) -> list[list[float]]:
        """[[from_s, cores], ...] for the steps from the load's start on."""
        out = []
        for (t0, c0), (t1, c1) in zip(self.samples, self.samples[1:]):
            if t1 > 0 and t1 > t0:
                out.append([round(t0, 2), round((c1 - c0) / (t1 - t0), 2)])
        return out


def _listen_overflows() -> int:
    """The kernel's count of connections dropped because a listen queue was full (machine-wide, every server on
    it; Linux ``/proc/net/netstat``; 0 where unreadable). A dropped connection is retried by the client after 1 s,
    then 3 s, 7 s: time the report would count as the server's."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return 0
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            row = dict(zip(names.split()[1:], values.split()[1:]))
            return int(row.get("ListenOverflows", 0))
    return 0


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds used so far by a process and its children (the server's supervisor and workers)."""
    import psutil

    try:
        root = psutil.Process(pid)
        total = 0.0
        for p in [root, *root.children(recursive=True)]:
            t = p.cpu_times()
            total += t.user + t.system
        return total
    except psutil.Error:
        return 0.0


def _timeline(samples: list[tuple[float, float, int, str | None]], step_s: float = 2.0) -> list[dict[str, Any]]:
    """Ordinary checkouts per ``step_s`` of start time: count and p99 latency."""
    buckets: dict[int, list[float]] = {}
    for started, ms, _status, _order in samples:
        buckets.setdefault(int(started // step_s), []).append(ms)
    return [{"from_s": k * step_s, "n": len(v), "p99_ms": _percentile(v, 0.99)} for k, v in sorted(buckets.items())]


def _notice_tail(waiting: list[_Shopper], sellout_s: float | None, over_s: float = 1.0) -> dict[str, Any]:
    """Who heard of the sell-out more than ``over_s`` after it: counts by kind and channel, the sending and the
    server's answering delays (p50/max, s), and the ten latest."""
    if sellout_s is None:
        return {}
    late = sorted((s for s in waiting if s.outcome_s - sellout_s > over_s), key=lambda s: s.outcome_s)
    groups: dict[str, dict[str, Any]] = {}
    for key in sorted({f"{s.kind}:{s.told_by}" for s in late}):
        members = [s for s in late if f"{s.kind}:{s.told_by}" == key]
        sent = [s.told_sent_s - sellout_s for s in members if s.told_sent_s is not None]
        served = [s.outcome_s - s.told_sent_s for s in members if s.told_sent_s is not None]
        groups[key] = {"n": len(members),
                       "sent_after_sellout_s": {"p50": _percentile(sent, 0.5), "max": round(max(sent), 3)}
                       if sent else None,
                       "answer_took_s": {"p50": _percentile(served, 0.5), "max": round(max(served), 3)}
                       if served else None}
    latest = [{"kind": s.kind, "told_by": s.told_by, "pre_open": s.pre_open, "arrive_s": round(s.arrive_s, 3),
               "queued_s": round(s.queued_s, 3), "requests": s.requests,
               "sent_s": None if s.told_sent_s is None else round(s.told_sent_s - sellout_s, 3),
               "answered_s": round(s.outcome_s - sellout_s, 3)} for s in late[-10:]]
    return {"over_s": over_s, "n": len(late), "groups": groups, "latest": latest}


def _refusals(metrics: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith("shopfloor_rate_limit_refusals_total{"):
            label = line.split('limit="', 1)[1].split('"', 1)[0]
            out[f"rate_limit:{label}"] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("shopfloor_waitroom_decisions_total{"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            out[f"waitroom:{outcome}"] = out.get(f"waitroom:{outcome}", 0) + float(line.rsplit(" ", 1)[1])
    return out


def run_flash_crowd(database_url: str | None = None, baseline_database_url: str | None = None, *,
                    config: FlashCrowdConfig | None = None, redis_url: str | None = None,
                    progress: Callable[[str], None] | None = None,
                    workdir: Path | None = None) -> FlashCrowdResult:
    """Run the baseline and the crowd and return the report. ``database_url``/``baseline_database_url``: empty
    databases (default: fresh SQLite files in a temporary folder)."""
    from dataclasses import asdict

    from ..runtime import interrupt_on_termination

    cfg = config or FlashCrowdConfig()
    say = progress or (lambda _msg: None)
    tmp = workdir or Path(tempfile.mkdtemp(prefix="sf-flash-crowd-"))
    if (database_url is None) != (baseline_database_url is None):
        raise ValueError("give both database URLs (the crowd's and the baseline's) or neither")
    if cfg.server_workers > 1 and not redis_url:
        raise ValueError("server_workers > 1 needs redis_url: each process would keep its own queue otherwise")
    restore = interrupt_on_termination()
    try:
        base = _one_run(baseline_database_url, cfg, False, tmp, redis_url, say)
        run = _one_run(database_url, cfg, True, tmp, redis_url, say)
    finally:
        restore()
    url = database_url or "sqlite"
    result = FlashCrowdResult("postgresql" if url.startswith("postgres") else "sqlite", asdict(cfg))
    crowd: list[_Shopper] = run["crowd"]
    bought = [s for s in crowd if s.outcome == "bought"]
    result.units = cfg.units
    result.sold = run["checks"]["flash_sold"]
    # sell-out: the start of the last checkout that bought a unit (the reservation happened after it started)
    sellout_s = max((s.bought_started_s for s in bought), default=None)
    waiting_then = [s for s in crowd if s.outcome == "sold_out" and s.queued_s is not None and sellout_s is not None
                    and s.queued_s <= sellout_s]
    notices = [s.outcome_s - sellout_s for s in waiting_then]
    result.sellout_notice_max_s = round(max(notices), 3) if notices else None
    result.admitted_p99_ms = _percentile([s.admitted_latency_ms for s in bought], 0.99)
    result.ordinary_p99_ms = _percentile([ms for _s, ms, st, _o in run["load"].ordinary if st == 201], 0.99)
    result.baseline_p99_ms = _percentile([ms for _s, ms, st, _o in base["load"].ordinary if st == 201], 0.99)
    result.bot_units_share = round(sum(s.kind == "bot" for s in bought) / len(bought), 3) if bought else None
    result.pre_open_units_share = round(sum(s.pre_open for s in bought) / len(bought), 3) if bought else None
    outcomes: dict[str, int] = {}
    for s in crowd:
        outcomes[f"{s.kind}:{s.outcome or 'unanswered'}"] = outcomes.get(f"{s.kind}:{s.outcome or 'unanswered'}",
                                                                          0) + 1
    target = cfg.p99_factor_target * (result.baseline_p99_ms or 0)
    result.totals = {
        "outcomes": dict(sorted(outcomes.items())),
        "requests": sum(s.requests for s in crowd) + len(run["load"].ordinary),
        # the crowd's requests by kind: checkouts (bots' and humans') and held status requests
        "crowd_requests": {"checkouts_humans": sum(s.requests - s.holds for s in crowd if s.kind == "human"),
                           "checkouts_bots": sum(s.requests for s in crowd if s.kind == "bot"),
                           "holds": sum(s.holds for s in crowd)},
        # the notice by how the waiting shopper heard it: its held status request, the gate's 409 sold_out to a
        # checkout, or the buy path's 409 out_of_stock (an admitted shopper whose purchase started and lost)
        "sellout_notice_by": {by: {"n": len(v), "p50_s": _percentile(v, 0.5), "max_s": round(max(v), 3)}
                              for by in ("hold", "checkout_sold_out", "checkout_out_of_stock")
                              for v in [[s.outcome_s - sellout_s for s in waiting_then if s.told_by == by]] if v},
        # the notice's tail: the last told, with when their telling request was sent and answered (s after the
        # sell-out); "sent late" is the shopper's own timing (a bot's next retry), "answered late" the server's
        "sellout_notice_tail": _notice_tail(waiting_then, sellout_s),
        "bots": sum(s.kind == "bot" for s in crowd),
        "waiting_at_sellout": len(waiting_then),
        "sellout_at_s": None if sellout_s is None else round(sellout_s, 3),
        # the checkout that bought the last unit: how long after its start (the sell-out) it was answered; the
        # server knows of the sell-out from its reservation on, so the notice cannot come much sooner than this
        "sellout_buyer_answered_after_s": max(((s.outcome_s - s.bought_started_s, s.bought_started_s)
                                                for s in bought), key=lambda t: t[1], default=(None,))[0],
        "sellout_notice_p50_s": _percentile(notices, 0.5) if notices else None,
        # the server's side of the notice (one process): when it first read HOT as sold out, seconds after the
        # sell-out, and how many held status requests it then answered at once
        "sellout_seen_by_server_after_s": (None if run["sold_out_seen_s"] is None or sellout_s is None
                                           else round(run["sold_out_seen_s"] - sellout_s, 3)),
        "held_told_sold_out_at_once": run["held_told_sold_out"],
        # new arrivals' checkouts of the sold-out product answered in the server's HTTP protocol (one process)
        "sold_out_in_protocol": run["sold_out_in_protocol"],
        "queued_in_protocol": run.get("queued_in_protocol"),
        # queue status requests answered, and held, in the server's HTTP protocol (one process)
        "queue_status_in_protocol": run.get("queue_status_in_protocol"),
        "ordinary_checkouts": len(run["load"].ordinary),
        "ordinary_not_201": sum(1 for _s, _ms, st, _o in run["load"].ordinary if st != 201),
        "baseline_checkouts": len(base["load"].ordinary),
        "refusals": _refusals(run["metrics"]),
        "bot_alerts": [a["message"] for a in run["alerts"] if a.get("kind") == "bot_pattern"],
        "client_errors": len(run["load"].errors) + len(base["load"].errors),
        "server_cpu_s": {"crowd": run["server_cpu_s"], "baseline": base["server_cpu_s"]},
        # the simulated gateway's own process (None when it ran inside the server: then it is in server_cpu_s)
        "simulator_cpu_s": {"crowd": run["simulator_cpu_s"], "baseline": base["simulator_cpu_s"]},
        # the server's CPU (cores) per 0.5 s of the crowd run: the backlog after the opening shows as full steps
        "server_cpu_timeline": run["server_cpu_timeline"],
        # each load process's own event-loop lag (ms): small next to the latencies means they are the server's
        "generator_lag_ms": {"crowd": run["load"].generator_lag_ms, "baseline": base["load"].generator_lag_ms},
        "load_average": {"crowd": run["load_average"], "baseline": base["load_average"]},
        # connections the kernel dropped from full listen queues during the load (machine-wide)
        "listen_overflows": {"crowd": run["load"].listen_overflows, "baseline": base["load"].listen_overflows},
        "late_start_s": {"crowd": run["late_start_s"], "baseline": base["late_start_s"]},
        "ordinary_timeline": {"crowd": _timeline(run["load"].ordinary), "baseline": _timeline(base["load"].ordinary)},
    }
    result.drain = {"crowd": run["drain"], "baseline": base["drain"]}
    result.checks = {
        "lost": run["store"]["lost"] + base["store"]["lost"],
        "oversold": run["store"]["oversold"] + base["store"]["oversold"],
        "flash_oversold": run["checks"]["flash_oversold"],
        "sold_not_units": abs(result.sold - cfg.units),
        "duplicate_orders": run["store"]["duplicate_orders"] + base["store"]["duplicate_orders"],
        "double_captures": run["double_captures"] + base["double_captures"],
        "double_authorizations": run["double_auth"] + base["double_auth"],
        "stock_not_conserved": run["checks"]["stock_not_conserved"] + base["checks"]["stock_not_conserved"],
        "unanswered_shoppers": sum(1 for s in crowd if s.outcome is None)
                               + sum(1 for _s, _ms, st, _o in run["load"].ordinary if st == 0),
        "sellout_notice_over_target": sum(1 for n in notices if n > cfg.notice_target_s),
        # nobody was waiting when the product sold out (e.g. the load started after the opening): not measured
        "sellout_notice_not_measured": int(not notices),
        "admitted_p99_over_target": int(result.admitted_p99_ms is None or result.admitted_p99_ms > target),
        "ordinary_p99_over_target": int(result.ordinary_p99_ms is None or result.ordinary_p99_ms > target),
        "load_generator_lagged": sum(1 for lags in (run["load"].generator_lag_ms, base["load"].generator_lag_ms)
                                     for lag in lags.values()
                                     if (lag["p99"] is not None and lag["p99"] > cfg.max_generator_lag_ms)
                                     or (lag["max"] is not None and lag["max"] > cfg.max_generator_stall_ms)),
    }
    return result
