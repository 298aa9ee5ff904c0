"""Tower services: funnel ingest, signals computed from the tower's own tables, and rule-engine assembly.

Integration points (bound by the integrator in ``bootstrap.build_container``; every one is optional):

``container.services`` key   -> Protocol (see ``tower.actions``)
  "tower.signals"            -> SignalProvider (forecasts, breaker states, feed ages ...); asked before the DB
  "tower.capacity"           -> CapacityPlanSource     (scale; default: what the predictive planner asks for now)
  "tower.scaler"             -> Scaler                 (scale, mode apply)
  "tower.payment_routing"    -> PaymentRouting         (reorder_processors)
  "tower.warm_list"          -> WarmListSource         (warm_caches without explicit urls)
  "tower.cache_warmer"       -> CacheWarmer            (warm_caches through the edge nodes: `shopfloor edge warm`)
  "tower.alternatives"       -> AlternativesSource     (suppress_promotion without explicit alternatives)
  "tower.mailer"             -> Mailer                 (alert, channel mail; default: tower_smtp_host, else the
                                                      store's mail transport: smtp_host or the maildir)
  "tower.http"               -> HttpClient             (webhooks, warming; default: an httpx.Client)
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from ..domain.clock import Clock
from ..store.tower import TowerRepository
from .actions import (
    AlertAction,
    CompositeSignals,
    DegradePromisesAction,
    FlagListingAction,
    ProposePromotionAction,
    ReorderProcessorsAction,
    RuleEngine,
    ScaleAction,
    SignalProvider,
    SmtpMailer,
    TransportMailer,
    SuppressPromotionAction,
    WarmCachesAction,
)
from .fulfillment_signals import FulfillmentSignals
from .funnel import (
    LATENCY_BUCKETS,
    checkout_success_rate,
    latency_bucket,
    latency_quantile,
    minute_of,
    sum_latency_buckets,
)
from .rules import RuleSet

log = logging.getLogger(__name__)



def aggregate_events(events: Iterable[tuple[datetime, str, float | None]]) -> list[dict[str, Any]]:
    """Fold ``(timestamp, stage, latency_ms)`` events into one row per (minute, stage), with the latency histogram
    (``latency_buckets``) where a stage has latencies."""
    acc: dict[tuple[datetime, str], list[Any]] = {}
    for ts, stage, latency in events:
        cell = acc.get((minute_of(ts), stage))
        if cell is None:
            cell = acc[(minute_of(ts), stage)] = [0, 0.0, 0, None]
        _count(cell, latency)
    return [_cell_row(m, s, cell) for (m, s), cell in acc.items()]


def _count(cell: list[Any], latency_ms: float | None) -> None:
    """One event into a rollup cell ``[count, latency sum, latency count, buckets or None]``."""
    cell[0] += 1
    if latency_ms is not None:
        cell[1] += float(latency_ms)
        cell[2] += 1
        if cell[3] is None:
            cell[3] = [0] * LATENCY_BUCKETS
        cell[3][latency_bucket(latency_ms)] += 1


def _cell_row(minute: datetime, stage: str, cell: list[Any]) -> dict[str, Any]:
    row = {"minute": minute, "stage": stage, "count": cell[0], "latency_ms_sum": cell[1], "latency_count": cell[2]}
    if cell[3] is not None:
        row["latency_buckets"] = cell[3]
    return row


class FunnelBuffer:
    """Folds rollup rows in memory and writes them in one upsert at most every ``flush_interval_s`` (group commit).

    Beacon requests then share commits instead of paying one fsync each. The price, stated plainly: beacons
    acknowledged in the last ``flush_interval_s`` are lost if the process dies (``close`` flushes on a clean
    shutdown). ``flush_interval_s=0`` writes through on every call. The request that finds the buffer due does the
    flush, so no background thread is needed. A failed write puts the rows back for the next flush.
    """

    def __init__(self, repo: TowerRepository, flush_interval_s: float = 1.0, max_keys: int = 10_000,
                 monotonic=None, background: bool = False) -> None:
        import threading
        import time

        self.repo, self.flush_interval_s, self.max_keys = repo, flush_interval_s, max_keys
        self.background = background
        self._now = monotonic or time.monotonic
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: dict[tuple[datetime, str], list[Any]] = {}  # [count, latency sum, count, buckets]
        self._last_flush = self._now()

    def add(self, rows: Iterable[Mapping[str, Any]]) -> None:
        with self._lock:
            self._merge(rows)
            due = self._due()
        self._flush_if(due)

    def add_stages(self, minute: datetime, stages: Iterable[tuple[str, float | None]]) -> None:
        """:meth:`add` for one count per ``(stage, latency_ms or None)`` in ``minute``, without building a row dict
        per stage (the buy path records 3-5 stages per checkout): the same cells, folded the same way."""
        with self._lock:
            pending = self._pending
            for stage, latency_ms in stages:
                cell = pending.get((minute, stage))
                if cell is None:
                    cell = pending[(minute, stage)] = [0, 0.0, 0, None]
                _count(cell, latency_ms)
            due = self._due()
        self._flush_if(due)

    def _due(self) -> bool:
        """Whether a flush is due (called under ``_lock``)."""
        return (self._now() - self._last_flush >= self.flush_interval_s) or len(self._pending) >= self.max_keys

    def _flush_if(self, due: bool) -> None:
        if due and self.background:
            # Flush on a short-lived thread: when the caller is the event loop it must never wait for the
            # database's write lock. A flush already in progress picks these rows up next time.
            import threading

            threading.Thread(target=self._flush_quietly, name="funnel-flush", daemon=True).start()
        elif due:
            self._flush_quietly()

    def _flush_quietly(self) -> None:
        if not self._flush_lock.acquire(blocking=False):
            return
        self._flush_lock.release()
        try:
            self.flush()
        except Exception:  # the events are accepted and kept; failing this request would invite a re-send
            log.warning("funnel rollup flush failed; %d rows kept for the next flush", len(self._pending),
                        exc_info=True)

    def _merge(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for r in rows:
            cell = self._pending.setdefault((r["minute"], r["stage"]), [0, 0.0, 0, None])
            cell[0] += r["count"]
            cell[1] += r["latency_ms_sum"]
            cell[2] += r["latency_count"]
            if r.get("latency_buckets"):
                cell[3] = sum_latency_buckets([cell[3], r["latency_buckets"]])

    def flush(self) -> int:
        """Write everything pending now; returns the number of rollup rows written."""
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, {}
                self._last_flush = self._now()
            rows = [_cell_row(m, s, cell) for (m, s), cell in pending.items()]
            if not rows:
                return 0
            try:
                return self.repo.add_funnel_counts(rows)
            except Exception:
                with self._lock:
                    self._merge(rows)
                raise

    def close(self) -> None:
        self.flush()


class FunnelRecorder:
    """Records server-side funnel stages into the per-minute rollups (call ``record``; rows go out per call batch).

    The checkout/promise/fulfillment code calls ``record("checkout_attempt", now, latency_ms)``; the dashboard then
    works from the database alone, without a Prometheus server.
    """

    def __init__(self, repo: TowerRepository) -> None:
        self.repo = repo

    def record(self, stage: str, at: datetime, latency_ms: float | None = None, count: int = 1) -> None:
        row = {"minute": minute_of(at), "stage": stage, "count": count,
               "latency_ms_sum": float(latency_ms or 0.0) * count if latency_ms is not None else 0.0,
               "latency_count": count if latency_ms is not None else 0}
        if latency_ms is not None:
            row["latency_buckets"] = [0] * LATENCY_BUCKETS
            row["latency_buckets"][latency_bucket(latency_ms)] = count
        self.repo.add_funnel_counts([row])


class DatabaseSignals:
    """Signals the tower can compute from its own tables (funnel rollups and alerts)."""

    NAMES = ("traffic_rpm", "add_to_cart_rate", "conversion_rate", "checkout_attempts_per_min",
             "checkout_success_rate", "checkout_latency_ms", "checkout_latency_p95_ms", "page_load_ms",
             "page_load_p95_ms", "open_alerts")
    _P95 = {"checkout_latency_p95_ms": "checkout_attempt", "page_load_p95_ms": "page_view"}

    def __init__(self, repo: TowerRepository, clock: Clock, window_s: int = 900) -> None:
        self.repo, self.clock, self.window_s = repo, clock, window_s

    def values(self, names: set[str]) -> dict[str, Any]:
        wanted = set(names) & set(self.NAMES)
        out: dict[str, Any] = {n: None for n in names}
        if not wanted:
            return out
        now = minute_of(self.clock.now())
        since = now - timedelta(seconds=self.window_s)
        rows = self.repo.funnel_series(since, now)
        totals: dict[str, int] = defaultdict(int)
        lat: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
        last_minute: dict[str, int] = defaultdict(int)
        for r in rows:
            totals[r["stage"]] += r["count"]
            lat[r["stage"]][0] += r["latency_ms_sum"]
            lat[r["stage"]][1] += r["latency_count"]
            if r["minute"] == now - timedelta(minutes=1):
                last_minute[r["stage"]] += r["count"]

        def ratio(a: str, b: str) -> float | None:
            return totals[a] / totals[b] if totals[b] else None

        def mean_latency(stage: str) -> float | None:
            s, c = lat[stage]
            return s / c if c else None

        p95: dict[str, float | None] = {}
        asked = {self._P95[n] for n in wanted if n in self._P95}
        if asked:
            minutes = self.repo.funnel_latency(since, now, asked)
            p95 = {stage: latency_quantile(sum_latency_buckets(c for (_, s), c in minutes.items() if s == stage), 0.95)
                   for stage in asked}

        computed = {
            "traffic_rpm": last_minute["page_view"],
            "add_to_cart_rate": ratio("add_to_cart", "product_view"),
            "conversion_rate": ratio("order_confirmed", "product_view"),
            "checkout_attempts_per_min": last_minute["checkout_attempt"],
            "checkout_success_rate": checkout_success_rate(totals["checkout_attempt"], totals["checkout_succeeded"],
                                                           totals["checkout_refused"]),
            "checkout_latency_ms": mean_latency("checkout_attempt"),
            "checkout_latency_p95_ms": p95.get("checkout_attempt"),
            "page_load_ms": mean_latency("page_view"),
            "page_load_p95_ms": p95.get("page_view"),
            "open_alerts": self.repo.count_alerts_since(now - timedelta(seconds=self.window_s)),
        }
        out.update({n: computed[n] for n in wanted})
        return out


class StoreSignals:
    """Per-entity signals read from the store, so rules about one processor, warehouse or SKU work with no
    integration bound:

    * ``breaker_open_<processor>``, ``breaker_state_<processor>``, ``payment_success_rate_<processor>``: from the
      breaker snapshots the server processes persist (the worst state across live processes; the success rate of
      their breaker windows together).
    * ``feed_age_s_<warehouse>``: seconds since the warehouse's newest fulfillment event arrived.
    * ``stock_cover_days_<sku>``: units available over the mean daily units ordered in the last ``cover_days``.

    Ids are written with ``_`` for ``-`` and ``.`` (``feed_age_s_de_central``, ``stock_cover_days_FLASH_001``).
    A signal with nothing behind it (no live process, no events, no sales) has no value, and its rule is skipped.
    """

    PREFIXES = ("breaker_open_", "breaker_state_", "payment_success_rate_", "feed_age_s_", "stock_cover_days_")
    _STATE_RANK = {"closed": 0, "half_open": 1, "open": 2}

    def __init__(self, engine, clock: Clock, *, snapshot_max_age_s: float = 300.0, cover_days: int = 28) -> None:
        self.engine, self.clock = engine, clock
        self.snapshot_max_age_s, self.cover_days = snapshot_max_age_s, cover_days

    def values(self, names: set[str]) -> dict[str, Any]:
        from ..store import signals as q

        asked: dict[str, set[str]] = defaultdict(set)
        for name in names:
            for prefix in self.PREFIXES:
                if name.startswith(prefix):
                    asked[prefix].add(name[len(prefix):])
                    break
        out: dict[str, Any] = {}
        if not asked:
            return out
        now = self.clock.now()
        if asked.keys() & {"breaker_open_", "breaker_state_", "payment_success_rate_"}:
            by_processor: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for snap in q.breaker_snapshots(self.engine, now - timedelta(seconds=self.snapshot_max_age_s)):
                by_processor[q.signal_key(snap["processor"])].append(snap)
            for key, snaps in by_processor.items():
                state = max((s["breaker_state"] for s in snaps), key=lambda st: self._STATE_RANK.get(st, 0))
                calls = sum(s["window_calls"] for s in snaps)
                failures = sum(s["window_failures"] for s in snaps)
                out[f"breaker_state_{key}"] = state
                out[f"breaker_open_{key}"] = 1 if state == "open" else 0
                out[f"payment_success_rate_{key}"] = (calls - failures) / calls if calls else None
        if "feed_age_s_" in asked:
            for warehouse, newest in q.newest_feed_events(self.engine).items():
                if newest is not None:
                    newest = newest if newest.tzinfo else newest.replace(tzinfo=now.tzinfo)
                    out[f"feed_age_s_{q.signal_key(warehouse)}"] = max(0.0, (now - newest).total_seconds())
        if "stock_cover_days_" in asked:
            since = now - timedelta(days=self.cover_days)
            for key, (_, available, sold) in q.stock_and_sales(self.engine, asked["stock_cover_days_"], since).items():
                out[f"stock_cover_days_{key}"] = available / (sold / self.cover_days) if sold else None
        return {n: out[n] for n in names if n in out}


def build_rule_engine(container, rules: RuleSet, *, extra_signals: SignalProvider | None = None,
                      services: Mapping[str, Any] | None = None,
                      more_signals: Iterable[SignalProvider] = ()) -> RuleEngine:
    """Assemble a :class:`RuleEngine` from the container: DB-backed log/state plus whatever ports are bound.

    Signals are asked in this order: ``extra_signals`` (e.g. a JSON file on the CLI), the bound
    ``tower.signals`` provider, ``more_signals`` (e.g. the funnel monitor's anomaly scores), then the database.
    """
    # Adapters built here (HTTP client) are kept in container.services so container.close() closes them.
    services = container.services if services is None else dict(services)
    settings = container.settings
    repo = services.get("tower.repository") or TowerRepository(container.engine)
    http = services.get("tower.http")
    if http is None:
        import httpx

        http = httpx.Client(timeout=settings.tower_http_timeout_s)
        services["tower.http"] = http
    mailer = services.get("tower.mailer")
    if mailer is None and settings.tower_smtp_host:
        mailer = SmtpMailer(settings.tower_smtp_host, settings.tower_smtp_port, settings.tower_mail_from)
    elif mailer is None:  # where the store's own mail goes: its SMTP host, or the maildir
        from ..orders.notify import build_transport

        mailer = TransportMailer(build_transport(settings), settings.tower_mail_from)
    providers = [p for p in (extra_signals, services.get("tower.signals")) if p is not None]
    providers.extend(more_signals)
    providers.append(StoreSignals(container.engine, container.clock))
    fulfillment = services.get("tower.fulfillment_signals")
    if fulfillment is None:
        from ..bootstrap import build_fulfillment_analytics

        fulfillment = FulfillmentSignals(build_fulfillment_analytics(container), container.clock,
                                         window_days=settings.tower_analytics_window_days,
                                         ttl_s=settings.tower_analytics_ttl_s)
        services["tower.fulfillment_signals"] = fulfillment
    providers.append(fulfillment)
    providers.append(DatabaseSignals(repo, container.clock, settings.tower_signal_window_s))
    actions = {
        "scale": ScaleAction(services.get("tower.capacity"), scaler=services.get("tower.scaler"), http=http,
                             emit_dir=settings.data_dir / "plans"),
        "warm_caches": WarmCachesAction(http, services.get("tower.warm_list"), services.get("tower.cache_warmer")),
        "reorder_processors": ReorderProcessorsAction(services.get("tower.payment_routing")),
        "suppress_promotion": SuppressPromotionAction(repo, services.get("tower.alternatives")),
        "degrade_promises": DegradePromisesAction(repo),
        "flag_listing": FlagListingAction(repo, fulfillment),
        "propose_promotion": ProposePromotionAction(repo, repo),
        "alert": AlertAction(repo, http=http, mailer=mailer),
    }
    return RuleEngine(rules, CompositeSignals(*providers), actions, repo, container.clock)


class TowerLoop:
    """One evaluation step for a worker: judge new funnel minutes, then evaluate the rules.

    ``shopfloor rules run`` calls ``tick`` once or every N seconds; the integrator's worker can schedule the same
    object next to its outbox loop.
    """

    def __init__(self, container, rules: RuleSet, *, extra_signals: SignalProvider | None = None) -> None:
        from .monitor import FunnelMonitor

        self.repo = container.services.get("tower.repository") or TowerRepository(container.engine)
        self.monitor = FunnelMonitor(self.repo, container.clock)
        self._container, self._extra_signals = container, extra_signals
        self.replace_rules(rules)

    def replace_rules(self, rules: RuleSet) -> None:
        """Put a rule set in force (at start, and after an edit). The funnel monitor keeps its history; cooldowns and the action log
        live in the database, so a rule that fired keeps its cooldown across the swap."""
        from .monitor import MonitorSignals

        self.engine = build_rule_engine(self._container, rules, extra_signals=self._extra_signals,
                                        more_signals=[MonitorSignals(self.monitor)])

    def tick(self, *, dry_run: bool = False):
        self.monitor.tick()
        return self.engine.run_once(dry_run=dry_run)
