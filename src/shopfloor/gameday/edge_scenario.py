"""The edge game day: shoppers browse (product pages, search) and buy through two nginx edge nodes, a shield and
the real origin, while an edge node dies, the origin stalls and dies, and a SKU sells out in one order.

Everything runs as its own process: ``shopfloor serve`` (the origin), ``shopfloor worker``, three nginx instances
(``shopfloor edge``'s template and process control) and the purger (``shopfloor edge purger``). Before the load,
the capacity warm list (built from the shoppers' expected demand) is requested through both edge nodes.

What is measured, from the shoppers' side and the edges' access logs:

* product-page availability: a view counts when it got a product page (200 with an ``availability``) within its
  budget, trying the other edge node after a refused connection or a 5xx (what DNS failover does for a dead PoP);
* edge hit ratio: the shoppers' product-page requests at the edge nodes answered from the node's own copy
  (HIT, STALE, UPDATING, REVALIDATED); warm-up and purge requests are left out;
* stale ``in_stock`` after the sell-out: a watcher reads the sold-out SKU's page through every edge node and
  destination every 100 ms; the figure is the latest answer still saying ``in_stock``, counted from the moment
  the sell-out order was sent.

After the load the origin is back, the worker drains, and the buy path's checks (nothing lost, oversold,
duplicated or charged twice) run as in the checkout game day.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, ClassVar

import httpx

from ..runtime import ServerProcess, WorkerProcess, child_env, free_port
from .checks import buy_path_checks, stock_snapshot, verify_store
from .faults import EDGE_SCHEDULE, Fault, heal, play
from .harness import drain_and_check, ledger_anomalies, simulator_env
from .report import ChecksVerdict
from .seed import ensure_fresh_store, seed_bench_store, seed_sku

SHOPPER_AGENT = "shopfloor-gameday-shopper"
#: The SKU that sells out during the run, and its units (>= the "plenty" band: cached for minutes until purged).
SELLOUT_SKU = "LAST"
SELLOUT_UNITS = 60
POSTAL_CODES = ("94107", "10001", "60601")
VIEW_TIMEOUT_S = 3.0
#: One page every 25 ms per browsing shopper at most (a load generator, not a person: many shoppers in one).
VIEW_PACE_S = 0.025
STALE_LIMIT_S = 5.0
#: Every simulated shopper shares the load generator's one address, so the edge nodes' per-address limits (meant
#: for one person or one bot) would refuse the whole crowd: the game days lift them. The limits themselves are
#: tested on their own (tests/integration/test_edge_rate_limit.py).
SHARED_ADDRESS_LIMITS = {"edge_checkout_rate_per_min": 600_000, "edge_rate_limit_rps": 10_000,
                         "edge_limit_burst": 10_000}
TARGET_AVAILABILITY = 0.999
TARGET_HIT_RATIO = 0.90


@dataclass
class EdgeGameDayResult(ChecksVerdict):
    scenario: ClassVar[str] = "edge"

    database: str
    seconds: float
    browsers: int
    faults: list[dict[str, Any]] = field(default_factory=list)
    product_page_availability: float | None = None
    edge_hit_ratio: float | None = None
    stale_in_stock_after_sellout_s: float | None = None
    nodes: dict[str, Any] = field(default_factory=dict)
    phases: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, Any] = field(default_factory=dict)
    drain: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, int] = field(default_factory=dict)



@dataclass
class _View:
    at: float
    ok: bool
    status: int | None
    tries: int
    latency_ms: float


class _Edges:
    """The shoppers' side: edge URLs in preference order per shopper, failing over as DNS would."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls

    def get(self, client: httpx.Client, first: int, path: str) -> tuple[httpx.Response | None, int]:
        tries = 0
        for k in range(len(self.urls)):
            url = self.urls[(first + k) % len(self.urls)]
            tries += 1
            try:
                resp = client.get(url + path)
            except httpx.TransportError:
                continue
            if resp.status_code < 500:
                return resp, tries
        return None, tries

    def post(self, client: httpx.Client, first: int, path: str, body: dict, headers: dict) -> httpx.Response:
        """POST to the shopper's edge node, or the next one when the connection is refused (nothing was sent)."""
        last: Exception | None = None
        for k in range(len(self.urls)):
            try:
                return client.post(self.urls[(first + k) % len(self.urls)] + path, json=body, headers=headers)
            except httpx.ConnectError as exc:
                last = exc
        raise last or httpx.ConnectError("no edge node")


class _Load:
    def __init__(self, edges: _Edges, key: str, n_skus: int, seed: int, t0: float, views_per_order: int) -> None:
        self.edges, self.key, self.n_skus, self.seed, self.t0 = edges, key, n_skus, seed, t0
        self.views_per_order = views_per_order
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.views: list[_View] = []
        self.searches = {"ok": 0, "failed": 0}
        self.checkouts: list[dict[str, Any]] = []
        self.order_ids: list[str] = []
        self.unclean_checkout_failures = 0
        self.replays = 0
        self.replay_mismatches = 0
        weights = [1.0 / (rank + 1) ** 0.9 for rank in range(n_skus)]  # Zipf-like popularity
        self.skus = [f"SKU{i:05d}" for i in range(n_skus)]
        self.weights = weights

    def start(self, browsers: int, buyers: int, *also: Callable[[], None]) -> list[threading.Thread]:
        """Start ``browsers`` browsing and ``buyers`` buying shoppers, and the watchers in ``also`` beside them, each
        in a daemon thread; returns the threads."""
        threads = [threading.Thread(target=self.browse, args=(i,), daemon=True) for i in range(browsers)]
        threads += [threading.Thread(target=self.buy, args=(i,), daemon=True) for i in range(buyers)]
        threads += [threading.Thread(target=run, daemon=True) for run in also]
        for t in threads:
            t.start()
        return threads

    def browse(self, i: int) -> None:
        rng = random.Random(self.seed * 1000 + i)
        with httpx.Client(timeout=VIEW_TIMEOUT_S, headers={"User-Agent": SHOPPER_AGENT}) as client:
            while not self.stop.is_set():
                started = time.monotonic()
                if rng.random() < 0.1:
                    resp, _ = self.edges.get(client, i, "/v1/products?q=item&limit=20")
                    with self.lock:
                        self.searches["ok" if resp is not None and resp.status_code == 200 else "failed"] += 1
                    time.sleep(max(0.0, VIEW_PACE_S - (time.monotonic() - started)))
                    continue
                sku = SELLOUT_SKU if rng.random() < 0.03 else rng.choices(self.skus, self.weights)[0]
                path = f"/v1/products/{sku}?country=US&postal_code={rng.choice(POSTAL_CODES)}"
                resp, tries = self.edges.get(client, i, path)
                ok = False
                if resp is not None and resp.status_code == 200:
                    try:
                        ok = "availability" in resp.json()
                    except ValueError:
                        ok = False
                view = _View(started - self.t0, ok, None if resp is None else resp.status_code, tries,
                             1000 * (time.monotonic() - started))
                with self.lock:
                    self.views.append(view)
                # A shopper opens the next page at her own pace, whether this one came or not: a failed view
                # is not retried faster, so phases weigh the same with and without the edge.
                time.sleep(max(0.0, VIEW_PACE_S - (time.monotonic() - started)))

    def buy(self, i: int) -> None:
        rng = random.Random(self.seed * 7919 + i)
        with httpx.Client(timeout=40.0, headers={"User-Agent": SHOPPER_AGENT}) as client:
            while not self.stop.is_set():
                with self.lock:
                    behind = len(self.views) / self.views_per_order > len(self.checkouts)
                if not behind:
                    time.sleep(0.02)
                    continue
                sku = rng.choices(self.skus, self.weights)[0]
                body = {"lines": [{"sku": sku, "qty": rng.randint(1, 2)}],
                        "ship_to": {"country": "US", "postal_code": rng.choice(POSTAL_CODES)},
                        "payment": {"token": f"tok_buyer{i}"}}
                outcome = self.checkout(client, body, i)
                if outcome["status"] == 201 and rng.random() < 0.05:  # a double-clicked "buy"
                    again = self.checkout(client, body, i, key=outcome["key"])
                    if again["status"] is None:  # the load phase ended before the replay was answered
                        continue
                    with self.lock:
                        self.replays += 1
                        self.replay_mismatches += int(again["status"] != 201
                                                      or again["order_id"] != outcome["order_id"])

    def checkout(self, client: httpx.Client, body: dict, i: int, key: str | None = None) -> dict[str, Any]:
        """POST through the edge, the same Idempotency-Key until answered with anything but a 5xx (or the load
        ends). A 5xx must be the error envelope: anything else is an unclean failure."""
        key = key or uuid.uuid4().hex
        headers = {"Authorization": f"Bearer {self.key}", "Idempotency-Key": key}
        started = time.monotonic()
        tries, status, order_id, clean_5xx = 0, None, None, 0
        while not self.stop.is_set():
            tries += 1
            try:
                resp = self.edges.post(client, i, "/v1/checkouts", body, headers)
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            if resp.status_code >= 500:
                try:
                    enveloped = "error" in resp.json()
                except ValueError:
                    enveloped = False
                with self.lock:
                    self.unclean_checkout_failures += int(not enveloped)
                clean_5xx += int(enveloped)
                time.sleep(0.2)
                continue
            status = resp.status_code
            if status == 201:
                try:
                    order_id = resp.json().get("order_id")
                except ValueError:
                    order_id = None
            break
        outcome = {"key": key, "status": status, "order_id": order_id, "tries": tries, "clean_5xx": clean_5xx,
                   "at": started - self.t0, "latency_ms": 1000 * (time.monotonic() - started)}
        with self.lock:
            self.checkouts.append(outcome)
            if order_id:
                self.order_ids.append(order_id)
        return outcome


class _SelloutWatch:
    """Reads the sell-out SKU's page through every edge node and destination every 100 ms."""

    def __init__(self, edge_urls: list[str], t0: float) -> None:
        self.edge_urls, self.t0 = edge_urls, t0
        self.stop = threading.Event()
        self.observations: list[tuple[float, float, str, str]] = []  # (sent, answered, edge, availability)

    def run(self) -> None:
        with httpx.Client(timeout=VIEW_TIMEOUT_S, headers={"User-Agent": "shopfloor-gameday-watch"}) as client:
            while not self.stop.is_set():
                for url in self.edge_urls:
                    for postal in POSTAL_CODES:
                        sent = time.monotonic() - self.t0
                        try:
                            resp = client.get(f"{url}/v1/products/{SELLOUT_SKU}?country=US&postal_code={postal}")
                            availability = resp.json().get("availability", "?") if resp.status_code == 200 else "-"
                        except (httpx.HTTPError, ValueError):
                            availability = "-"
                        self.observations.append((sent, time.monotonic() - self.t0, url, availability))
                self.stop.wait(0.1)


class _OriginStall:
    """SIGSTOP / SIGCONT the origin's process group on a duty cycle until stopped."""

    def __init__(self, server: ServerProcess, stopped_s: float = 0.9, running_s: float = 0.3) -> None:
        self.server, self.stopped_s, self.running_s = server, stopped_s, running_s
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.server.proc.pid, sig)
        except (ProcessLookupError, AttributeError):
            pass

    def _run(self) -> None:
        while not self.done.is_set():
            self._signal(signal.SIGSTOP)
            self.done.wait(self.stopped_s)
            self._signal(signal.SIGCONT)
            self.done.wait(self.running_s)
        self._signal(signal.SIGCONT)

    def start(self) -> None:
        self.thread.start()

    def end(self) -> None:
        self.done.set()
        self.thread.join(timeout=5)
        self._signal(signal.SIGCONT)


def _purger(env: dict, log_path: Path, timeout: float = 60.0) -> subprocess.Popen:
    out = open(log_path, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "shopfloor", "edge", "purger"], env=env, stdout=out,
                            stderr=out, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the edge purger exited with {proc.returncode} (log: {log_path})")
        if log_path.exists() and '"ready": true' in log_path.read_text(errors="replace"):
            return proc
        time.sleep(0.1)
    raise RuntimeError(f"the edge purger did not start (log: {log_path})")


def _seed_sellout(database_url: str) -> None:
    seed_sku(database_url, SELLOUT_SKU, "Last chance item", "promo", 1999, "us-west-1", SELLOUT_UNITS)


def _warm(layout, n_skus: int, weights: list[float]) -> dict[str, int]:
    """The capacity plan's warm list, from the shoppers' expected demand, through both edge nodes."""
    import pandas as pd

    from ..edge import EdgeWarmer, warm_paths
    from ..planning.capacity import cache_warm_list

    start = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    frame = pd.DataFrame({"unique_id": [f"SKU{i:05d}" for i in range(n_skus)] + [SELLOUT_SKU],
                          "ds": [start] * (n_skus + 1), "mean": [w * 1000 for w in weights] + [30.0]})
    entries = [e.to_dict() for e in cache_warm_list(frame, window_start=start,
                                                    window_end=start + timedelta(hours=1), top_n=n_skus + 1)]
    paths = warm_paths(entries, [("US", p) for p in POSTAL_CODES])
    results = EdgeWarmer(layout).warm(paths)
    ok = sum(1 for v in results.values() if isinstance(v, int) and v < 400)
    return {"paths": len(paths), "requests": len(results), "ok": ok}


def _phases(views: list[_View], boundaries: list[tuple[float, str]], end_s: float) -> list[dict[str, Any]]:
    edges = [(0.0, "steady state")] + boundaries
    out = []
    for k, (start, label) in enumerate(edges):
        stop = edges[k + 1][0] if k + 1 < len(edges) else end_s + 1e9
        mine = [v for v in views if start <= v.at < stop]
        ok = sum(1 for v in mine if v.ok)
        lat = sorted(v.latency_ms for v in mine if v.ok)
        out.append({"from_s": round(start, 1), "phase": label, "views": len(mine), "ok": ok,
                    "availability": round(ok / len(mine), 5) if mine else None,
                    "failed_over": sum(1 for v in mine if v.tries > 1),
                    "p99_ms": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1) if lat else None})
    return out


def run_edge_gameday(database_url: str | None = None, *, seconds: float = 60.0, browsers: int = 8, buyers: int = 2,
                     seed: int = 7, n_skus: int = 60, views_per_order: int = 30, page_ttl_s: int = 10,
                     drain_timeout_s: float = 120.0, through_edge: bool = True, warm: bool = True,
                     schedule: tuple[Fault, ...] = EDGE_SCHEDULE, progress: Callable[[str], None] | None = None,
                     workdir: Path | None = None) -> EdgeGameDayResult:
    """Run the edge game day and return its report. ``database_url``: an empty database (default: a fresh SQLite
    file). Needs nginx (tools/install-nginx.sh).

    ``page_ttl_s`` caps every product page's max-age (the production bands are minutes and seconds): pages expire
    many times during a short run, so background updates, stale serves while the origin fails, and the origin's
    own load are all exercised rather than every view being a plain hit of the warm-up's copy.

    ``through_edge=False`` is the baseline: the same shoppers, load and origin faults straight against the origin
    (no nginx, no purger; the edge faults do nothing), so the edge's effect is a ratio measured in the same way.
    ``warm=False`` skips the warm-up: the edges start cold."""
    from ..config import Settings
    from ..edge import EdgeLayout, cache_stats, kill_node, nginx_binary, per_minute, read_log, start_all, start_node
    from ..edge import stop_all, write_configs
    from ..runtime import interrupt_on_termination

    say = progress or (lambda _msg: None)
    if through_edge:
        nginx_binary()  # fails early, naming the install script, when nginx is missing
    tmp = workdir or Path(tempfile.mkdtemp(prefix="sf-gameday-edge-"))
    if database_url:
        ensure_fresh_store(database_url)
    url_db = database_url or f"sqlite:///{tmp / 'gameday.db'}"
    say("seeding the store")
    key = seed_bench_store(url_db, n_skus, 150)
    _seed_sellout(url_db)
    initial = stock_snapshot(url_db)
    env = {**simulator_env(seed),
           # The sell-out order is one large order: the fraud screen must not hold it for review here.
           "SHOPFLOOR_FRAUD_AMOUNT_OUTLIER_FACTOR": "1000000",
           "SHOPFLOOR_FRAUD_HOLD_THRESHOLD": "1000000",
           "SHOPFLOOR_STOREFRONT_MAX_AGE_PLENTY_S": str(page_ttl_s),
           "SHOPFLOOR_STOREFRONT_MAX_AGE_LOW_S": str(min(page_ttl_s, 30)),
           "SHOPFLOOR_STOREFRONT_MAX_AGE_UNAVAILABLE_S": str(page_ttl_s),
           "SHOPFLOOR_STOREFRONT_MAX_AGE_LISTING_S": str(page_ttl_s)}
    server = ServerProcess(url_db, env=env, log_path=tmp / "server.log")
    worker = WorkerProcess(url_db, env=env, log_path=tmp / "worker.log")
    ports = [free_port() for _ in range(3)]
    edge_env = {**env, "SHOPFLOOR_EDGE_DIR": str(tmp / "edge"), "SHOPFLOOR_EDGE_ORIGIN_URL": server.url,
                "SHOPFLOOR_EDGE_NODE_PORTS": json.dumps(ports[:2]), "SHOPFLOOR_EDGE_SHIELD_PORT": str(ports[2])}
    layout = EdgeLayout.from_settings(Settings(database_url=url_db, edge_dir=tmp / "edge",
                                               edge_origin_url=server.url, edge_node_ports=ports[:2],
                                               edge_shield_port=ports[2], **SHARED_ADDRESS_LIMITS))
    by_name = {n.name: n for n in layout.nodes}
    result = EdgeGameDayResult("postgresql" if url_db.startswith("postgres") else "sqlite", seconds, browsers)
    result.totals["page_ttl_s"] = page_ttl_s
    result.totals["through_edge"] = through_edge
    restore_signals = interrupt_on_termination()
    purger = None
    stall: _OriginStall | None = None
    admin = httpx.Client(timeout=10, headers={"Authorization": f"Bearer {key}"})
    load: _Load | None = None
    watch: _SelloutWatch | None = None
    sellout: dict[str, Any] = {}
    try:
        say("starting the origin, the worker, the edge nodes and the purger")
        server.start()
        worker.start()
        if through_edge:
            write_configs(layout)
            start_all(layout)
            purger = _purger(child_env(url_db, edge_env), tmp / "purger.log")
            if warm:
                say("warming the edge from the capacity warm list")
                result.totals["warm"] = _warm(layout, n_skus, [1.0 / (r + 1) ** 0.9 for r in range(n_skus)])
        log_from = time.time()
        t0 = time.monotonic()
        edge_urls = [n.url for n in layout.edges] if through_edge else [server.url]
        load = _Load(_Edges(edge_urls), key, n_skus, seed, t0, views_per_order)
        watch = _SelloutWatch(edge_urls, t0)
        threads = load.start(browsers, buyers, watch.run)
        boundaries: list[tuple[float, str]] = []
        for fault, at in play(schedule, t0, seconds, say):
            detail: dict[str, Any] = {}
            if fault.action in ("edge_down", "edge_up") and not through_edge:
                detail["skipped"] = "no edge in the baseline"
            elif fault.action == "edge_down":
                kill_node(by_name[fault.target or "edge-a"])
            elif fault.action == "edge_up":
                start_node(by_name[fault.target or "edge-a"])
            elif fault.action == "origin_slow":
                stall = _OriginStall(server)
                stall.start()
            elif fault.action == "origin_down":
                if stall is not None:
                    stall.end()
                    stall = None
                server.kill9()
            elif fault.action == "origin_up":
                if stall is not None:
                    stall.end()
                    stall = None
                started = time.monotonic()
                server.start()
                detail["restart_s"] = round(time.monotonic() - started, 1)
            elif fault.action == "sell_out":
                body = {"lines": [{"sku": SELLOUT_SKU, "qty": SELLOUT_UNITS}],
                        "ship_to": {"country": "US", "postal_code": "94107"}, "payment": {"token": "tok_bulk"}}
                sent = time.monotonic() - t0
                with httpx.Client(timeout=40, headers={"User-Agent": SHOPPER_AGENT}) as client:
                    outcome = load.checkout(client, body, 0)
                sellout = {"sent_s": round(sent, 3), "status": outcome["status"], "order_id": outcome["order_id"]}
                detail.update(sellout)
            else:
                raise ValueError(f"edge game day: unknown action {fault.action!r}")
            boundaries.append((at, fault.name or fault.label))
            result.faults.append({"at_s": round(at, 1), "action": fault.action, "label": fault.label, **detail})
        load.stop.set()
        watch.stop.set()
        for t in threads:
            t.join(timeout=45)
        end_s = time.monotonic() - t0
        if stall is not None:
            stall.end()
            stall = None
        if server.proc is None or server.proc.poll() is not None:
            server.start()
        say("healing and draining the outbox")
        processors = list(admin.get(server.url + "/v1/admin/processors").json()["order"])
        heal(admin, server.url, processors)
        drained, checks = drain_and_check(url_db, drain_timeout_s, 150, initial)
        result.drain = {"seconds": drained["seconds"], "settled": drained["settled"],
                        "outbox_pending": drained["outbox_pending"], "orders_by_status": checks["orders_by_status"]}
        _, double_captures, double_auth, live_on_ended = ledger_anomalies(server.url, key, processors,
                                                                          checks["ended_unpaid_orders"])
        time.sleep(1.0)  # the edges flush their access logs every 500 ms
        logs = {n.name: read_log(n.access_log, since=log_from) for n in layout.nodes}
    finally:
        if stall is not None:
            stall.end()
        admin.close()
        if purger is not None and purger.poll() is None:
            purger.terminate()
            try:
                purger.wait(timeout=10)
            except subprocess.TimeoutExpired:
                purger.kill()
        if through_edge:
            stop_all(layout)
        worker.stop()
        server.stop()
        restore_signals()

    views = load.views
    ok = sum(1 for v in views if v.ok)
    result.product_page_availability = round(ok / len(views), 5) if views else 0.0
    edge_stats = {n.name: cache_stats(logs[n.name], agent=SHOPPER_AGENT) for n in layout.edges} \
        if through_edge else {}
    from_cache = sum(s.from_cache for s in edge_stats.values())
    requests = sum(s.requests for s in edge_stats.values())
    result.edge_hit_ratio = round(from_cache / requests, 5) if requests else 0.0
    result.nodes = {name: stats.to_dict() for name, stats in edge_stats.items()}
    if through_edge:
        shield = cache_stats(logs[layout.shield.name])
        result.nodes[layout.shield.name] = {**shield.to_dict(),
                                            "origin_requests_per_min": per_minute(logs[layout.shield.name])}
    # Stale in_stock: the latest watcher answer still saying in_stock, counted from when the sell-out was sent.
    sold = sellout.get("status") == 201
    stale_s = 0.0
    stale_beyond = 0
    if sold:
        for sent, answered, _url, availability in watch.observations:
            if sent >= sellout["sent_s"] and availability == "in_stock":
                stale_s = max(stale_s, answered - sellout["sent_s"])
                stale_beyond += int(answered - sellout["sent_s"] > STALE_LIMIT_S)
    result.stale_in_stock_after_sellout_s = round(stale_s, 3)
    result.phases = _phases(views, boundaries, end_s)
    created = [c["order_id"] for c in load.checkouts if c["status"] == 201 and c["order_id"]]
    store = verify_store(url_db, created)
    result.totals.update({
        "product_views": len(views), "product_views_ok": ok,
        "product_views_failed_over": sum(1 for v in views if v.tries > 1),
        "searches": dict(load.searches), "checkouts": len(load.checkouts),
        "accepted": sum(1 for c in load.checkouts if c["status"] == 201),
        "views_per_checkout": round(len(views) / max(1, len(load.checkouts)), 1),
        "checkouts_answered_503_then_retried": sum(1 for c in load.checkouts if c["clean_5xx"]),
        "sellout": sellout, "watch_observations": len(watch.observations),
        "edge_product_requests": requests, "edge_product_from_cache": from_cache,
    })
    result.checks = {
        **buy_path_checks(store, checks, drained, load, double_captures, double_auth, live_on_ended),
        "sellout_not_sold": 0 if sold else 1,
        "stale_in_stock_beyond_5s": stale_beyond,
        "product_page_availability_below_target": int(result.product_page_availability < TARGET_AVAILABILITY),
        "edge_hit_ratio_below_target": int(result.edge_hit_ratio < TARGET_HIT_RATIO),
    }
    if not through_edge:  # the baseline measures; the edge's targets are not its checks
        for name in ("product_page_availability_below_target", "edge_hit_ratio_below_target"):
            result.checks.pop(name)
        result.edge_hit_ratio = None
    return result
