"""The promise engine: stock status plus a delivery window from live fulfillment statistics."""

from __future__ import annotations

import math

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from ..domain.catalog import Warehouse
from ..domain.clock import Clock, SystemClock, ensure_utc
from ..domain.promise import (
    REASON_AFTER_CUTOFF,
    REASON_BACKORDER_ETA,
    REASON_CALIBRATION,
    REASON_DRIFT,
    REASON_IN_FLIGHT,
    REASON_NO_HISTORY,
    REASON_SURGE,
    BusinessCalendar,
    DegradationPolicy,
    LiveSignals,
    PromiseStatus,
    availability_status,
    degrade,
    end_of_day,
    merge_reasons,
    ship_date,
)
from ..domain.errors import OutOfStock
from ..domain.stock import OrderLineRequest, StockLevel, merge_lines, plan_allocation
from ..fulfillment.stats import (FulfillmentStats, OrderTrack, basis_band, blended_quantile, flight_key, from_hours,
                                 to_hours)
from ..fulfillment.survival import curve_from_array, entries_array


class StockReader(Protocol):
    """Where stock levels and warehouses come from (the store, or an in-memory fake)."""

    def stock_levels(self, sku: str) -> Sequence[StockLevel]: ...

    def warehouses(self) -> Mapping[str, Warehouse]: ...


class IncomingStock(Protocol):
    """Open purchase orders: the expected arrival of ``qty`` more units of ``sku`` (None when none is known)."""

    def backorder_eta(self, sku: str, qty: int, at: datetime) -> tuple[datetime, str | None] | None: ...


class StatsSource(Protocol):
    """Current fulfillment statistics (possibly cached and refreshed) and where issued promises are recorded."""

    def current(self) -> FulfillmentStats: ...

    def record_promise(self, order_id: str, window: "DeliveryWindow") -> None: ...


class NoIncomingStock:
    def backorder_eta(self, sku: str, qty: int, at: datetime) -> tuple[datetime, str | None] | None:
        return None


class InMemoryStats:
    """A ``StatsSource`` over one in-memory ``FulfillmentStats`` (backtests, tests)."""

    def __init__(self, stats: FulfillmentStats) -> None:
        self.stats = stats
        self.tracks: dict[str, OrderTrack] = {}

    def current(self) -> FulfillmentStats:
        return self.stats

    def record_promise(self, order_id: str, window: "DeliveryWindow") -> None:
        track = self.tracks.setdefault(order_id, OrderTrack(order_id))
        window.attach_to(track)


@dataclass(frozen=True, slots=True)
class PromiseConfig:
    """Promise policy. ``region_map`` maps country -> postal prefix -> region for destinations."""

    confidence: float = 0.9
    limited_threshold: int = 5
    calendar: BusinessCalendar = field(default_factory=BusinessCalendar)
    degradation: DegradationPolicy = field(default_factory=DegradationPolicy)
    region_map: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    default_processing_h: float = 48.0
    default_transit_h: float = 24.0 * 5
    min_residual_weight: float = 30.0
    use_calibration: bool = True
    network_load_signal: bool = True
    learn_cutoff: bool = True  # use a warehouse's learned same-day cutoff when earlier than the configured one
    coverage_gain: float = 0.5
    # Scale promises by the recent share of orders late against their median ETA (see _drift_factor).
    eta_drift_signal: bool = True
    eta_drift_deadband: float = 0.1
    eta_drift_max: float = 1.6  # level += gain * (confidence - recent on-time rate)
    # Memoise delivery windows per (warehouse, lane, minute) while the statistics object is unchanged. Only for
    # sources that swap in a new statistics object on change (the SQL source does; the in-memory one does not).
    cache_windows: bool = False
    # Kaplan-Meier over recent promised orders, in-flight ones as censored (fulfillment.survival): "off", "widen"
    # (promise at least that quantile) or "replace" (use it instead of the deadline-resolved residuals when it
    # reaches the level). Recomputed at most every ``km_refresh_h`` hours of the clock.
    km_scores: str = "widen"
    km_refresh_h: float = 6.0
    km_min_weight: float = 30.0
    km_margin: float = 1.0  # widen when the in-flight quantile exceeds the residuals' by more than this factor
    km_anchor: str = "level"  # compare the two at the promise's level, or at the median (steadier)


@dataclass(frozen=True, slots=True)
class DeliveryWindow:
    warehouse: str
    placed_at: datetime
    ship_by: date
    deliver_by: date
    eta_p50: date
    p50_hours: float
    basis_hours: float  # the statistics' own estimate, before calibration; residuals are measured against it
    confidence: float
    provisional: bool
    reasons: tuple[str, ...]

    def attach_to(self, track: OrderTrack) -> None:
        track.warehouse = track.warehouse or self.warehouse
        track.placed_h = track.placed_h if track.placed_h is not None else to_hours(self.placed_at)
        track.promise_conf = self.confidence
        track.promise_p50_h = self.basis_hours
        track.promise_due_h = to_hours(end_of_day(self.deliver_by))
        track.promise_eta_h = to_hours(end_of_day(self.eta_p50))


@dataclass(frozen=True, slots=True)
class Promise:
    sku: str
    qty: int
    status: PromiseStatus
    warehouse: str | None
    ship_by: date | None
    deliver_by: date | None
    eta_p50: date | None
    confidence: float
    provisional: bool
    reasons: tuple[str, ...]
    available: int
    backorder_expected_at: datetime | None = None
    window: DeliveryWindow | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "qty": self.qty,
            "status": str(self.status),
            "warehouse": self.warehouse,
            "ship_by": self.ship_by.isoformat() if self.ship_by else None,
            "deliver_by": self.deliver_by.isoformat() if self.deliver_by else None,
            "eta_p50": self.eta_p50.isoformat() if self.eta_p50 else None,
            "confidence": self.confidence,
            "provisional": self.provisional,
            "reasons": list(self.reasons),
            "available": self.available,
            "backorder_expected_at": self.backorder_expected_at.isoformat() if self.backorder_expected_at else None,
        }


class PromiseEngine:
    """Availability and delivery promises. ``promise_for`` is the single-SKU hot path; ``promises_for`` batches."""

    def __init__(
        self,
        stock: StockReader | None,
        stats: StatsSource,
        config: PromiseConfig | None = None,
        *,
        incoming: IncomingStock | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.stock = stock
        self.stats = stats
        self.config = config or PromiseConfig()
        self.incoming = incoming or NoIncomingStock()
        self.clock = clock or SystemClock()
        self._windows: dict[tuple, DeliveryWindow] = {}
        self._km: dict[tuple, tuple] = {}

    # ------------------------------------------------------------------ destinations
    def destination_region(self, country: str, postal_code: str) -> str:
        """Region of a destination: the longest matching configured postal prefix, else the country code."""
        country = country.upper()
        prefixes = self.config.region_map.get(country) or {}
        best, best_len = country, -1
        for prefix, region in prefixes.items():
            if postal_code.startswith(prefix) and len(prefix) > best_len:
                best, best_len = region, len(prefix)
        return best

    # ------------------------------------------------------------------ the delivery window
    def delivery_window(
        self,
        warehouse: str,
        origin_region: str | None,
        dest_region: str | None,
        at: datetime,
        *,
        carrier: str | None = None,
        confidence: float | None = None,
    ) -> DeliveryWindow:
        """When an order placed ``at`` and shipped from ``warehouse`` ships and arrives, at ``confidence``."""
        cfg = self.config
        conf = cfg.confidence if confidence is None else confidence
        at = ensure_utc(at)
        stats = self.stats.current()
        if cfg.cache_windows:
            # Windows are cached per minute; a feed that went stale within the minute must not wait for the next
            # one, so the feed's age is taken at the real time and its staleness is part of the key.
            feed_at_h = to_hours(at)
            at = at.replace(second=0, microsecond=0)
            key = (warehouse, origin_region, dest_region, carrier, conf, at, id(stats),
                   self._feed_stale(stats, warehouse, feed_at_h))
            hit = self._windows.get(key)
            if hit is not None:
                return hit
            if len(self._windows) > 8192:
                self._windows.clear()
            window = self._window(warehouse, origin_region, dest_region, at, carrier, conf, stats, feed_at_h)
            self._windows[key] = window
            return window
        return self._window(warehouse, origin_region, dest_region, at, carrier, conf, stats)

    def _feed_stale(self, stats: FulfillmentStats, warehouse: str, at_h: float) -> bool:
        after = self.config.degradation.stale_feed_after_h
        if after is None:
            return False
        wh = stats.get(f"wh:{warehouse}")
        return wh is None or wh.last_event_h is None or at_h - wh.last_event_h > after

    def _window(self, warehouse: str, origin_region: str | None, dest_region: str | None, at: datetime,
                carrier: str | None, conf: float, stats: FulfillmentStats,
                feed_at_h: float | None = None) -> DeliveryWindow:
        cfg = self.config
        at_h = to_hours(at)
        reasons: list[str] = []
        provisional = False

        k = stats.config.min_lane_weight
        proc_chain, proc_fb = stats.processing_chain(warehouse, origin_region, at_h)
        if not proc_chain:
            proc_p50, proc_q = cfg.default_processing_h, cfg.default_processing_h * 2
            reasons.append(REASON_NO_HISTORY)
            provisional = True
        else:
            kp = stats.config.min_processing_weight
            proc_p50, proc_q = blended_quantile(proc_chain, 0.5, kp), blended_quantile(proc_chain, conf, kp)
        lane_chain, lane_fb = stats.lane_chain(origin_region, dest_region, carrier, at_h)
        if not lane_chain:
            tr_p50, tr_q = cfg.default_transit_h, cfg.default_transit_h * 2
            if REASON_NO_HISTORY not in reasons:
                reasons.append(REASON_NO_HISTORY)
            provisional = True
        else:
            tr_p50, tr_q = blended_quantile(lane_chain, 0.5, k), blended_quantile(lane_chain, conf, k)

        wh = stats.get(f"wh:{warehouse}")
        feed_h = at_h if feed_at_h is None else feed_at_h
        feed_age = None if wh is None or wh.last_event_h is None else max(0.0, feed_h - wh.last_event_h)
        signals = LiveSignals(
            feed_age_h=feed_age,
            backlog=0 if wh is None else wh.backlog,
            handoff_rate_per_h=0.0 if wh is None else wh.handoffs.rate_per_unit(at_h, 0),
            normal_processing_h=proc_p50,
            missed_pack_share=_share(wh, at_h),
            lane_fallback=lane_fb and bool(lane_chain),
            processing_fallback=proc_fb and bool(proc_chain),
        )
        adj = degrade(signals, cfg.degradation)
        extra_h = adj.extra_processing_h
        if cfg.network_load_signal:
            net_extra = self._network_extra_h(stats, at_h, signals.backlog, signals.handoff_rate_per_h)
            if net_extra > 0:
                extra_h += net_extra
                reasons.append(REASON_SURGE)
        base_h = proc_p50 + extra_h + tr_p50
        p50_h = base_h

        cal = stats.get(f"cal:{conf:.3f}") if cfg.use_calibration else None
        sketch = cal.sketch_for(base_h, at_h, cfg.min_residual_weight) if cal is not None else None
        if sketch is not None:
            level = cal.level
            # Only ever widens, and only the promised date: the median ETA stays the statistics' best guess.
            drift = self._drift_factor(cal, sketch, at_h) if cfg.eta_drift_signal else 1.0
            drift = max(1.0, drift)
            if drift > 1.0:
                reasons.append(REASON_DRIFT)
            resolved = cal.outcomes.value(at_h, 1)
            if cfg.coverage_gain and resolved >= cfg.min_residual_weight:
                # Proportional feedback on the recent realised on-time rate (the level itself also integrates
                # misses when aci_gamma > 0): promise more cautiously while recent promises were missed.
                realised = 1.0 - cal.outcomes.value(at_h, 0) / resolved
                level = min(0.995, max(0.5, level + cfg.coverage_gain * (conf - realised)))
            q_level, q_mid = sketch.quantile(level), sketch.quantile(0.5)
            curve = self._km_curve(stats, conf, base_h, at_h) if cfg.km_scores != "off" else None
            if curve is not None:
                km_level, km_mid = curve.quantile(level), curve.quantile(0.5)
                if cfg.km_scores == "replace":
                    q_level = km_level if km_level is not None else q_level
                    q_mid = km_mid if km_mid is not None else q_mid
                else:
                    # Widen-only, and only past a margin: small gaps are sampling noise of either estimate.
                    if cfg.km_anchor == "median":
                        factor = km_mid / q_mid if (km_mid and q_mid) else 1.0
                    else:
                        factor = km_level / q_level if (km_level and q_level) else 1.0
                    if factor > cfg.km_margin:
                        q_level *= min(factor, cfg.eta_drift_max)
                        reasons.append(REASON_IN_FLIGHT)
            total_q_h = base_h * drift * q_level
            # The median of the sum is not the sum of the medians: recent residuals say by how much.
            p50_h = base_h * q_mid
            if abs(level - conf) > 0.01:
                reasons.append(REASON_CALIBRATION)
        else:
            # No feedback yet: the sum of the two quantiles (conservative, since they rarely peak together).
            total_q_h = proc_q + extra_h + tr_q

        calendar = cfg.calendar
        # Durations above are working hours of the statistics' clock; dates are counted forward on it.
        wc = stats.config.clock
        ship_h = wc.forward(at_h, proc_q + extra_h) - at_h
        ship_by = ship_date(calendar, at, ship_h)
        learned = wh.learned_cutoff_hour(at_h) if (wh is not None and cfg.learn_cutoff) else None
        start_hour = at.hour + at.minute / 60
        if learned is not None and start_hour >= learned and ship_by == at.date():
            # The warehouse's own recent behaviour: orders started this late have mostly not left the same day.
            ship_by = calendar.next_workday(at.date() + timedelta(days=1))
        if ship_by != at.date() and ship_by == calendar.next_workday(at.date() + timedelta(days=1)) and (
                start_hour >= calendar.cutoff_hour or (learned is not None and start_hour >= learned)):
            reasons.append(REASON_AFTER_CUTOFF)
        if adj.min_ship_workdays:
            floor = calendar.add_workdays(at.date(), adj.min_ship_workdays)
            ship_by = max(ship_by, floor)
        deliver_by = from_hours(wc.forward(at_h, total_q_h)).date() + timedelta(days=adj.extra_delivery_days)
        deliver_by = max(deliver_by, ship_by)
        eta = from_hours(wc.forward(at_h, p50_h)).date()
        eta = min(max(eta, at.date()), deliver_by)
        return DeliveryWindow(
            warehouse=warehouse,
            placed_at=at,
            ship_by=ship_by,
            deliver_by=deliver_by,
            eta_p50=eta,
            p50_hours=p50_h,
            basis_hours=base_h,
            confidence=conf,
            provisional=provisional or adj.provisional,
            reasons=tuple(merge_reasons(adj.reasons, reasons)),
        )

    def _km_curve(self, stats: FulfillmentStats, conf: float, basis_h: float, at_h: float) -> Any:
        """The Kaplan-Meier score curve of recent promises at ``conf`` in the basis band of ``basis_h`` (all bands
        pooled when the band is thin), memoised per refresh period."""
        flights = stats.get(flight_key(conf))
        if flights is None:
            return None
        cfg = self.config
        band = basis_band(basis_h)
        slot = math.floor(at_h / cfg.km_refresh_h)
        key = (id(flights), band, slot)
        # One curve per refresh period, computed as of the period's start from what is known at the first ask (a
        # later delivery within the period counts as still in flight at that instant: no look-ahead).
        # Entries hold the state object itself, so its id cannot be reused by another while cached.
        hit = self._km.get(key)
        if hit is not None and hit[2] is flights:
            return hit[1]
        if len(self._km) > 4096:
            self._km.clear()
        t = slot * cfg.km_refresh_h
        sc = stats.config
        arr_key = (id(flights), slot)
        arr = self._km.get(arr_key)
        if arr is None or arr[2] is not flights:
            arr = entries_array(flights.orders.values())
            arr = arr[arr[:, 0] >= t - sc.flight_keep_h]
            bands = np.array([basis_band(b) for b in arr[:, 1]])
            arr = self._km[arr_key] = (arr, bands, flights)
        arr, bands, _ = arr
        curve = curve_from_array(arr[bands == band], t, sc.clock, sc.flight_half_life_h)
        if curve is None or curve.weight < cfg.km_min_weight:
            curve = curve_from_array(arr, t, sc.clock, sc.flight_half_life_h)
        if curve is not None and curve.weight < cfg.km_min_weight:
            curve = None
        self._km[key] = (flights.version, curve, flights)
        return curve

    def _drift_factor(self, cal: Any, sketch: Any, at_h: float) -> float:
        """How much slower (or faster) recent orders run than the residual sketch expects, as a scale factor.

        Half of all orders should arrive by their median ETA. If recently a share ``late`` did not, and the change is
        a change of scale, the old score distribution puts the new median at its ``1 - late`` quantile: the factor is
        ``median / Q(1 - late)``. Known at the ETA day, about half the wait of the promised day.
        """
        cfg = self.config
        eta = cal.eta
        if eta is None:
            return 1.0
        checked = eta.value(at_h, 1)
        if checked < cfg.min_residual_weight:
            return 1.0
        late = eta.value(at_h, 0) / checked
        if abs(late - 0.5) < cfg.eta_drift_deadband:
            return 1.0
        q_new = sketch.quantile(min(0.95, max(0.05, 1.0 - late)))
        median = sketch.quantile(0.5)
        if not q_new or not median:
            return 1.0
        return min(cfg.eta_drift_max, max(1.0 / cfg.eta_drift_max, median / q_new))

    def _network_extra_h(self, stats: FulfillmentStats, at_h: float, wh_backlog: int = 0,
                         wh_rate_per_h: float = 0.0) -> float:
        """Extra processing when the whole network's handoff backlog outgrows its throughput (a surge), applied to
        one warehouse in proportion to its part in that backlog.

        The network wait pools thin warehouses (a marketplace seller with a few orders a week has no usable wait of
        its own). But a backlog held by one warehouse says nothing about the others: a warehouse's share of the
        network backlog over its share of the network's handoffs (capped at 1) scales the extra, so a surge spread
        over the network delays everyone by the network wait, and a warehouse with nothing queued is not delayed by
        another one's queue (which its own ``growing_backlog`` signal already covers). A warehouse with no recent
        handoffs of its own (new, or too thin to have a rate) takes the network wait whole, as before.
        """
        net = stats.get("net")
        glob = stats.get("proc:*")
        if net is None or net.flows is None or glob is None:
            return 0.0
        rate = net.flows.rate_per_unit(at_h, 1)
        normal = glob.hist.quantile(0.5) or 0.0
        if rate <= 0 or normal <= 0 or net.backlog <= 0:
            return 0.0
        wait = net.backlog / rate
        trigger = self.config.degradation.backlog_ratio_trigger * normal
        if wait <= trigger:
            return 0.0
        extra = min(wait - normal, self.config.degradation.max_backlog_widen_h)
        backlog_share = wh_backlog / net.backlog
        rate_share = wh_rate_per_h / rate
        part = 1.0 if rate_share <= 0 else min(1.0, backlog_share / rate_share)
        return extra * part

    # ------------------------------------------------------------------ promises
    def promise_for(self, sku: str, qty: int, country: str, postal_code: str, at: datetime | None = None) -> Promise:
        """The promise for ``qty`` of ``sku`` shipped to ``country``/``postal_code``, as of ``at`` (default now)."""
        if self.stock is None:
            raise RuntimeError("this engine has no stock reader; use delivery_window")
        at = ensure_utc(at) if at is not None else self.clock.now()
        return self._promise(sku, qty, country, postal_code, at, self.stock.warehouses())

    def promises_for(self, requests: Sequence[tuple[str, int, str, str]], at: datetime | None = None) -> list[Promise]:
        """Batch form for listing pages: one clock reading and one warehouse lookup for all requests."""
        if self.stock is None:
            raise RuntimeError("this engine has no stock reader; use delivery_window")
        at = ensure_utc(at) if at is not None else self.clock.now()
        whs = self.stock.warehouses()
        many = getattr(self.stock, "stock_levels_many", None)
        levels = many([r[0] for r in requests]) if callable(many) else None
        return [self._promise(s, q, c, p, at, whs, None if levels is None else levels.get(s, []))
                for s, q, c, p in requests]

    def promise_for_order(self, lines: Sequence[tuple[str, int]], country: str, postal_code: str,
                          at: datetime | None = None) -> list[Promise]:
        """One promise per (merged) line of an order, each from the warehouse the checkout will ship it from.

        Checkout allocates by :func:`~shopfloor.domain.stock.plan_allocation`: the whole order from one warehouse
        when one can ship all of it, split otherwise. A line promised on its own could name a faster warehouse
        that the order will not ship from; here the same plan is run on the same stock first, so each promise
        names the warehouse that really ships its line (a line split over several is promised by its slowest
        source). When the stock cannot cover the order, each line gets its own promise (backorder, unavailable).
        """
        if self.stock is None:
            raise RuntimeError("this engine has no stock reader; use delivery_window")
        at = ensure_utc(at) if at is not None else self.clock.now()
        whs = self.stock.warehouses()
        merged = merge_lines([OrderLineRequest(s, q) for s, q in lines])
        many = getattr(self.stock, "stock_levels_many", None)
        if len(merged) > 1 and callable(many):
            levels = many([l.sku for l in merged])
        else:  # the common single-line order: one indexed look-up
            levels = {l.sku: list(self.stock.stock_levels(l.sku)) for l in merged}
        try:
            plan = plan_allocation(merged, [lv for l in merged for lv in levels.get(l.sku, []) if lv.warehouse in whs],
                                   whs, country, postal_code)
        except OutOfStock:
            plan = []
        sources: dict[str, list[str]] = {}
        for a in plan:
            sources.setdefault(a.sku, []).append(a.warehouse)
        out = []
        for line in merged:
            lv = levels.get(line.sku, [])
            froms = sources.get(line.sku) or [None]
            options = [self._promise(line.sku, line.qty, country, postal_code, at, whs, lv, ship_from=w) for w in froms]
            out.append(max(options, key=lambda p: (p.deliver_by is not None, p.deliver_by or date.min)))
        return out

    def _promise(self, sku: str, qty: int, country: str, postal_code: str, at: datetime,
                 whs: Mapping[str, Warehouse], levels: Sequence[StockLevel] | None = None,
                 ship_from: str | None = None) -> Promise:
        """``ship_from`` pins the warehouse (the order's allocation chose it; a split line may hold fewer than
        ``qty`` units there); without it, the warehouse that can ship ``qty`` soonest is chosen."""
        if qty <= 0:
            raise ValueError("qty must be positive")
        if levels is None:
            levels = self.stock.stock_levels(sku)
        # One pass over the levels (the checkout promises every order): the known warehouses' units that can ship
        # now, the levels that hold the whole quantity, and the pinned warehouse's level when it holds any.
        total = 0
        candidates = []
        pinned = []
        for lv in levels:
            if lv.warehouse not in whs:
                continue
            free = lv.on_hand - lv.reserved
            if free > 0:
                total += free
                if ship_from and lv.warehouse == ship_from:
                    pinned.append(lv)
            if free >= qty:
                candidates.append(lv)
        dest = self.destination_region(country, postal_code)
        if pinned and total >= qty:
            candidates = pinned
        conf = self.config.confidence
        if not candidates:
            eta = self.incoming.backorder_eta(sku, qty, at)
            status = availability_status(total, qty, self.config.limited_threshold, eta is not None)
            if eta is None:
                return Promise(sku, qty, status, None, None, None, None, conf, False, (), total)
            arrival, wid = eta
            arrival = ensure_utc(arrival)
            window = None
            if wid is not None and wid in whs:
                w = whs[wid]
                window = self.delivery_window(wid, w.region, dest, max(arrival, at))
            reasons = (REASON_BACKORDER_ETA,) + (window.reasons if window else ())
            return Promise(sku, qty, status, wid, window.ship_by if window else None,
                           window.deliver_by if window else None, window.eta_p50 if window else None,
                           conf, True, reasons, total, arrival, window=window)
        best: tuple | None = None
        for lv in candidates:
            w = whs[lv.warehouse]
            window = self.delivery_window(lv.warehouse, w.region, dest, at)
            local = w.prefix_match_len(country, postal_code)
            key = (window.deliver_by, window.provisional, -local, lv.warehouse)
            if best is None or key < best[0]:
                best = (key, lv, window)
        assert best is not None
        _, lv, window = best
        status = availability_status(lv.available if lv.available >= qty else total, qty,
                                     self.config.limited_threshold, False)
        return Promise(sku, qty, status, lv.warehouse, window.ship_by, window.deliver_by, window.eta_p50, conf,
                       window.provisional, window.reasons, total, window=window)

    def record_promise(self, order_id: str, promise: "Promise | DeliveryWindow") -> None:
        """Remember the promise shown for an order (checkout calls this after placing it), so that its outcome
        feeds online calibration. Promises without a delivery window (unavailable) are ignored."""
        window = promise.window if isinstance(promise, Promise) else promise
        if window is not None:
            self.stats.record_promise(order_id, window)


def _share(wh: Any, at_h: float) -> float:
    if wh is None:
        return 0.0
    total = wh.handoffs.value(at_h, 0)
    if total < 3:
        return 0.0
    return wh.handoffs.value(at_h, 1) / total

