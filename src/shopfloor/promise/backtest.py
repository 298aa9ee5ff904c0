"""Forward replay of Olist-shaped orders through the promise engine.

Time only moves forward: every order's events (approved, handed to carrier, delivered) are fed at their own
timestamps, and each order's promise is asked at its purchase time, before any event at or after that moment is
applied. Orders purchased before ``score_from`` only build history. Olist timestamps carry no zone (they are all
Brazil local time); they are read as UTC, which keeps calendar days as the dataset has them.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from ..domain.promise import BusinessCalendar, DegradationPolicy
from ..fulfillment.stats import FulfillmentEvent, FulfillmentStats, OrderTrack, StatsConfig, to_hours
from .engine import InMemoryStats, PromiseConfig, PromiseEngine

COUNTRY = "BR"


@dataclass(frozen=True, slots=True)
class ReplayOrder:
    order_id: str
    purchased_at: datetime
    seller: str
    origin_region: str
    dest_region: str
    postal_code: str
    approved_at: datetime | None
    handed_at: datetime | None
    delivered_at: datetime | None
    reference: date | None


@dataclass(slots=True)
class ScoredOrder:
    order_id: str
    purchased_at: datetime
    promised_date: date
    eta_p50_date: date
    delivered_date: date | None
    reference_date: date | None
    reasons: tuple[str, ...] = ()


@dataclass
class BacktestResult:
    rows: list[ScoredOrder]
    confidence: float
    score_from: datetime | None
    summary: dict[str, Any] = field(default_factory=dict)


def _ts(value: Any) -> datetime | None:
    import pandas as pd

    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        return None
    if ts.tzinfo is not None:  # a time with a UTC offset is that instant, not its wall clock read as UTC
        return ts.tz_convert("UTC").to_pydatetime()
    return ts.to_pydatetime().replace(tzinfo=timezone.utc)


def _dest_region(state: Any, zip_prefix: Any) -> str:
    """``"<state>/<first two zip digits>"``: Brazilian CEPs are geographic, so the prefix separates a state's
    capital area from its interior. Olist strips leading zeros from the 5-digit prefix."""
    st = state if isinstance(state, str) else "?"
    if isinstance(zip_prefix, str) and zip_prefix.strip().isdigit():
        return f"{st}/{zip_prefix.strip().zfill(5)[:2]}"
    return st


def load_olist(orders: Path, items: Path, customers: Path, sellers: Path) -> list[ReplayOrder]:
    """Join the four Olist tables into replay orders (seller = origin, customer = destination)."""
    import pandas as pd

    o = pd.read_csv(orders, dtype=str)
    need = {"order_id", "customer_id", "order_purchase_timestamp", "order_approved_at",
            "order_delivered_carrier_date", "order_delivered_customer_date", "order_estimated_delivery_date"}
    missing = need - set(o.columns)
    if missing:
        raise ValueError(f"orders file lacks columns: {', '.join(sorted(missing))}")
    it = pd.read_csv(items, dtype=str)
    for col in ("order_id", "order_item_id", "seller_id"):
        if col not in it.columns:
            raise ValueError(f"items file lacks column: {col}")
    c = pd.read_csv(customers, dtype=str)
    for col in ("customer_id", "customer_state", "customer_zip_code_prefix"):
        if col not in c.columns:
            raise ValueError(f"customers file lacks column: {col}")
    s = pd.read_csv(sellers, dtype=str)
    for col in ("seller_id", "seller_state"):
        if col not in s.columns:
            raise ValueError(f"sellers file lacks column: {col}")
    it["order_item_id"] = it["order_item_id"].astype(int)
    first = it.sort_values(["order_id", "order_item_id"]).drop_duplicates("order_id")[["order_id", "seller_id"]]
    df = (o.merge(first, on="order_id", how="inner")
          .merge(c[["customer_id", "customer_state", "customer_zip_code_prefix"]], on="customer_id", how="left")
          .merge(s[["seller_id", "seller_state"]], on="seller_id", how="left"))
    out = []
    for r in df.itertuples(index=False):
        purchased = _ts(r.order_purchase_timestamp)
        if purchased is None:
            continue
        ref = _ts(r.order_estimated_delivery_date)
        out.append(ReplayOrder(
            order_id=r.order_id,
            purchased_at=purchased,
            seller=r.seller_id,
            origin_region=r.seller_state if isinstance(r.seller_state, str) else "?",
            dest_region=_dest_region(r.customer_state, r.customer_zip_code_prefix),
            postal_code=str(r.customer_zip_code_prefix) if isinstance(r.customer_zip_code_prefix, str) else "",
            approved_at=_ts(r.order_approved_at),
            handed_at=_ts(r.order_delivered_carrier_date),
            delivered_at=_ts(r.order_delivered_customer_date),
            reference=ref.date() if ref else None,
        ))
    out.sort(key=lambda x: (x.purchased_at, x.order_id))
    return out


def default_backtest_config(confidence: float) -> tuple[PromiseConfig, StatsConfig]:
    """Engine policy for marketplace replays: sellers send events only when they have orders, so the stale-feed
    rule is off; carriers deliver every day, but sellers hand off on working days."""
    policy = DegradationPolicy(stale_feed_after_h=None, backlog_ratio_trigger=2.0, missed_pack_trigger=1.1)
    cfg = PromiseConfig(confidence=confidence, calendar=BusinessCalendar(cutoff_hour=24.0), degradation=policy,
                        default_processing_h=72.0, default_transit_h=24.0 * 10, coverage_gain=0.5)
    return cfg, StatsConfig(processing_half_life_h=24.0 * 42, transit_half_life_h=24.0 * 60,
                            residual_half_life_h=24.0 * 21, aci_gamma=0.0, weekend_weight=0.2,
                            flight_keep_h=24.0 * 70)


def order_events(o: ReplayOrder) -> list[FulfillmentEvent]:
    """The fulfillment events an order produced, each at its own timestamp."""
    evs = []
    common = dict(order_id=o.order_id, warehouse=o.seller, country=COUNTRY, postal_code=o.postal_code,
                  region=o.dest_region, placed_at=o.purchased_at, origin_region=o.origin_region)
    if o.approved_at:
        evs.append(FulfillmentEvent(event_id=f"{o.order_id}:a", type="approved", at=o.approved_at, **common))
    if o.handed_at:
        evs.append(FulfillmentEvent(event_id=f"{o.order_id}:h", type="handed_to_carrier", at=o.handed_at, **common))
    if o.delivered_at:
        evs.append(FulfillmentEvent(event_id=f"{o.order_id}:d", type="delivered", at=o.delivered_at, **common))
    elif o.reference is not None:
        # Never delivered (cancelled, lost, or still open when the data was cut): a shop closes such orders out when
        # their promised date passes; that is a fact known at that moment, so it is fair to replay.
        end = datetime.combine(o.reference, datetime.min.time(), tzinfo=timezone.utc)
        evs.append(FulfillmentEvent(event_id=f"{o.order_id}:x", type="exception", at=end, **common))
    return evs


def replay(
    orders: Iterable[ReplayOrder],
    *,
    confidence: float = 0.9,
    score_from: datetime | None = None,
    config: PromiseConfig | None = None,
    stats_config: StatsConfig | None = None,
    progress: Callable[[int], None] | None = None,
) -> BacktestResult:
    """Replay ``orders`` strictly forward in time and promise each one at its purchase moment."""
    orders = list(orders)
    base_cfg, base_stats = default_backtest_config(confidence)
    cfg = config or base_cfg
    stats = FulfillmentStats(stats_config or base_stats)
    source = InMemoryStats(stats)
    engine = PromiseEngine(None, source, cfg)

    # Timeline: (time, priority, seq, kind, payload). Queries sort before events at the same instant, so a promise
    # sees only what happened strictly before it.
    timeline: list[tuple[float, int, int, str, Any]] = []
    seq = 0
    for o in orders:
        timeline.append((to_hours(o.purchased_at), 0, seq, "promise", o))
        seq += 1
        for ev in order_events(o):
            timeline.append((to_hours(ev.at), 1, seq, "event", ev))
            seq += 1
    timeline.sort(key=lambda x: (x[0], x[1], x[2]))

    due: list[tuple[float, str]] = []  # promises not yet resolved, by the end of their promised day
    tracks = source.tracks
    rows: list[ScoredOrder] = []
    by_id = {o.order_id: o for o in orders}
    for n, (t, _, _, kind, payload) in enumerate(timeline):
        while due and due[0][0] < t:
            _, oid = heapq.heappop(due)
            stats.resolve_promise(tracks[oid], t)
            nxt = tracks[oid].next_check_h
            if nxt is not None:
                heapq.heappush(due, (nxt, oid))
        if kind == "promise":
            o: ReplayOrder = payload
            w = engine.delivery_window(o.seller, o.origin_region, o.dest_region, o.purchased_at)
            engine.record_promise(o.order_id, w)
            heapq.heappush(due, (tracks[o.order_id].next_check_h, o.order_id))
            if score_from is None or o.purchased_at >= score_from:
                rows.append(ScoredOrder(o.order_id, o.purchased_at, w.deliver_by, w.eta_p50,
                                        None, o.reference, w.reasons))
        else:
            ev: FulfillmentEvent = payload
            track = tracks.get(ev.order_id) or tracks.setdefault(ev.order_id, OrderTrack(ev.order_id))
            stats.apply(track, ev)
        if progress and n % 2000 == 0:
            progress(n)
    for r in rows:
        d = by_id[r.order_id].delivered_at
        r.delivered_date = d.date() if d else None
    result = BacktestResult(rows, confidence, score_from)
    result.summary = summarise(rows, confidence, score_from)
    return result


def summarise(rows: list[ScoredOrder], confidence: float, score_from: datetime | None) -> dict[str, Any]:
    """On-time rate, mean promised days and p50 MAE for the engine and for the dataset's own estimate."""
    scored = [r for r in rows if r.delivered_date is not None]
    n = len(scored)

    def rate(xs: list[bool]) -> float | None:
        return round(sum(xs) / len(xs), 4) if xs else None

    def mean(xs: list[float]) -> float | None:
        return round(sum(xs) / len(xs), 3) if xs else None

    ref = [r for r in scored if r.reference_date is not None]
    return {
        "orders_promised": len(rows),
        "orders_scored": n,
        "confidence": confidence,
        "score_from": score_from.date().isoformat() if score_from else None,
        "on_time_rate": rate([r.delivered_date <= r.promised_date for r in scored]),
        "mean_promised_days": mean([(r.promised_date - r.purchased_at.date()).days for r in scored]),
        "p50_eta_mae_days": mean([abs((r.eta_p50_date - r.delivered_date).days) for r in scored]),
        "reference": {
            "orders_scored": len(ref),
            "on_time_rate": rate([r.delivered_date <= r.reference_date for r in ref]),
            "mean_promised_days": mean([(r.reference_date - r.purchased_at.date()).days for r in ref]),
            "p50_eta_mae_days": mean([abs((r.reference_date - r.delivered_date).days) for r in ref]),
        },
    }


CSV_COLUMNS = ("order_id", "purchased_at", "promised_date", "eta_p50_date", "delivered_date", "reference_date")


def write_csv(rows: list[ScoredOrder], path: Path) -> None:
    import csv

    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        for r in rows:
            w.writerow([r.order_id, r.purchased_at.isoformat(), r.promised_date.isoformat(),
                        r.eta_p50_date.isoformat(), r.delivered_date.isoformat() if r.delivered_date else "",
                        r.reference_date.isoformat() if r.reference_date else ""])
