"""Fulfillment statistics: per warehouse, per region, per lane and calibration state, updated event by event.

Everything is keyed state (``wh:<id>``, ``proc:<region>``, ``lane:<origin>|<dest>|<carrier>``, ``cal:<level>``,
``net``) so a store can persist, lock and reload exactly the keys an event touches. ``FulfillmentStats`` is pure
Python and fast; ``shopfloor.store.promise`` persists it and the backtest drives it in memory.

Times inside the statistics are hours since the Unix epoch (floats); durations are hours.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Iterable

import orjson

from ..domain.clock import ensure_utc
from ..domain.promise import adapt_level
from .sketch import DecayingCounter, DecayingHistogram

EVENT_TYPES = ("approved", "picked", "packed", "handed_to_carrier", "delivered", "exception", "returned")
#: Why a customer sent units back (the ``reason`` of a ``returned`` event). ``fit`` and ``not_as_described`` are
#: the listing's fault (size guide, copy, pictures); the others are the product's, the carrier's or the calendar's.
RETURN_REASONS = ("fit", "quality", "not_as_described", "damaged", "late", "other")
ANY = "*"


def to_hours(at: datetime) -> float:
    return ensure_utc(at).timestamp() / 3600.0


def from_hours(h: float) -> datetime:
    return datetime.fromtimestamp(h * 3600.0, tz=timezone.utc)


_MONDAY_H = 96.0  # 1970-01-05 00:00 UTC, the first Monday after the epoch


@dataclass(frozen=True, slots=True)
class WorkClock:
    """Hours that count: weekdays fully, Saturdays and Sundays at ``weekend_weight`` (0 < w <= 1).

    Parcels are picked, handed off and delivered on working days, so an order placed on Friday evening waits out the
    weekend before anything happens. Durations measured on this clock (and promises counted forward on it) make a
    Thursday order's promise longer in calendar days than a Monday order's, from the same statistics. ``w = 1`` is
    plain calendar time. ``at``/``back`` map calendar hours since the epoch to working hours and back (``back`` of
    ``at`` is the identity; the map is strictly increasing).
    """

    weekend_weight: float = 1.0

    def at(self, t: float) -> float:
        w = self.weekend_weight
        if w >= 1.0:
            return t
        u = t - _MONDAY_H
        week = math.floor(u / 168.0)
        r = u - week * 168.0
        return week * (120.0 + 48.0 * w) + min(r, 120.0) + w * max(0.0, r - 120.0)

    def back(self, v: float) -> float:
        w = self.weekend_weight
        if w >= 1.0:
            return v
        period = 120.0 + 48.0 * w
        week = math.floor(v / period)
        rem = v - week * period
        r = rem if rem <= 120.0 else 120.0 + (rem - 120.0) / w
        return week * 168.0 + r + _MONDAY_H

    def span(self, a: float, b: float) -> float:
        """Working hours between calendar hours ``a`` and ``b``."""
        return self.at(b) - self.at(a)

    def forward(self, a: float, hours: float) -> float:
        """The calendar hour ``hours`` working hours after calendar hour ``a``."""
        return self.back(self.at(a) + hours)


@dataclass(frozen=True, slots=True)
class FulfillmentEvent:
    """One fact from a warehouse or carrier feed. ``placed_at`` (when the customer ordered) is optional; without
    it, processing is measured from ``approved``. ``origin_region`` is needed only for warehouses the store does not
    know (e.g. marketplace sellers)."""

    event_id: str
    order_id: str
    type: str
    at: datetime
    warehouse: str
    carrier: str | None = None
    country: str | None = None
    postal_code: str | None = None
    region: str | None = None
    placed_at: datetime | None = None
    origin_region: str | None = None
    # Returns only: the SKU and units that came back, why, and whether they go back on hand after inspection.
    sku: str | None = None
    qty: int | None = None
    reason: str | None = None
    restock: bool | None = None

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"type must be one of {', '.join(EVENT_TYPES)}")
        if self.at.tzinfo is None:
            raise ValueError("at must be timezone-aware")
        if self.type == "returned":
            if not self.sku:
                raise ValueError("sku is required for a returned event")
            if self.qty is None or isinstance(self.qty, bool) or int(self.qty) != self.qty or self.qty < 1:
                raise ValueError("qty must be a whole number >= 1 for a returned event")
            if self.reason not in RETURN_REASONS:
                raise ValueError(f"reason must be one of {', '.join(RETURN_REASONS)}")


@dataclass(slots=True)
class OrderTrack:
    """What is known about one order's journey; events merge into it in any order."""

    order_id: str
    warehouse: str | None = None
    origin_region: str | None = None
    dest_region: str | None = None
    carrier: str | None = None
    placed_h: float | None = None
    approved_h: float | None = None
    handed_h: float | None = None
    delivered_h: float | None = None
    exception: bool = False
    proc_recorded: bool = False
    transit_recorded: bool = False
    # The promise shown for this order (for calibration feedback), if the engine recorded one.
    promise_conf: float | None = None
    promise_p50_h: float | None = None
    promise_due_h: float | None = None  # end of the promised day
    promise_eta_h: float | None = None  # end of the median ETA day (checked first: an earlier, noisier signal)
    eta_late: bool | None = None
    eta_checked_h: float | None = None
    outcome: str | None = None  # "hit" | "miss", known once the promised day has passed
    residual_recorded: bool = False
    residual_h: float | None = None  # when the residual entered the sketch (its time weight)
    residual_ratio: float | None = None

    @property
    def start_h(self) -> float | None:
        return self.placed_h if self.placed_h is not None else self.approved_h

    @property
    def in_backlog(self) -> bool:
        return self.start_h is not None and self.handed_h is None and self.delivered_h is None and not self.exception

    @property
    def next_check_h(self) -> float | None:
        """When this order's promise next says something: its ETA day's end, then its promised day's end."""
        if self.promise_conf is None or self.outcome is not None:
            return None
        if self.eta_late is None and self.promise_eta_h is not None:
            return self.promise_eta_h
        return self.promise_due_h

    @property
    def in_transit(self) -> bool:
        return self.handed_h is not None and self.delivered_h is None and not self.exception

    def to_json(self) -> str:
        # Every field is a scalar, so no deep copy (``asdict``) is needed; this runs once per order at checkout,
        # through orjson (the standard library's encoder was about a twentieth of the checkout writer's CPU). A
        # non-finite float, which orjson would write as null, takes the standard library as before.
        doc = {name: getattr(self, name) for name in _TRACK_FIELDS}
        for v in doc.values():
            if v.__class__ is float and not math.isfinite(v):
                return json.dumps(doc, separators=(",", ":"))
        return orjson.dumps(doc).decode()

    @classmethod
    def from_json(cls, text: str) -> "OrderTrack":
        data = json.loads(text)
        return cls(**{k: v for k, v in data.items() if k in _TRACK_FIELD_SET})


_TRACK_FIELDS = tuple(f.name for f in fields(OrderTrack))
_TRACK_FIELD_SET = frozenset(_TRACK_FIELDS)


@dataclass(frozen=True, slots=True)
class StatsConfig:
    """Half-lives (hours) and thresholds of the statistics. Policy, so it comes from Settings."""

    processing_half_life_h: float = 24.0 * 21
    transit_half_life_h: float = 24.0 * 21
    rate_half_life_h: float = 24.0 * 3
    residual_half_life_h: float = 24.0 * 21
    eta_half_life_h: float = 24.0 * 7
    pack_target_h: float = 48.0
    min_lane_weight: float = 8.0
    min_processing_weight: float = 5.0
    # Step of the integrating adaptive-conformal update per resolved promise. Off by default: outcomes are known
    # only at each promise's deadline (2-3 weeks later), and an integrator with that much delay oscillated in
    # replays; the engine's proportional feedback on the recent on-time rate (coverage_gain) is stable.
    aci_gamma: float = 0.0
    # Weight of Saturday/Sunday hours in every duration (1: calendar time). See ``WorkClock``.
    weekend_weight: float = 1.0
    # In-flight (censored) promised orders kept for the Kaplan-Meier score estimate (0: not kept), and their
    # recency half-life. Kept as one state row per confidence, so sized for replays and small shops.
    flight_keep_h: float = 0.0
    flight_half_life_h: float = 24.0 * 21

    @property
    def clock(self) -> WorkClock:
        return WorkClock(self.weekend_weight)


# --------------------------------------------------------------------------------------------------------------
# State objects. Each has to_dict/from_dict; the store writes them as JSON rows keyed by name.


@dataclass
class WarehouseState:
    processing: DecayingHistogram
    cutoff: DecayingCounter  # [0..23]: orders started in that UTC hour; [24..47]: of those, handed off same day
    handoffs: DecayingCounter  # [handoffs, missed pack target]
    arrivals: DecayingCounter  # orders started (volume)
    backlog: int = 0
    in_transit: int = 0
    last_event_h: float | None = None

    @classmethod
    def new(cls, cfg: StatsConfig) -> "WarehouseState":
        return cls(
            DecayingHistogram(cfg.processing_half_life_h),
            DecayingCounter(cfg.processing_half_life_h, 48),
            DecayingCounter(cfg.rate_half_life_h, 2),
            DecayingCounter(cfg.rate_half_life_h, 1),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "t": "wh",
            "processing": self.processing.to_dict(),
            "cutoff": self.cutoff.to_dict(),
            "handoffs": self.handoffs.to_dict(),
            "arrivals": self.arrivals.to_dict(),
            "backlog": self.backlog,
            "in_transit": self.in_transit,
            "last_event_h": self.last_event_h,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "WarehouseState":
        return cls(
            DecayingHistogram.from_dict(d["processing"]),
            DecayingCounter.from_dict(d["cutoff"]),
            DecayingCounter.from_dict(d["handoffs"]),
            DecayingCounter.from_dict(d["arrivals"]),
            int(d["backlog"]),
            int(d.get("in_transit", 0)),
            d.get("last_event_h"),
        )

    def learned_cutoff_hour(self, at_h: float, min_orders: float = 3.0, share: float = 0.5) -> float | None:
        """The latest start hour whose orders still usually leave the same day (None: not enough data)."""
        best = None
        for h in range(24):
            n = self.cutoff.value(at_h, h)
            if n >= min_orders and self.cutoff.value(at_h, 24 + h) / n >= share:
                best = h + 1.0
        return best


@dataclass
class HistState:
    hist: DecayingHistogram

    def to_dict(self) -> dict[str, Any]:
        return {"t": "hist", "hist": self.hist.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HistState":
        return cls(DecayingHistogram.from_dict(d["hist"]))


# Residuals are also kept per band of the promise's basis (Mondrian conformal): short promises carry relatively
# more fixed overhead (weekends, handoff days), so one pooled ratio over-widens them and under-widens long ones.
BASIS_BANDS_H = (24.0 * 6, 24.0 * 9, 24.0 * 13)


def basis_band(basis_h: float) -> str:
    for i, edge in enumerate(BASIS_BANDS_H):
        if basis_h < edge:
            return str(i)
    return str(len(BASIS_BANDS_H))


@dataclass
class CalibrationState:
    """Online calibration for one confidence level: the adaptive quantile level and recent residuals."""

    target: float
    level: float
    residuals: DecayingHistogram  # actual total / promise basis (ratio), all promises
    outcomes: DecayingCounter  # [misses, resolved]
    bands: dict[str, DecayingHistogram] = field(default_factory=dict)  # the same, per basis band
    eta: DecayingCounter | None = None  # [late against the median ETA, checked]: a faster drift signal

    @classmethod
    def new(cls, target: float, cfg: StatsConfig) -> "CalibrationState":
        return cls(target, target, DecayingHistogram(cfg.residual_half_life_h, "ratio"),
                   DecayingCounter(cfg.residual_half_life_h, 2), {}, DecayingCounter(cfg.eta_half_life_h, 2))

    def add(self, ratio: float, basis_h: float, t: float, weight: float = 1.0) -> None:
        self.residuals.add(ratio, t, weight)
        band = basis_band(basis_h)
        hist = self.bands.get(band)
        if hist is None:
            hist = self.bands[band] = DecayingHistogram(self.residuals.half_life, "ratio")
        hist.add(ratio, t, weight)

    def sketch_for(self, basis_h: float, at_h: float, min_weight: float) -> DecayingHistogram | None:
        band = self.bands.get(basis_band(basis_h))
        if band is not None and band.weight(at_h) >= min_weight:
            return band
        return self.residuals if self.residuals.weight(at_h) >= min_weight else None

    def to_dict(self) -> dict[str, Any]:
        return {"t": "cal", "target": self.target, "level": self.level,
                "residuals": self.residuals.to_dict(), "outcomes": self.outcomes.to_dict(),
                "bands": {k: v.to_dict() for k, v in self.bands.items()},
                "eta": self.eta.to_dict() if self.eta else None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CalibrationState":
        return cls(float(d["target"]), float(d["level"]), DecayingHistogram.from_dict(d["residuals"]),
                   DecayingCounter.from_dict(d["outcomes"]),
                   {k: DecayingHistogram.from_dict(v) for k, v in d.get("bands", {}).items()},
                   DecayingCounter.from_dict(d["eta"]) if d.get("eta") else None)


@dataclass
class NetworkState:
    """Network-wide live load: what is waiting for handoff and what is on the road, and recent flows."""

    backlog: int = 0
    in_transit: int = 0
    flows: DecayingCounter | None = None  # [started, handed off, delivered]

    def to_dict(self) -> dict[str, Any]:
        return {"t": "net", "backlog": self.backlog, "in_transit": self.in_transit,
                "flows": self.flows.to_dict() if self.flows else None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NetworkState":
        return cls(int(d["backlog"]), int(d["in_transit"]),
                   DecayingCounter.from_dict(d["flows"]) if d.get("flows") else None)


@dataclass
class FlightState:
    """Recent promised orders for one confidence level, delivered or still on their way: ``order_id -> [placed_h,
    basis_h, delivered_h | None]``. The engine reads it as a censored sample (Kaplan-Meier): an order not yet
    delivered ``x`` hours after it was placed is evidence that the score distribution reaches past ``x / basis``,
    long before its promised day says whether it was kept. Entries older than ``keep_h`` are dropped."""

    orders: dict[str, list] = field(default_factory=dict)
    keep_h: float = 24.0 * 70
    version: int = 0

    def put(self, order_id: str, placed_h: float, basis_h: float, delivered_h: float | None) -> None:
        self.orders[order_id] = [placed_h, basis_h, delivered_h]
        self.version += 1
        newest = max(placed_h, delivered_h or placed_h)
        if self.version % 256 == 0:
            self.orders = {k: v for k, v in self.orders.items() if v[0] >= newest - self.keep_h}

    def drop(self, order_id: str) -> None:
        if self.orders.pop(order_id, None) is not None:
            self.version += 1

    def to_dict(self) -> dict[str, Any]:
        return {"t": "flight", "orders": self.orders, "keep_h": self.keep_h, "version": self.version}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FlightState":
        return cls(dict(d["orders"]), float(d.get("keep_h", 24.0 * 70)), int(d.get("version", 0)))


def flight_key(confidence: float) -> str:
    return f"km:{confidence:.3f}"


def state_from_dict(d: dict[str, Any]):
    kind = d["t"]
    if kind == "wh":
        return WarehouseState.from_dict(d)
    if kind == "hist":
        return HistState.from_dict(d)
    if kind == "cal":
        return CalibrationState.from_dict(d)
    if kind == "net":
        return NetworkState.from_dict(d)
    if kind == "flight":
        return FlightState.from_dict(d)
    raise ValueError(f"unknown state kind {kind!r}")


def day_score(delivered_h: float, placed_h: float, basis_h: float, clock: WorkClock | None = None) -> float:
    """Conformal score of a delivery: from order to the START of the delivery day, over the promise's basis.

    A promise ``date(placed + basis * q)`` is kept exactly when this score is at most ``q`` (a day starts before a
    time iff the day is on or before that time's date), so its quantile calibrates calendar-day promises exactly.
    """
    day_start = math.floor(delivered_h / 24.0) * 24.0
    span = day_start - placed_h if clock is None else clock.span(placed_h, day_start)
    return max(span, 0.0) / basis_h


def cal_key(confidence: float) -> str:
    return f"cal:{confidence:.3f}"


def region_chain(region: str | None) -> list[str]:
    """A hierarchical region ``"SP/04"`` and its ancestors: ``["SP/04", "SP"]``."""
    if not region:
        return []
    parts = region.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts) - 1, -1, -1)]


def lane_keys(origin: str | None, dest: str | None, carrier: str | None) -> list[str]:
    """Lane keys from the most specific to the broadest. Destinations may be hierarchical (``"SP/04"``): the
    chain narrows the destination before it drops the origin, and drops the origin before going network-wide."""
    o = origin or ANY
    dests = region_chain(dest)
    keys = []
    if carrier and dests:
        keys.append(f"lane:{o}|{dests[0]}|{carrier}")
    keys += [f"lane:{o}|{d}" for d in dests]
    if origin:
        keys += [f"lane:{ANY}|{d}" for d in dests]
    keys += [f"lane:{o}|{ANY}", f"lane:{ANY}|{ANY}"]
    seen: dict[str, None] = {}
    for k in keys:
        seen.setdefault(k, None)
    return list(seen)


def blended_quantile(chain: list[tuple[DecayingHistogram, float]], q: float, prior_weight: float) -> float | None:
    """Quantile shrunk towards broader levels: each level's estimate is its own quantile weighted by its recent
    sample mass, plus ``prior_weight`` pseudo-samples of the next broader level's estimate (empirical Bayes)."""
    est: float | None = None
    last_w = None
    for hist, w in reversed(chain):
        # A level holding exactly the same mass as the broader one holds the same samples: counting it again would
        # let one sample pull the estimate several times.
        if last_w is not None and abs(w - last_w) <= 1e-9 * max(w, 1.0):
            continue
        own = hist.quantile(q)
        if own is None:
            continue
        est = own if est is None else (w * own + prior_weight * est) / (w + prior_weight)
        last_w = w
    return est


def processing_keys(warehouse: str | None, region: str | None) -> list[str]:
    keys = []
    if warehouse:
        keys.append(f"wh:{warehouse}")
    if region:
        keys.append(f"proc:{region}")
    keys.append(f"proc:{ANY}")
    return keys


# --------------------------------------------------------------------------------------------------------------


@dataclass
class FulfillmentStats:
    """All keyed state plus the merge rules. The store loads/saves ``states``; nothing here does I/O."""

    config: StatsConfig = field(default_factory=StatsConfig)
    states: dict[str, Any] = field(default_factory=dict)

    # ----- access
    def get(self, key: str):
        return self.states.get(key)

    def _wh(self, wid: str) -> WarehouseState:
        key = f"wh:{wid}"
        st = self.states.get(key)
        if st is None:
            st = self.states[key] = WarehouseState.new(self.config)
        return st

    def _hist(self, key: str, half_life: float) -> DecayingHistogram:
        st = self.states.get(key)
        if st is None:
            st = self.states[key] = HistState(DecayingHistogram(half_life))
        return st.hist

    def _net(self) -> NetworkState:
        st = self.states.get("net")
        if st is None:
            st = self.states["net"] = NetworkState(flows=DecayingCounter(self.config.rate_half_life_h, 3))
        return st

    def calibration(self, confidence: float) -> CalibrationState:
        key = cal_key(confidence)
        st = self.states.get(key)
        if st is None:
            st = self.states[key] = CalibrationState.new(confidence, self.config)
        return st

    def flights(self, confidence: float) -> FlightState:
        key = flight_key(confidence)
        st = self.states.get(key)
        if st is None:
            st = self.states[key] = FlightState(keep_h=self.config.flight_keep_h)
        return st

    # ----- which keys an event may touch (the store locks and loads these before ``apply``)
    @staticmethod
    def keys_for(track: OrderTrack) -> list[str]:
        keys = ["net"]
        keys += processing_keys(track.warehouse, track.origin_region)
        keys += lane_keys(track.origin_region, track.dest_region, track.carrier)
        if track.promise_conf is not None:
            keys.append(cal_key(track.promise_conf))
            keys.append(flight_key(track.promise_conf))
        return sorted(set(keys))

    # ----- the merge rules
    def apply(self, track: OrderTrack, ev: FulfillmentEvent, origin_region: str | None = None) -> OrderTrack:
        """Merge one event into its order's track and update every statistic it completes. Returns the track.

        Idempotency is the caller's job (by ``event_id``); out-of-order arrival is handled here: a duration is
        recorded as soon as both of its ends are known, whichever arrives first.
        """
        if ev.type == "returned":  # a return says nothing about the outbound journey's durations or load
            return track
        t = to_hours(ev.at)
        was_backlog, was_transit = track.in_backlog, track.in_transit
        track.warehouse = track.warehouse or ev.warehouse
        track.origin_region = track.origin_region or ev.origin_region or origin_region
        track.dest_region = track.dest_region or ev.region or ev.country
        track.carrier = track.carrier or ev.carrier
        if ev.placed_at is not None and track.placed_h is None:
            track.placed_h = to_hours(ev.placed_at)
            self._wh(track.warehouse).arrivals.add(track.placed_h)
            self._net().flows.add(track.placed_h, 0)
        if ev.type == "approved":
            if track.approved_h is None and track.placed_h is None:
                self._wh(track.warehouse).arrivals.add(t)
                self._net().flows.add(t, 0)
            track.approved_h = t if track.approved_h is None else min(track.approved_h, t)
        elif ev.type == "handed_to_carrier":
            track.handed_h = t if track.handed_h is None else min(track.handed_h, t)
        elif ev.type == "delivered":
            track.delivered_h = t if track.delivered_h is None else min(track.delivered_h, t)
        elif ev.type == "exception":
            track.exception = True

        wh = self._wh(track.warehouse)
        wh.last_event_h = t if wh.last_event_h is None else max(wh.last_event_h, t)
        self._record_durations(track)
        net = self._net()
        d_backlog = int(track.in_backlog) - int(was_backlog)
        d_transit = int(track.in_transit) - int(was_transit)
        wh.backlog = max(0, wh.backlog + d_backlog)
        wh.in_transit = max(0, wh.in_transit + d_transit)
        net.backlog = max(0, net.backlog + d_backlog)
        net.in_transit = max(0, net.in_transit + d_transit)
        return track

    def _record_durations(self, track: OrderTrack) -> None:
        cfg = self.config
        start = track.start_h
        if not track.proc_recorded and start is not None and track.handed_h is not None:
            track.proc_recorded = True
            proc = max(0.0, cfg.clock.span(start, track.handed_h))
            wh = self._wh(track.warehouse)
            wh.processing.add(proc, track.handed_h)
            if track.origin_region:
                self._hist(f"proc:{track.origin_region}", cfg.processing_half_life_h).add(proc, track.handed_h)
            self._hist(f"proc:{ANY}", cfg.processing_half_life_h).add(proc, track.handed_h)
            start_dt = from_hours(start)
            same_day = from_hours(track.handed_h).date() == start_dt.date()
            wh.cutoff.add(track.handed_h, start_dt.hour)
            if same_day:
                wh.cutoff.add(track.handed_h, 24 + start_dt.hour)
            wh.handoffs.add(track.handed_h, 0)
            if proc > cfg.pack_target_h:
                wh.handoffs.add(track.handed_h, 1)
            self._net().flows.add(track.handed_h, 1)
        if not track.transit_recorded and track.handed_h is not None and track.delivered_h is not None:
            track.transit_recorded = True
            transit = max(0.0, cfg.clock.span(track.handed_h, track.delivered_h))
            for key in lane_keys(track.origin_region, track.dest_region, track.carrier):
                self._hist(key, cfg.transit_half_life_h).add(transit, track.delivered_h)
            self._net().flows.add(track.delivered_h, 2)
        if (cfg.flight_keep_h > 0 and track.promise_conf is not None and track.promise_p50_h
                and track.placed_h is not None):
            if track.exception and track.delivered_h is None:
                self.flights(track.promise_conf).drop(track.order_id)
            else:
                entry = self.flights(track.promise_conf).orders.get(track.order_id)
                if entry is None or entry[2] != track.delivered_h:
                    self.flights(track.promise_conf).put(track.order_id, track.placed_h, track.promise_p50_h,
                                                         track.delivered_h)
        if track.delivered_h is not None and track.promise_conf is not None:
            self.record_residual(track)
        if track.exception and track.delivered_h is None and track.promise_conf is not None:
            self.void_promise(track)

    # ----- calibration feedback
    def resolve_promise(self, track: OrderTrack, at_h: float) -> bool:
        """Once a promised day has passed (``at_h`` after its end), record whether it was kept.

        Every promise resolves at its own deadline, kept or not, and only then enters the residual sketch: adding
        orders at delivery would let fast orders in sooner than slow ones and bias the sketch towards speed. An order
        still on its way enters just above its promised ratio (a lower bound) and moves to its true ratio on
        delivery, with its original time weight. Returns True when it resolved.
        """
        if track.promise_conf is None or track.outcome is not None or track.promise_due_h is None:
            return False
        if track.eta_late is None and track.promise_eta_h is not None and at_h > track.promise_eta_h:
            # Half-time check: was the order delivered by its median ETA? Half of them should be.
            track.eta_late = track.delivered_h is None or track.delivered_h > track.promise_eta_h
            track.eta_checked_h = at_h
            cal = self.calibration(track.promise_conf)
            if cal.eta is None:
                cal.eta = DecayingCounter(self.config.eta_half_life_h, 2)
            cal.eta.add(at_h, 1)
            if track.eta_late:
                cal.eta.add(at_h, 0)
        if at_h <= track.promise_due_h:
            return False
        missed = track.delivered_h is None or track.delivered_h > track.promise_due_h
        track.outcome = "miss" if missed else "hit"
        cal = self.calibration(track.promise_conf)
        cal.level = adapt_level(cal.level, cal.target, missed, self.config.aci_gamma)
        cal.outcomes.add(at_h, 1)
        if missed:
            cal.outcomes.add(at_h, 0)
        if track.promise_p50_h and track.placed_h is not None:
            end = track.delivered_h if track.delivered_h is not None else at_h
            track.residual_h = at_h
            track.residual_ratio = day_score(end, track.placed_h, track.promise_p50_h, self.config.clock)
            cal.add(track.residual_ratio, track.promise_p50_h, at_h)
            if track.delivered_h is not None:
                track.residual_recorded = True
        return True

    def void_promise(self, track: OrderTrack) -> None:
        """A cancelled or lost order says nothing about delivery speed: take back what its deadline recorded."""
        if track.outcome == "void":
            return
        if track.outcome is not None and track.residual_h is not None and not track.residual_recorded:
            cal = self.calibration(track.promise_conf)
            cal.add(track.residual_ratio, track.promise_p50_h, track.residual_h, weight=-1.0)
            cal.outcomes.add(track.residual_h, 1, -1.0)
            if track.outcome == "miss":
                cal.outcomes.add(track.residual_h, 0, -1.0)
        if track.eta_late is not None and track.eta_checked_h is not None:
            cal = self.calibration(track.promise_conf)
            if cal.eta is not None:
                cal.eta.add(track.eta_checked_h, 1, -1.0)
                if track.eta_late:
                    cal.eta.add(track.eta_checked_h, 0, -1.0)
        track.outcome = "void"
        track.residual_recorded = True

    def record_residual(self, track: OrderTrack) -> None:
        """On delivery after the deadline, move the order's provisional residual to its true ratio."""
        if (track.residual_recorded or track.delivered_h is None or track.residual_h is None
                or track.residual_ratio is None or not track.promise_p50_h or track.placed_h is None):
            return
        track.residual_recorded = True
        cal = self.calibration(track.promise_conf)
        ratio = day_score(track.delivered_h, track.placed_h, track.promise_p50_h, self.config.clock)
        cal.add(track.residual_ratio, track.promise_p50_h, track.residual_h, weight=-1.0)
        cal.add(ratio, track.promise_p50_h, track.residual_h)
        track.residual_ratio = ratio

    # ----- queries used by the engine
    def _chain(self, keys: list[str], at_h: float) -> list[tuple[DecayingHistogram, float]]:
        chain = []
        for key in keys:
            st = self.states.get(key)
            if st is None:
                continue
            hist = st.processing if isinstance(st, WarehouseState) else st.hist
            w = hist.weight(at_h)
            if w > 0:
                chain.append((hist, w))
        return chain

    def processing_chain(self, warehouse: str, region: str | None, at_h: float
                         ) -> tuple[list[tuple[DecayingHistogram, float]], bool]:
        """Processing sketches from the warehouse to the network, and whether the warehouse alone is too thin."""
        chain = self._chain(processing_keys(warehouse, region), at_h)
        st = self.states.get(f"wh:{warehouse}")
        own = 0.0 if st is None else st.processing.weight(at_h)
        return chain, own < self.config.min_processing_weight

    def lane_chain(self, origin: str | None, dest: str | None, carrier: str | None, at_h: float
                   ) -> tuple[list[tuple[DecayingHistogram, float]], bool]:
        """Transit sketches from the exact lane to the network, and whether the lane had to fall back (its own
        origin -> destination data is thinner than ``min_lane_weight``; an unknown carrier is not a fallback)."""
        keys = lane_keys(origin, dest, carrier)
        chain = self._chain(keys, at_h)
        exact = [k for k in keys[:2] if k.count("|") == 1][:1]
        st = self.states.get(exact[0]) if exact else None
        own = 0.0 if st is None else st.hist.weight(at_h)
        if carrier:
            cst = self.states.get(keys[0])
            own = max(own, 0.0 if cst is None else cst.hist.weight(at_h))
        return chain, own < self.config.min_lane_weight


def new_stats(config: StatsConfig | None = None, states: Iterable[tuple[str, dict[str, Any]]] = ()) -> FulfillmentStats:
    stats = FulfillmentStats(config or StatsConfig())
    for key, data in states:
        stats.states[key] = state_from_dict(data)
    return stats
