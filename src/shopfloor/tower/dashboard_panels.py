"""Data behind each panel of the ``/dashboard`` page, as plain JSON-ready dicts.

Every function takes the :class:`~shopfloor.bootstrap.Container` and ``now`` and returns ``{"state": ..., ...}``
where ``state`` is ``"ready"`` when there is something to draw and ``"empty"`` (with a ``message``) when the
underlying tables hold nothing yet, so a new store shows "no data yet" instead of an error. The routes are thin
wrappers; the page draws the charts client-side from these shapes.

The expensive panels (restock and capacity plans, which fit models) are cached per container for a few seconds,
so several open dashboards refreshing every 5 s do not refit them on every poll.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import numpy as np
from sqlalchemy import func, select

from ..domain.stats import percentiles
from ..fulfillment.stats import OrderTrack, to_hours
from ..store.capacity_tables import request_minutes
from ..store.promise_tables import fulfillment_events, fulfillment_orders
from ..store.tables import stock, warehouses
from ..store.tower import TowerRepository
from . import dashboard_data
from .funnel import checkout_success_rate, latency_quantile

# Routes whose requests are not storefront traffic (the dashboard polling itself, probes, scrapes).
NON_TRAFFIC_PREFIXES = ("/dashboard",)


def _empty(message: str, **extra: Any) -> dict[str, Any]:
    return {"state": "empty", "message": message, **extra}


def _reader(engine):
    return engine.connect().execution_options(sqlite_begin="DEFERRED")


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _repo(container) -> TowerRepository:
    repo = container.services.get("tower.repository")
    return repo if repo is not None else TowerRepository(container.engine)


def _quantiles(values: list[float], qs=(0.5, 0.9)) -> dict[str, float | None]:
    return {f"p{int(q * 100)}": None if v is None else round(v, 2) for q, v in zip(qs, percentiles(values, qs))}


# -----------------------------------------------------------------------------------------------------------------
# Small per-container cache for the model-fitting panels


class _Flight:
    """One build in progress: whoever asks for the same key meanwhile waits on ``done`` instead of building too."""

    def __init__(self, version: Any) -> None:
        self.version = version
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class TtlCache:
    """Values that take seconds to build (a model fit), rebuilt at most once per ``ttl_s`` and one build at a time.

    While a key is being rebuilt, callers get its previous value for the same ``version`` when there is one (stale
    by one build at most), and otherwise wait for that one build. Without this, every poll that arrived during a
    slow build (the first fit, with a cold JIT cache) started a build of its own.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[int, str], tuple[float, Any, Any]] = {}
        self._flights: dict[tuple[int, str], _Flight] = {}

    def get(self, container, name: str, ttl_s: float, build: Callable[[], Any], version: Any = None) -> Any:
        """The cached value unless older than ``ttl_s`` or built for another ``version`` (e.g. another minute)."""
        key = (id(container), name)
        while True:
            with self._lock:
                hit = self._items.get(key)
                if hit is not None and hit[2] == version and time.monotonic() - hit[0] < ttl_s:
                    return hit[1]
                flight = self._flights.get(key)
                if flight is None:
                    flight = self._flights[key] = _Flight(version)
                    break  # this caller builds
                if hit is not None and hit[2] == version:
                    return hit[1]  # someone is rebuilding it: the previous value meanwhile
            flight.done.wait()
            if flight.version == version:
                if flight.error is not None:
                    raise flight.error
                return flight.value
            # a build for another version finished: look again
        try:
            flight.value = build()
        except BaseException as exc:
            flight.error = exc
            raise
        else:
            with self._lock:
                self._items[key] = (time.monotonic(), flight.value, version)
            return flight.value
        finally:
            with self._lock:
                self._flights.pop(key, None)
            flight.done.set()

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


PLAN_CACHE = TtlCache()
PLAN_CACHE_TTL_S = 30.0


# -----------------------------------------------------------------------------------------------------------------
# Traffic vs forecast


def traffic_totals(engine, since: datetime, until: datetime) -> dict[datetime, tuple[int, int, float]]:
    """Requests, 5xx errors and latency sum per minute over every storefront/API route (dashboard excluded)."""
    t = request_minutes
    q = select(t.c.minute, func.sum(t.c.count), func.sum(t.c.errors), func.sum(t.c.latency_ms_sum)).where(
        t.c.minute >= since, t.c.minute < until)
    for prefix in NON_TRAFFIC_PREFIXES:
        q = q.where(~t.c.route.startswith(prefix))
    q = q.group_by(t.c.minute).order_by(t.c.minute)
    with _reader(engine) as conn:
        rows = conn.execute(q).all()
    return {_aware(m): (int(c or 0), int(e or 0), float(s or 0.0)) for m, c, e, s in rows}


def traffic_panel(container, now: datetime, minutes: int = 120, horizon: int = 60) -> dict[str, Any]:
    """Cached :func:`build_traffic_panel`: it only changes when a minute completes (replaying a week of minutes
    takes about half a second), so it is rebuilt when the minute turns or after 15 s (late rollup flushes)."""
    minute = now.astimezone(timezone.utc).replace(second=0, microsecond=0)
    return PLAN_CACHE.get(container, f"traffic:{minutes}:{horizon}", 15.0,
                          lambda: build_traffic_panel(container, now, minutes, horizon), version=minute)


def build_traffic_panel(container, now: datetime, minutes: int = 120, horizon: int = 60) -> dict[str, Any]:
    """Requests per minute for the last ``minutes`` next to what the online traffic forecaster expected for each
    of those minutes one minute ahead, and its mean and upper-quantile forecast for the next ``horizon`` minutes.

    The forecaster (``shopfloor.forecast.traffic.OnlineTrafficForecaster``, the capacity planner's model) replays
    the ``capacity_history_days`` of rollups, so the past forecasts are honest: each one saw only earlier minutes.
    """
    s = container.settings
    until = now.astimezone(timezone.utc).replace(second=0, microsecond=0)  # the current minute is incomplete
    since = until - timedelta(days=s.capacity_history_days)
    totals = traffic_totals(container.engine, since, until)
    if not totals:
        return _empty("no requests recorded yet")
    first = min(totals)
    n = int((until - first) / timedelta(minutes=1))
    values = np.zeros(n)
    errors = np.zeros(n)
    latency = np.zeros(n)
    for m, (c, e, lat) in totals.items():
        i = int((m - first) / timedelta(minutes=1))
        values[i], errors[i], latency[i] = c, e, lat
    quantile = s.capacity_forecast_quantile
    from ..forecast.traffic import OnlineForecastConfig, OnlineTrafficForecaster  # pandas: load on first use

    model = OnlineTrafficForecaster(OnlineForecastConfig(quantile=quantile))
    window_start = max(0, n - minutes)
    past_mean = [None] * (n - window_start)
    past_upper = [None] * (n - window_start)
    for i, v in enumerate(values):
        if i >= window_start and i > 0:
            fc = model.forecast(1)
            past_mean[i - window_start] = round(float(fc.mean[0]), 2)
            past_upper[i - window_start] = round(float(fc.upper[0]), 2)
        elif i % 10 == 0 and i >= model.config.level_minutes:
            model.forecast(15)  # fills the error pool the upper quantile comes from, as the planner does
        model.observe(v)
    ahead = model.forecast(horizon)
    axis = [first + timedelta(minutes=i) for i in range(window_start, n)]
    future = [until + timedelta(minutes=k) for k in range(horizon)]
    count = values[window_start:]
    lat_mean = [round(latency[i] / values[i], 2) if values[i] else None for i in range(window_start, n)]
    last15 = values[max(0, n - 15):]
    return {
        "state": "ready",
        "quantile": quantile,
        "minutes": [m.isoformat() for m in axis],
        "requests": [int(x) for x in count],
        "errors": [int(x) for x in errors[window_start:]],
        "latency_ms_mean": lat_mean,
        "forecast_mean": past_mean,
        "forecast_upper": past_upper,
        "future_minutes": [m.isoformat() for m in future],
        "future_mean": [round(float(x), 2) for x in ahead.mean],
        "future_upper": [round(float(x), 2) for x in ahead.upper],
        "summary": {
            "requests_last_15m_per_min": round(float(last15.mean()), 2) if len(last15) else 0.0,
            "forecast_next_60m_per_min": round(float(ahead.mean[:60].mean()), 2),
            "observed_minutes": n,
        },
    }


# -----------------------------------------------------------------------------------------------------------------
# Funnel and checkout


def funnel_panel(container, now: datetime, minutes: int = 60) -> dict[str, Any]:
    """Step counts and conversion through the storefront and checkout funnel over the last ``minutes``."""
    conv = dashboard_data.funnel_conversion(_repo(container), now, minutes)
    if not any(step["count"] for step in conv["steps"]):
        return _empty(f"no funnel events in the last {minutes} minutes", window_minutes=minutes)
    # The same window a day earlier, so the page can say whether this hour converts better or worse.
    yesterday = dashboard_data.funnel_conversion(_repo(container), now - timedelta(days=1), minutes)
    return {"state": "ready", **conv, "yesterday": {"steps": yesterday["steps"]}}


def checkout_panel(container, now: datetime, minutes: int = 60) -> dict[str, Any]:
    """Per-minute checkout attempts, successes, sold-out refusals, success rate, mean and 95th-percentile latency
    (funnel rollups; the window's p95 from its summed latency buckets).

    The success rate is taken over the attempts that could succeed: a sold-out refusal (409 ``out_of_stock``) is
    the store answering correctly, so it is shown apart (``refused``) and left out of the rate.
    """
    data = dashboard_data.funnel_series(_repo(container), now, minutes,
                                        ["checkout_attempt", "checkout_succeeded", "checkout_refused"])
    attempt = data["series"].get("checkout_attempt")
    if attempt is None or not any(attempt["count"]):
        return _empty(f"no checkouts in the last {minutes} minutes", window_minutes=minutes)
    zeros = {"count": [0] * minutes, "latency_ms_mean": [None] * minutes, "latency_ms_p95": [None] * minutes}
    ok = data["series"].get("checkout_succeeded") or zeros
    refused = data["series"].get("checkout_refused") or zeros
    rate = [round(r, 4) if (r := checkout_success_rate(a, s, x)) is not None else None
            for a, s, x in zip(attempt["count"], ok["count"], refused["count"])]
    attempts, succeeded, refusals = sum(attempt["count"]), sum(ok["count"]), sum(refused["count"])
    weights = [(c, m) for c, m in zip(attempt["count"], attempt["latency_ms_mean"]) if m is not None and c]
    mean_latency = sum(c * m for c, m in weights) / sum(c for c, _ in weights) if weights else None
    p95 = latency_quantile(attempt["latency_buckets"], 0.95) if attempt.get("latency_buckets") else None
    # The same window a day earlier (totals only), so the page can put this hour's numbers in context.
    until = datetime.fromisoformat(data["minutes"][-1]) + timedelta(minutes=1) - timedelta(days=1)
    before = _repo(container).funnel_totals(until - timedelta(minutes=minutes), until)
    return {
        "state": "ready",
        "window_minutes": minutes,
        "minutes": data["minutes"],
        "attempts": attempt["count"],
        "succeeded": ok["count"],
        "refused": refused["count"],
        "success_rate": rate,
        "latency_ms_mean": attempt["latency_ms_mean"],
        "latency_ms_p95": attempt["latency_ms_p95"],
        "succeeded_latency_ms_mean": ok["latency_ms_mean"],
        "summary": {
            **_checkout_totals(attempts, succeeded, refusals),
            "latency_ms_mean": round(mean_latency, 2) if mean_latency is not None else None,
            "latency_ms_p95": round(p95, 2) if p95 is not None else None,
        },
        "yesterday": _checkout_totals(*(before.get(k, 0) for k in ("checkout_attempt", "checkout_succeeded",
                                                                   "checkout_refused"))),
    }


def _checkout_totals(attempts: int, succeeded: int, refused: int) -> dict[str, Any]:
    """A window's checkout totals and success rate (sold-out refusals apart, see :func:`checkout_panel`)."""
    rate = checkout_success_rate(attempts, succeeded, refused)
    return {"attempts": attempts, "succeeded": succeeded, "refused_out_of_stock": refused,
            "failed": attempts - succeeded - refused,
            "success_rate": round(rate, 4) if rate is not None else None}


# -----------------------------------------------------------------------------------------------------------------
# Payments


def payments_panel(container, now: datetime, snapshot_max_age_s: float = 300.0) -> dict[str, Any]:
    """Breaker state and recent failure rate per processor: this process's live view plus the snapshots every
    server process persists (``payment_processor_health``), so one page shows what all replicas see."""
    payments = container.services.get("payments")
    if payments is None:
        return _empty("payments service is not configured")
    live = payments.health()
    order = payments.processor_order()
    snapshots = payments.health_store.read(max_age_s=snapshot_max_age_s)
    per_processor: dict[str, dict[str, Any]] = {}
    for item in live:
        counters = item.get("counters") or {}
        per_processor[item["processor"]] = {
            "processor": item["processor"],
            "position": item.get("position"),
            "breaker_state": item["breaker_state"],
            "window_calls": item["window_calls"],
            "window_failure_pct": item["window_failure_pct"],
            "counters": counters,
            "instances": [],
        }
    for snap in snapshots:
        entry = per_processor.setdefault(snap["processor"], {
            "processor": snap["processor"], "position": None, "breaker_state": snap["breaker_state"],
            "window_calls": 0, "window_failure_pct": 0.0, "counters": {}, "instances": []})
        entry["instances"].append({
            "instance": snap["instance"],
            "breaker_state": snap["breaker_state"],
            "window_calls": snap["window_calls"],
            "window_failure_pct": snap["window_failure_pct"],
            "counters": snap.get("counters") or {},
            "updated_at": _aware(snap["updated_at"]).isoformat() if snap.get("updated_at") else None,
        })
    processors = sorted(per_processor.values(),
                        key=lambda p: (p["position"] if p["position"] is not None else 99, p["processor"]))
    for p in processors:
        states = {p["breaker_state"], *(i["breaker_state"] for i in p["instances"])}
        # The worst state any replica reports is the one to show: an open breaker anywhere matters.
        p["worst_state"] = "open" if "open" in states else ("half_open" if "half_open" in states else "closed")
        totals: dict[str, int] = defaultdict(int)
        sources = p["instances"] or [{"counters": p["counters"]}]
        for inst in sources:
            for k, v in (inst["counters"] or {}).items():
                if isinstance(v, (int, float)):
                    totals[k] += int(v)
        p["counters_total"] = dict(totals)
    # The order the processors were configured in: when ``order`` differs, traffic has failed over.
    router = getattr(payments, "router", None)
    configured = list(router.processor_names) if router is not None else list(order)
    return {"state": "ready", "order": order, "configured_order": configured, "processors": processors,
            "snapshot_max_age_s": snapshot_max_age_s}


# -----------------------------------------------------------------------------------------------------------------
# Inventory freshness and stock risk


def _restock_plan(container) -> dict[str, Any]:
    from ..bootstrap import build_restock_planner

    return PLAN_CACHE.get(container, "restock", PLAN_CACHE_TTL_S,
                          lambda: build_restock_planner(container).plan().to_dict())


def _capacity_plan(container) -> dict[str, Any]:
    from ..planning.capacity_service import service_for

    def build() -> dict[str, Any]:
        return service_for(container).plan().to_dict()

    return PLAN_CACHE.get(container, "capacity", PLAN_CACHE_TTL_S, build)


def inventory_panel(container, now: datetime, max_risks: int = 25) -> dict[str, Any]:
    """Per warehouse: when its stock was last updated and when its fulfillment feed last reported (age in hours,
    stale past ``promise_stale_feed_after_h``); and the SKUs the restock plan says may sell out."""
    stale_h = container.settings.promise_stale_feed_after_h
    with _reader(container.engine) as conn:
        whs = conn.execute(select(warehouses.c.id, warehouses.c.region)).all()
        stock_rows = dict(conn.execute(select(stock.c.warehouse, func.max(stock.c.updated_at))
                                       .group_by(stock.c.warehouse)).all())
        feed_rows = {r[0]: (r[1], r[2], r[3]) for r in conn.execute(
            select(fulfillment_events.c.warehouse, func.max(fulfillment_events.c.at),
                   func.max(fulfillment_events.c.received_at), func.count())
            .group_by(fulfillment_events.c.warehouse))}
    ids = sorted({w.id for w in whs} | set(feed_rows))
    feeds = []
    for wid in ids:
        stock_at = _aware(stock_rows.get(wid))
        event_at, received_at, events = feed_rows.get(wid, (None, None, 0))
        event_at, received_at = _aware(event_at), _aware(received_at)
        feed_age_h = round((now - received_at).total_seconds() / 3600.0, 2) if received_at else None
        feeds.append({
            "warehouse": wid,
            "stock_updated_at": stock_at.isoformat() if stock_at else None,
            "stock_age_h": round((now - stock_at).total_seconds() / 3600.0, 2) if stock_at else None,
            "last_event_at": event_at.isoformat() if event_at else None,
            "last_received_at": received_at.isoformat() if received_at else None,
            "feed_age_h": feed_age_h,
            "events": int(events or 0),
            "stale": feed_age_h is None or feed_age_h > stale_h,
        })
    risks: list[dict[str, Any]] = []
    plan_error = None
    if ids:
        try:
            risks = _restock_plan(container)["sell_out_risks"][:max_risks]
        except ValueError as exc:  # a broken restock policy file: show it, keep the freshness half
            plan_error = str(exc)
    if not feeds:
        return _empty("no warehouses yet")
    return {"state": "ready", "stale_after_h": stale_h, "feeds": feeds, "risks": risks, "plan_error": plan_error}


# -----------------------------------------------------------------------------------------------------------------
# Fulfillment delays


def _journeys(container, since: datetime, limit: int) -> dict[str, dict[str, Any]]:
    fe = fulfillment_events
    q = (select(fe.c.order_id, fe.c.type, fe.c.at, fe.c.warehouse, fe.c.carrier, fe.c.country, fe.c.region,
                fe.c.placed_at, fe.c.origin_region)
         .where(fe.c.at >= since).order_by(fe.c.at.desc()).limit(limit))
    with _reader(container.engine) as conn:
        rows = conn.execute(q).all()
        regions = dict(conn.execute(select(warehouses.c.id, warehouses.c.region)).all())
    orders: dict[str, dict[str, Any]] = {}
    for r in rows:
        o = orders.setdefault(r.order_id, {"warehouse": r.warehouse, "dest": None, "carrier": None,
                                           "origin": regions.get(r.warehouse), "times": {}})
        o["dest"] = o["dest"] or r.region or r.country
        o["carrier"] = o["carrier"] or r.carrier
        o["origin"] = o["origin"] or r.origin_region
        at = _aware(r.at)
        prev = o["times"].get(r.type)
        o["times"][r.type] = at if prev is None else min(prev, at)
        if r.placed_at is not None:
            o["times"].setdefault("placed", _aware(r.placed_at))
    return orders


def fulfillment_panel(container, now: datetime, days: int = 30, limit: int = 50_000) -> dict[str, Any]:
    """Pick/pack (order start -> packed), carrier handoff (packed -> handed to carrier) per warehouse, and transit
    (handed -> delivered) per lane, in hours (p50, p90) over the fulfillment events of the last ``days``.

    A lane starts at the warehouse (its id, as the store names it; ``origin_region`` is the warehouse's region,
    e.g. ``eu-central`` for ``de-central``) and ends at the destination region or country."""
    orders = _journeys(container, now - timedelta(days=days), limit)
    if not orders:
        return _empty(f"no fulfillment events in the last {days} days", window_days=days)
    pick: dict[str, list[float]] = defaultdict(list)
    handoff: dict[str, list[float]] = defaultdict(list)
    transit: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    lane_regions: dict[tuple[str, str, str], str | None] = {}

    def hours(a: datetime | None, b: datetime | None) -> float | None:
        return max(0.0, (b - a).total_seconds() / 3600.0) if a is not None and b is not None else None

    for o in orders.values():
        t = o["times"]
        start = t.get("placed") or t.get("approved")
        packed = t.get("packed") or t.get("picked")
        if (h := hours(start, packed)) is not None:
            pick[o["warehouse"]].append(h)
        if (h := hours(packed, t.get("handed_to_carrier"))) is not None:
            handoff[o["warehouse"]].append(h)
        if (h := hours(t.get("handed_to_carrier"), t.get("delivered"))) is not None:
            lane = (o["warehouse"] or o["origin"] or "?", o["dest"] or "?", o["carrier"] or "any")
            transit[lane].append(h)
            lane_regions.setdefault(lane, o["origin"])
    wh_ids = sorted(set(pick) | set(handoff))
    per_warehouse = [{"warehouse": w, "orders": max(len(pick.get(w, [])), len(handoff.get(w, []))),
                      "pick_pack_h": _quantiles(pick.get(w, [])), "handoff_h": _quantiles(handoff.get(w, []))}
                     for w in wh_ids]
    lanes = sorted(({"origin": k[0], "origin_region": lane_regions.get(k), "destination": k[1], "carrier": k[2],
                     "deliveries": len(v), "transit_h": _quantiles(v)} for k, v in transit.items()),
                   key=lambda x: (-x["deliveries"], x["origin"], x["destination"], x["carrier"]))
    if not per_warehouse and not lanes:
        return _empty("events so far complete no pick/pack, handoff or transit leg", window_days=days,
                      orders=len(orders))
    return {"state": "ready", "window_days": days, "orders": len(orders), "warehouses": per_warehouse,
            "lanes": lanes[:50], **_analytics_section(container, now, days)}


def _analytics_section(container, now: datetime, days: int, top: int = 10) -> dict[str, Any]:
    """The fulfillment analytics of the same window (computed in the database): per warehouse split-shipment and
    backorder rates and inventory age; the SKUs returned most, with their rates and reasons; live listing flags."""
    from ..bootstrap import build_fulfillment_analytics

    signals = container.services.get("tower.fulfillment_signals")
    if signals is not None and signals.window_days == days:  # the report the rules and /metrics use (cached)
        report = signals.report()
    else:
        report = build_fulfillment_analytics(container).report(now - timedelta(days=days), now)
    measures = [{"warehouse": w.warehouse, "split_shipment_rate": w.split_shipment_rate,
                 "backorder_rate": w.backorder_rate, "inventory_age_p50_d": w.inventory_age_p50_d,
                 "pick_pack_p90_h": w.pick_pack_p90_h} for w in report.warehouses]
    returned = sorted((s for s in report.skus if s.units_returned), key=lambda s: (-s.units_returned, s.sku))
    returns = [{"sku": s.sku, "units_sold": s.units_sold, "units_returned": s.units_returned,
                "return_rate": s.return_rate, "listing_return_rate": s.listing_return_rate(),
                "reasons": s.returns_by_reason} for s in returned[:top]]
    sold = sum(s.units_sold for s in report.skus)
    back = sum(s.units_returned for s in report.skus)
    flags = _repo(container).active_listing_flags(now)
    return {"measures": measures, "returns": returns, "listing_flags": flags,
            "returns_summary": {"units_returned": back, "units_sold": sold,
                                "return_rate": back / sold if sold else None}}


# -----------------------------------------------------------------------------------------------------------------
# Promise accuracy


def promise_panel(container, now: datetime, days: int = 90, limit: int = 50_000) -> dict[str, Any]:
    """Delivered vs promised for orders whose promise was recorded at checkout (tracks touched in ``days``).

    Kept: delivered by the end of the promised day. Missed: delivered later, or undelivered once the day ended.
    Pending: neither yet. ``lateness_days`` is delivered day minus promised day (negative = early).
    """
    fo = fulfillment_orders
    q = (select(fo.c.track).where(fo.c.updated_at >= now - timedelta(days=days))
         .order_by(fo.c.updated_at.desc()).limit(limit))
    with _reader(container.engine) as conn:
        texts = [r[0] for r in conn.execute(q)]
    now_h = to_hours(now)
    kept = missed = pending = voided = 0
    lateness: dict[int, int] = defaultdict(int)
    by_conf: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for text in texts:
        track = OrderTrack.from_json(text)
        if track.promise_conf is None or track.promise_due_h is None:
            continue
        if track.outcome == "void" or (track.exception and track.delivered_h is None):
            voided += 1
            continue
        conf = f"{track.promise_conf:.3f}"
        if track.delivered_h is not None:
            ok = track.delivered_h <= track.promise_due_h
            promised_day = math.floor((track.promise_due_h - 1e-6) / 24.0)
            lateness[math.floor(track.delivered_h / 24.0) - promised_day] += 1
        elif now_h > track.promise_due_h:
            ok = False
        else:
            pending += 1
            continue
        kept += ok
        missed += not ok
        by_conf[conf][0] += ok
        by_conf[conf][1] += 1
    resolved = kept + missed
    if resolved == 0 and pending == 0:
        return _empty("no orders with a recorded promise yet", window_days=days)
    hist_days = sorted(lateness)
    return {
        "state": "ready",
        "window_days": days,
        "kept": kept,
        "missed": missed,
        "pending": pending,
        "voided": voided,
        "on_time_rate": round(kept / resolved, 4) if resolved else None,
        "by_confidence": [{"confidence": float(c), "kept": v[0], "resolved": v[1],
                           "on_time_rate": round(v[0] / v[1], 4) if v[1] else None}
                          for c, v in sorted(by_conf.items())],
        "lateness_days": [{"days": d, "orders": lateness[d]} for d in hist_days],
    }


# -----------------------------------------------------------------------------------------------------------------
# Plans


def plans_panel(container, now: datetime, max_lines: int = 50) -> dict[str, Any]:
    """The restock plan (lines that order something or are urgent first) and the capacity plan's slots."""
    out: dict[str, Any] = {"state": "ready"}
    try:
        restock = _restock_plan(container)
        lines = sorted(restock["lines"], key=lambda ln: (not ln["urgent"], -ln["order_qty"],
                                                         -ln["stockout_probability"], ln["sku"], ln["warehouse"]))
        out["restock"] = {"as_of": restock["as_of"], "summary": restock["summary"], "lines": lines[:max_lines]}
    except ValueError as exc:
        out["restock"] = {"error": str(exc), "summary": None, "lines": []}
    try:
        capacity = _capacity_plan(container)
        out["capacity"] = {k: capacity[k] for k in ("generated_at", "observed_minutes", "last_minute_requests",
                                                       "reactive_floor_now", "peak_replicas", "policy", "slots")}
        from ..planning.capacity_service import desired_now

        out["capacity"]["planner_now"] = desired_now(container).to_dict()  # what KEDA's planner trigger reads
    except ValueError as exc:  # CapacityInputError: a settings problem
        out["capacity"] = {"error": str(exc), "slots": []}
    s = container.settings
    until = now.astimezone(timezone.utc)
    has_traffic = bool(traffic_totals(container.engine, until - timedelta(days=s.capacity_history_days), until))
    if not out["restock"]["lines"] and not has_traffic:
        return _empty("no stock positions and no traffic yet", **{k: out[k] for k in ("restock", "capacity")})
    return out


# -----------------------------------------------------------------------------------------------------------------
# Alerts and the action log


def alerts_panel(container, now: datetime, hours: float = 24, limit: int = 50) -> dict[str, Any]:
    """Alerts raised in the last ``hours`` and the latest action-log entries, newest first."""
    repo = _repo(container)
    alerts = dashboard_data.recent_alerts(repo, now, hours, limit)
    actions = dashboard_data.recent_actions(repo, limit)
    if not alerts and not actions:
        return _empty(f"no alerts in the last {hours:g} h and no actions logged", alerts=[], actions=[])
    return {"state": "ready", "window_hours": hours, "alerts": alerts, "actions": actions}


# -----------------------------------------------------------------------------------------------------------------
# Edge cache


EDGE_NOT_RUNNING = ("no edge cache in front of this server: `shopfloor edge up` starts one (nginx: "
                    "tools/install-nginx.sh), and this panel then shows its hit ratio")


def cache_panel(container, now: datetime, minutes: int = 60) -> dict[str, Any]:
    """Hit ratio and stale serves per edge node and at the shield, and origin requests per minute, from the edges'
    access logs (``services["edge.log_stats"]``) over the last ``minutes``."""
    source = container.services.get("edge.log_stats")
    if source is None:
        return _empty(EDGE_NOT_RUNNING)
    snap = source.snapshot(now.timestamp(), minutes)
    if not any(n["requests"] for n in snap["nodes"].values()):
        if not any(n["log_present"] for n in snap["nodes"].values()):
            return _empty(EDGE_NOT_RUNNING, **snap)
        return _empty(f"no cacheable requests in the edges' access logs in the last {minutes} min", **snap)
    return {"state": "ready", "window_minutes": minutes, **snap}


PANELS: dict[str, Callable[..., dict[str, Any]]] = {
    "traffic": traffic_panel,
    "funnel": funnel_panel,
    "checkout": checkout_panel,
    "payments": payments_panel,
    "inventory": inventory_panel,
    "fulfillment": fulfillment_panel,
    "promise": promise_panel,
    "plans": plans_panel,
    "alerts": alerts_panel,
    "cache": cache_panel,
}
