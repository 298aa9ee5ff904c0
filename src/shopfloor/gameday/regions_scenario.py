"""The regions game day: shoppers browse and buy through the nginx edge in front of two regions (``shopfloor
regions``: Patroni + etcd, region B a synchronous standby) while a warehouse's fulfillment feed stops and region A
dies whole.

Everything runs as its own process: etcd, both regions' Patroni and PostgreSQL, both regions' ``shopfloor serve``,
region A's worker, the simulated payment processors (an outside service both regions call, like a real gateway,
with their own ledger), and three nginx instances whose shield lists region A's app first and region B's app as a
backup. Faults come from a schedule (:data:`~.faults.REGIONS_SCHEDULE`, played by :func:`~.faults.play`):

* ``warehouse_delay``: the warehouse's fulfillment events stop (held back); ``warehouse_back`` lets them arrive,
  late. Once the feed is older than the stale threshold, the warehouse's promises must be provisional and wider;
* ``region_down``: region A's app, worker, Patroni and PostgreSQL primary are killed with SIGKILL. Nothing tells
  the system: a watcher (:func:`shopfloor.regions.watch`) notices region A is silent and fails over (fences A,
  waits for Patroni to promote B once the leader key expires, starts B's worker), and the edge follows by itself.

Measured: RTO (region A's death to the first checkout accepted through the edge), orders acknowledged before the
death and missing from region B afterwards, product-page availability through the edge per phase, and promises
from the delayed warehouse that went out unchanged once its delay was known. The buy path's checks (nothing lost,
oversold, duplicated or charged twice, stock conserved) run against region B's database after the drain.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, ClassVar

import httpx

from ..runtime import SimulatorProcess, free_port, interrupt_on_termination, port_in_use
from .checks import buy_path_checks, stock_snapshot, verify_store
from .edge_scenario import POSTAL_CODES, SHOPPER_AGENT, VIEW_TIMEOUT_S, _Edges, _Load, _phases, _seed_sellout
from .faults import DELAYED_WAREHOUSE, REGIONS_SCHEDULE, Fault, heal, play
from .harness import drain_and_check, ledger_anomalies, simulator_env
from .report import ChecksVerdict
from .seed import seed_bench_store, seed_sku
from .warehouse_feed import PromiseSeen, WarehouseFeed, unchanged_promises

TARGET_RTO_S = 30.0
TARGET_AVAILABILITY = 0.999
#: The SKU stocked only in the delayed warehouse: every promise for it comes from there.
DELAYED_SKU = "SLOWWH"
WAREHOUSES = {"us-west-1": "us-west", "us-east-1": "us-east", "us-central-1": "us-central"}
#: Feed age past which a warehouse's promises degrade (stale feed), in seconds, for a game day lasting a minute.
STALE_FEED_AFTER_S = 8.0
STATS_REFRESH_S = 1.0
PROMISE_MAX_AGE_S = 1
PROMISE_SWR_S = 1
FEED_INTERVAL_S = 1.0


def delay_known_after_s() -> float:
    """Seconds from a warehouse's last event until its delay counts as known to shoppers: the stale-feed threshold,
    one statistics refresh, and the promise's HTTP cache lifetime (max-age + stale-while-revalidate) at each of
    the two cache tiers a promise passes (edge node, shield). Derived from the settings above, not measured."""
    return STALE_FEED_AFTER_S + STATS_REFRESH_S + 2 * (PROMISE_MAX_AGE_S + PROMISE_SWR_S)


@dataclass
class RegionsGameDayResult(ChecksVerdict):
    scenario: ClassVar[str] = "regions"

    seconds: float
    browsers: int
    faults: list[dict[str, Any]] = field(default_factory=list)
    rto_s: float | None = None
    orders_lost_in_failover: int | None = None
    orders_acknowledged_before_failover: int = 0
    product_page_availability: float | None = None
    unchanged_promises_during_delay: int | None = None
    failover: dict[str, Any] = field(default_factory=dict)
    delay: dict[str, Any] = field(default_factory=dict)
    phases: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, Any] = field(default_factory=dict)
    drain: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, int] = field(default_factory=dict)



class _Feeder:
    """Posts the warehouses' events through the edge every tick; what a failed post carried is retried next tick."""

    def __init__(self, feed: WarehouseFeed, url: str, key: str) -> None:
        self.feed, self.url, self.key = feed, url, key
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.pending: list[dict[str, Any]] = []
        self.posted = 0
        self.failed_posts = 0

    def send(self, client: httpx.Client, events: list[dict[str, Any]]) -> None:
        with self.lock:
            batch = self.pending + events
            self.pending = []
        if not batch:
            return
        try:
            resp = client.post(self.url + "/v1/fulfillment/events", json={"events": batch},
                               headers={"Authorization": f"Bearer {self.key}"})
            ok = resp.status_code == 200
        except httpx.HTTPError:
            ok = False
        with self.lock:
            if ok:
                self.posted += len(batch)
            else:
                self.failed_posts += 1
                self.pending = batch + self.pending

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                with self.lock:
                    events = self.feed.tick(datetime.now(timezone.utc))
                self.send(client, events)
                self.stop.wait(FEED_INTERVAL_S)


class _PromiseWatch:
    """Asks for the delayed warehouse's SKU's promise through the edge for every destination, every 200 ms."""

    def __init__(self, edge_urls: list[str], t0: float) -> None:
        self.edge_urls, self.t0 = edge_urls, t0
        self.stop = threading.Event()
        self.seen: list[PromiseSeen] = []
        self.failed = 0

    def run(self) -> None:
        edges = _Edges(self.edge_urls)
        with httpx.Client(timeout=VIEW_TIMEOUT_S, headers={"User-Agent": "shopfloor-gameday-promise-watch"}) as c:
            k = 0
            while not self.stop.is_set():
                for postal in POSTAL_CODES:
                    resp, _ = edges.get(c, k, f"/v1/promise?sku={DELAYED_SKU}&country=US&postal_code={postal}")
                    k += 1
                    try:
                        body = resp.json() if resp is not None and resp.status_code == 200 else None
                    except ValueError:
                        body = None
                    if body is None:
                        self.failed += 1
                        continue
                    self.seen.append(PromiseSeen(time.monotonic() - self.t0, postal, body.get("warehouse"),
                                                 body.get("deliver_by"), bool(body.get("provisional")),
                                                 tuple(body.get("reasons") or ())))
                self.stop.wait(0.2)


class _RtoProbe:
    """From region A's death, one checkout through the edge, retried like a shopper's (one idempotency key, every
    0.1-0.2 s) until accepted."""

    def __init__(self, load: _Load, edge_urls: list[str]) -> None:
        self.load, self.edge_urls = load, edge_urls
        self.accepted_at: float | None = None
        self.outcome: dict[str, Any] | None = None
        self.thread: threading.Thread | None = None

    def start(self, killed_at: float) -> None:
        def run() -> None:
            body = {"lines": [{"sku": "SKU00001", "qty": 1}], "ship_to": {"country": "US", "postal_code": "94107"},
                    "payment": {"token": "tok_rto_probe"}}
            with httpx.Client(timeout=10, headers={"User-Agent": SHOPPER_AGENT}) as client:
                out = self.load.checkout(client, body, 0)
            self.outcome = out
            if out["status"] == 201:
                self.accepted_at = time.monotonic() - killed_at

        self.thread = threading.Thread(target=run, name="gameday-rto-probe", daemon=True)
        self.thread.start()


def _free_base(start: int) -> int:
    """The first port base from ``start`` (steps of 50) whose regions ports are all free."""
    for base in range(start, start + 2000, 50):
        if not any(port_in_use("127.0.0.1", base + off) for off in (0, 1, 10, 11, 20, 21, 30, 31)):
            return base
    raise RuntimeError(f"no free port block for two regions from {start}")


def run_regions_gameday(*, seconds: float = 60.0, browsers: int = 4, buyers: int = 1, seed: int = 7,
                        n_skus: int = 40, views_per_order: int = 20, page_ttl_s: int = 10,
                        drain_timeout_s: float = 120.0, port_base: int | None = None,
                        schedule: tuple[Fault, ...] = REGIONS_SCHEDULE, workdir: Path | None = None,
                        progress: Callable[[str], None] | None = None) -> RegionsGameDayResult:
    """Run the regions game day and return its report. Needs etcd and Patroni (tools/install-regions.sh), nginx
    (tools/install-nginx.sh) and PostgreSQL server binaries. ``port_base``: where the regions' ports start (default:
    the first free block from ``SHOPFLOOR_REGIONS_PORT_BASE``). Everything it starts is stopped at the end."""
    from ..config import Settings
    from ..edge import EdgeLayout, cache_stats, nginx_binary, read_log, start_all, stop_all, write_configs
    from .edge_scenario import SHARED_ADDRESS_LIMITS
    from ..regions import (
        RegionsLayout,
        down,
        is_primary,
        kill_region,
        pid_of,
        postmaster_pid,
        status,
        up,
        watch,
    )

    say = progress or (lambda _msg: None)
    nginx_binary()
    tmp = workdir or Path(tempfile.mkdtemp(prefix="sf-gameday-regions-"))
    tmp.mkdir(parents=True, exist_ok=True)
    tmp.chmod(0o755)  # as root, PostgreSQL runs as `postgres`, which must reach its data folder
    base = port_base if port_base is not None else _free_base(Settings().regions_port_base)
    layout = RegionsLayout.from_settings(Settings(regions_dir=tmp / "regions", regions_port_base=base))
    sim_env = simulator_env(seed)
    sim = SimulatorProcess(f"sqlite:///{tmp / 'gateway.db'}", env=sim_env, log_path=tmp / "simulators.log")
    app_env = {**sim_env, "SHOPFLOOR_PAYMENTS_SIM_URL": sim.url,
               "SHOPFLOOR_PROMISE_STALE_FEED_AFTER_H": repr(STALE_FEED_AFTER_S / 3600.0),
               "SHOPFLOOR_PROMISE_STATS_REFRESH_S": str(STATS_REFRESH_S),
               "SHOPFLOOR_PROMISE_CACHE_MAX_AGE_S": str(PROMISE_MAX_AGE_S),
               "SHOPFLOOR_PROMISE_CACHE_SWR_S": str(PROMISE_SWR_S),
               "SHOPFLOOR_STOREFRONT_MAX_AGE_PLENTY_S": str(page_ttl_s),
               "SHOPFLOOR_STOREFRONT_MAX_AGE_LOW_S": str(page_ttl_s),
               "SHOPFLOOR_STOREFRONT_MAX_AGE_UNAVAILABLE_S": str(page_ttl_s),
               "SHOPFLOOR_STOREFRONT_MAX_AGE_LISTING_S": str(page_ttl_s)}
    ports = [free_port() for _ in range(3)]
    edge_layout = EdgeLayout.from_settings(Settings(edge_dir=tmp / "edge", edge_origin_url=layout.a.app_url,
                                                    edge_origin_backup_urls=[layout.b.app_url],
                                                    edge_node_ports=ports[:2], edge_shield_port=ports[2],
                                                    **SHARED_ADDRESS_LIMITS))
    edge_urls = [n.url for n in edge_layout.edges]
    result = RegionsGameDayResult(seconds, browsers)
    restore_signals = interrupt_on_termination()
    load: _Load | None = None
    feeder: _Feeder | None = None
    promise_watch: _PromiseWatch | None = None
    stop_watch = threading.Event()
    watcher_out: dict[str, Any] = {}
    watcher: threading.Thread | None = None
    threads: list[threading.Thread] = []
    try:
        say("starting the payment gateway simulator")
        sim.start()
        say("starting two regions (etcd, Patroni, PostgreSQL primary and synchronous standby, apps, worker)")
        started = up(layout, env=app_env, report=say)
        result.totals["regions_up_s"] = round(started["timings"]["total_s"], 1)
        say("seeding the store and four weeks of fulfillment history")
        key = seed_bench_store(layout.a.database_url, n_skus, 150)
        seed_sku(layout.a.database_url, DELAYED_SKU, "Only in the east", "regional", 2499, DELAYED_WAREHOUSE, 1_000_000)
        _seed_sellout(layout.a.database_url)  # the browsers' occasional look at the edge game day's sell-out SKU
        initial = stock_snapshot(layout.a.database_url)
        feed = WarehouseFeed(WAREHOUSES, [("US", p) for p in POSTAL_CODES], seed)
        with httpx.Client(timeout=60) as client:
            history = feed.history(datetime.now(timezone.utc))
            for i in range(0, len(history), 500):
                client.post(layout.a.app_url + "/v1/fulfillment/events", json={"events": history[i:i + 500]},
                            headers={"Authorization": f"Bearer {key}"}).raise_for_status()
        result.totals["history_events"] = len(history)
        say("starting the edge (shield: region A, region B as its backup)")
        write_configs(edge_layout)
        start_all(edge_layout)
        feeder = _Feeder(feed, edge_urls[0], key)
        threads = [threading.Thread(target=feeder.run, daemon=True)]  # fresh feeds before the load begins
        threads[0].start()
        with httpx.Client(timeout=10) as client:  # warm: every product page once through each edge node
            for url in edge_urls:
                for i in range(n_skus):
                    for postal in POSTAL_CODES:
                        client.get(f"{url}/v1/products/SKU{i:05d}?country=US&postal_code={postal}")
        time.sleep(2 * STATS_REFRESH_S)
        log_from = time.time()
        t0 = time.monotonic()
        load = _Load(_Edges(edge_urls), key, n_skus, seed, t0, views_per_order)
        promise_watch = _PromiseWatch(edge_urls, t0)
        threads += load.start(browsers, buyers, promise_watch.run)

        def auto_failover() -> None:
            try:
                out = watch(layout, stop_watch.is_set, env=app_env, report=say)
                if out is not None:
                    watcher_out.update(out)
                    watcher_out["done_s"] = time.monotonic() - t0
            except Exception as exc:  # noqa: BLE001 - reported as a failed check
                watcher_out["error"] = str(exc)

        watcher = threading.Thread(target=auto_failover, name="gameday-regions-watch", daemon=True)
        watcher.start()
        boundaries: list[tuple[float, str]] = []
        killed_at: float | None = None
        delay_at: float | None = None
        back_at: float | None = None
        probe = _RtoProbe(load, edge_urls)
        for fault, at in play(schedule, t0, seconds, say):
            detail: dict[str, Any] = {}
            if fault.action == "warehouse_delay":
                with feeder.lock:
                    feed.delay(fault.target or DELAYED_WAREHOUSE, datetime.now(timezone.utc))
                delay_at = at if delay_at is None else delay_at
            elif fault.action == "warehouse_back":
                with feeder.lock:
                    late = feed.release(fault.target or DELAYED_WAREHOUSE)
                    feeder.pending.extend(late)
                detail["late_events"] = len(late)
                back_at = at
            elif fault.action == "region_down":
                killed_at = time.monotonic()
                detail["killed"] = kill_region(layout, "A")
                probe.start(killed_at)
            else:
                raise ValueError(f"regions game day: unknown action {fault.action!r}")
            boundaries.append((at, fault.name or fault.label))
            result.faults.append({"at_s": round(at, 1), "action": fault.action, "label": fault.label, **detail})
        if probe.thread is not None:  # the probe's checkout may still be retrying: give it the RTO target's time
            probe.thread.join(timeout=max(0.0, TARGET_RTO_S * 3 - (time.monotonic() - (killed_at or 0))))
        load.stop.set()
        feeder.stop.set()
        promise_watch.stop.set()
        for t in threads:
            t.join(timeout=45)
        end_s = time.monotonic() - t0
        stop_watch.set()
        if watcher is not None:
            watcher.join(timeout=180)
        primary = layout.b if killed_at is not None else layout.a
        say("healing and draining the outbox in the surviving region")
        with httpx.Client(timeout=10) as client:  # anything the feeder still holds (posts failed in the failover)
            feeder.send(client, [])
        with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {key}"}) as admin:
            processors = list(admin.get(primary.app_url + "/v1/admin/processors").json()["order"])
            heal(admin, primary.app_url, processors)
        drained, checks = drain_and_check(primary.database_url, drain_timeout_s, 150, initial)
        result.drain = {"seconds": drained["seconds"], "settled": drained["settled"],
                        "outbox_pending": drained["outbox_pending"], "orders_by_status": checks["orders_by_status"]}
        _, double_captures, double_auth, live_on_ended = ledger_anomalies(primary.app_url, key, processors,
                                                                          checks["ended_unpaid_orders"])
        kill_s = None if killed_at is None else killed_at - t0
        created = [c for c in load.checkouts if c["status"] == 201 and c["order_id"]]
        store = verify_store(primary.database_url, [c["order_id"] for c in created])
        present_before = [c["order_id"] for c in created if kill_s is None or c["at"] < kill_s]
        lost_before = verify_store(primary.database_url, present_before)["lost"] if present_before else 0
        final = status(layout)
        a_fenced = layout.a.fence_file.exists() and postmaster_pid(layout.a) is None and not is_primary(layout.a)
        a_app_down = pid_of(layout, "app-A") is None
        time.sleep(1.0)  # the edges flush their access logs every 500 ms
        shield_log = cache_stats(read_log(edge_layout.shield.access_log, since=log_from))
    finally:
        stop_watch.set()
        if load is not None:
            load.stop.set()
        for part in (feeder, promise_watch):
            if part is not None:
                part.stop.set()
        stop_all(edge_layout)
        down(layout, purge=True)
        sim.stop()
        restore_signals()

    # --- figures ---------------------------------------------------------------------------------------------------
    views = load.views
    ok = sum(1 for v in views if v.ok)
    result.product_page_availability = round(ok / len(views), 5) if views else 0.0
    result.phases = _phases(views, boundaries, end_s)
    result.rto_s = None if probe.accepted_at is None else round(probe.accepted_at, 2)
    result.orders_acknowledged_before_failover = len(present_before)
    result.orders_lost_in_failover = lost_before if killed_at is not None else None
    result.failover = {"killed_at_s": None if kill_s is None else round(kill_s, 1), **{
        k: watcher_out.get(k) for k in ("detected_s", "fenced_s", "promoted_s", "error")},
        "primary_after": final.get("primary"), "region_a_fenced": a_fenced,
        "shield_requests": shield_log.requests, "rto_probe": probe.outcome}
    delayed = next((f.target for f in schedule if f.action == "warehouse_delay"), None)
    if delay_at is not None and delayed is not None:
        known_from = delay_at + delay_known_after_s()
        counted = unchanged_promises(promise_watch.seen, delayed, delay_at, known_from,
                                     back_at if back_at else end_s + 1)
        result.unchanged_promises_during_delay = counted["unchanged"]
        result.delay = {"warehouse": delayed, "delayed_at_s": round(delay_at, 1),
                        "known_from_s": round(known_from, 1),
                        "back_at_s": None if back_at is None else round(back_at, 1),
                        "stale_feed_after_s": STALE_FEED_AFTER_S, "promises_looked_at": counted["during"],
                        "baseline_destinations": counted["baseline_destinations"],
                        "baseline_provisional": counted["baseline_provisional"],
                        "unchanged_at_s": counted["unchanged_at_s"],
                        "provisional_timeline": counted["timeline"],
                        "accepted_checkouts_while_delayed": sum(
                            1 for c in created if delay_at <= c["at"] < (back_at or end_s))}
    result.totals.update({
        "port_base": base, "product_views": len(views), "product_views_ok": ok,
        "checkouts": len(load.checkouts), "accepted": len(created),
        "checkouts_answered_503_then_retried": sum(1 for c in load.checkouts if c["clean_5xx"]),
        "feed_events_posted": feeder.posted, "feed_posts_failed": feeder.failed_posts,
        "promise_observations": len(promise_watch.seen), "promise_requests_failed": promise_watch.failed,
    })
    result.checks = {
        **buy_path_checks(store, checks, drained, load, double_captures, double_auth, live_on_ended),
        "orders_lost_in_failover": result.orders_lost_in_failover or 0,
        "product_page_availability_below_target": int(result.product_page_availability < TARGET_AVAILABILITY),
    }
    if killed_at is not None:
        result.checks["rto_above_target"] = int(result.rto_s is None or result.rto_s > TARGET_RTO_S)
        result.checks["region_a_not_fenced"] = int(not (a_fenced and a_app_down))
        result.checks["region_b_not_primary"] = int(final.get("primary") != "B")
        result.checks["failover_error"] = int("error" in watcher_out)
    if delay_at is not None:
        result.checks["unchanged_promises_during_delay"] = result.unchanged_promises_during_delay or 0
        # Without a learned, non-provisional promise before the delay, or promises during it, the count proves nothing.
        result.checks["delayed_warehouse_baseline_missing"] = int(result.delay["baseline_destinations"] == 0)
        result.checks["delayed_warehouse_promises_not_observed"] = int(result.delay["promises_looked_at"] == 0)
        result.checks["checkout_stopped_during_delay"] = int(result.delay["accepted_checkouts_while_delayed"] == 0)
    return result
