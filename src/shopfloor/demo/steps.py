"""Extra demo steps: a payment outage with failover, and promises before/after a warehouse delay."""

from __future__ import annotations

import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from rich import box
from rich.console import Console
from rich.table import Table

from ..domain.stats import percentiles

PROMISE_DESTINATIONS = [("GB", "EC1A 1BB"), ("GB", "M1 1AE"), ("DE", "10115")]
ORIGIN_REGION = {"gb-south": "gb-south", "gb-north": "gb-north", "de-central": "eu-central"}


def _tower_actions(store, rule: str) -> list[dict]:
    """The action-log entries of ``rule`` (``/v1/tower/actions``, as an operator's script would read them)."""
    r = store.client.get("/v1/tower/actions", params={"rule": rule, "limit": 20}, headers=store.admin)
    return [a for a in r.json().get("actions", []) if a.get("rule") == rule] if r.status_code == 200 else []


OUTAGE_RULE = "primary_processor_failing"


def payment_outage(store, report, console: Console, n: int = 120, tower_wait_s: float = 25.0) -> None:
    """Take the primary processor down, keep selling, and show where the money went; the worker's tower rules
    see the open breaker, log an action (secondary first) and raise an alert while the outage lasts."""
    catalog_skus = [o["lines"][0]["sku"] for o in report.orders[:50]] or ["85123A"]
    store.put("/v1/admin/processors/primary/faults", {"down": True})
    time.sleep(1.0)  # the processes' fault caches refresh
    results, lock = [], threading.Lock()

    def buy(i):
        status, body, ms = store.checkout([{"sku": catalog_skus[i % len(catalog_skus)], "qty": 1}], "GB",
                                          "EC1A 1BB", token=f"tok_outage_{i}")
        with lock:
            results.append((status, body, ms))

    from . import send_visits

    send_visits(store, report, [catalog_skus[i % len(catalog_skus)] for i in range(n)])
    started = time.monotonic()
    reacted_s = None
    try:
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(buy, range(n)))
        # The outage lasts until the control tower has reacted (the worker evaluates its rules every second in
        # the demo), with a trickle of shoppers keeping the breaker's window full meanwhile.
        extra = n
        while time.monotonic() - started < tower_wait_s:
            if _tower_actions(store, OUTAGE_RULE):
                reacted_s = time.monotonic() - started
                break
            send_visits(store, report, [catalog_skus[i % len(catalog_skus)] for i in range(extra, extra + 4)])
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(buy, range(extra, extra + 4)))
            extra += 4
            time.sleep(0.25)
    finally:
        store.put("/v1/admin/processors/primary/faults", {"down": False})
    ok = [b for s, b, _ in results if s == 201]
    report.placed.extend((b, "GB", "EC1A 1BB") for b in ok)
    ids = {b["order_id"] for b in ok}
    by_processor = {}
    for name in ("primary", "secondary"):
        ledger = store.client.get(f"/v1/admin/processors/{name}/ledger", headers=store.admin).json()
        by_processor[name] = sum(1 for c in ledger if c["order_id"] in ids and c["authorized"])
    lat = sorted(ms for _, _, ms in results)
    total = len(results)
    t = Table(show_header=False)
    t.add_row("checkouts during the outage", str(total))
    t.add_row("accepted", f"{len(ok)} ({100 * len(ok) / total:.1f}%)")
    t.add_row("authorized by primary / secondary", f"{by_processor['primary']} / {by_processor['secondary']}")
    p50, p99 = percentiles(lat, (0.5, 0.99))
    t.add_row("p50 / p99 latency", f"{p50:.0f} ms / {p99:.0f} ms")
    actions = _tower_actions(store, OUTAGE_RULE)
    if actions:
        kinds = ", ".join(sorted({a["action_type"] for a in actions}))
        t.add_row("control tower", f"rule {OUTAGE_RULE} fired after {reacted_s or 0:.0f} s: {kinds}")
    else:
        t.add_row("control tower", f"rule {OUTAGE_RULE} did not fire within {tower_wait_s:.0f} s")
    report.tower_reacted = bool(actions)
    report.sections.append(("payment outage: primary processor hard down, failover to secondary", t))


def _history_events(rng: random.Random, now: datetime, slow: dict[str, float] | None = None) -> list[dict]:
    events = []
    slow = slow or {}
    for wid, origin in ORIGIN_REGION.items():
        for i in range(60):
            placed = now - timedelta(days=rng.uniform(2, 28))
            country, postal = rng.choice(PROMISE_DESTINATIONS)
            handoff_h = rng.lognormvariate(2.8, 0.4) * slow.get(wid, 1.0)
            same_country = (country == "DE") == (wid == "de-central")
            transit_d = rng.lognormvariate(0.4 if same_country else 1.1, 0.35)
            oid = f"hist-{wid}-{i}-{uuid.uuid4().hex[:6]}"
            base = {"order_id": oid, "warehouse": wid, "country": country, "postal_code": postal,
                    "origin_region": origin, "placed_at": placed.isoformat()}
            for kind, at in (("approved", placed + timedelta(hours=0.5)),
                             ("packed", placed + timedelta(hours=0.5 + (handoff_h - 0.5) * rng.uniform(0.3, 0.7))),
                             ("handed_to_carrier", placed + timedelta(hours=handoff_h)),
                             ("delivered", placed + timedelta(hours=handoff_h, days=transit_d))):
                if at < now:
                    events.append({**base, "event_id": f"{oid}-{kind}", "type": kind, "at": at.isoformat()})
    return events


def _promise_table(store, sku: str, title: str) -> Table:
    # The reasons are the point of this table (why a promise moved), so they get one line each, never cut.
    t = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for col in ("ship to", "status", "from", "deliver by", "provisional"):
        t.add_column(col, no_wrap=True)
    t.add_column("reasons", overflow="fold")
    for country, postal in PROMISE_DESTINATIONS:
        p = store.client.get("/v1/promise", params={"sku": sku, "qty": 1, "country": country,
                                                     "postal_code": postal}).json()
        t.add_row(f"{country} {postal}", p.get("status", "?"), str(p.get("warehouse")),
                  str(p.get("deliver_by", ""))[:10], "yes" if p.get("provisional") else "no",
                  "\n".join(p.get("reasons", [])) or "-")
    return t


def seed_fulfillment_history(store, seed: int = 7) -> int:
    """A month of the warehouses' fulfillment events (approval, packing, carrier handoff, delivery), fed before the
    shoppers arrive, so the promises recorded at checkout come from learned lead times, not the cold-start
    default. Returns the number of events accepted."""
    rng = random.Random(seed)
    events = _history_events(rng, datetime.now(timezone.utc))
    accepted = 0
    for i in range(0, len(events), 500):
        r = store.client.post("/v1/fulfillment/events", json={"events": events[i:i + 500]}, headers=store.ingest)
        accepted += r.json().get("accepted", 0) if r.status_code == 200 else 0
    return accepted


def _available_by_warehouse(store, sku: str) -> dict[str, int]:
    s = store.client.get(f"/v1/stock/{sku}", headers=store.admin).json()
    return {w.get("warehouse"): w.get("available", 0) for w in s.get("warehouses", [])}


def promises_before_and_after_delay(store, report, console: Console) -> None:
    """Show promises for a popular SKU, then simulate a handoff backlog at the warehouse that serves London."""
    rng = random.Random(7)
    now = datetime.now(timezone.utc)
    headers = store.ingest
    if not report.history.get("fulfillment_events"):
        seed_fulfillment_history(store)
    sku = "85123A"
    for o in report.orders[:80]:  # a popular SKU that is still in stock
        candidate = o["lines"][0]["sku"]
        if sum(_available_by_warehouse(store, candidate).values()) > 20:
            sku = candidate
            break
    before = _promise_table(store, sku, f"promises for {sku} before the delay")
    # The delay: the warehouse London's promise comes from accepts a surge of orders but hands none to carriers.
    country, postal = PROMISE_DESTINATIONS[0]
    first = store.client.get("/v1/promise", params={"sku": sku, "qty": 1, "country": country,
                                                     "postal_code": postal}).json()
    delayed = first.get("warehouse") or "gb-south"
    backlog = []
    for i in range(250):
        oid = f"surge-{i}-{uuid.uuid4().hex[:6]}"
        placed = now - timedelta(hours=rng.uniform(1, 30))
        backlog.append({"event_id": f"{oid}-approved", "order_id": oid, "type": "approved", "at": placed.isoformat(),
                        "warehouse": delayed, "country": country, "postal_code": postal,
                        "origin_region": ORIGIN_REGION.get(delayed, delayed), "placed_at": placed.isoformat()})
    store.client.post("/v1/fulfillment/events", json={"events": backlog}, headers=headers)
    after = _promise_table(store, sku, f"after a 250-order handoff backlog builds at {delayed}")
    grid = Table.grid()
    grid.add_row(before)
    grid.add_row(after)
    report.sections.append(("delivery promises react to a warehouse delay", grid))


#: How far ahead the demo's simulated warehouses and carriers may date their events (the demo server's
#: ``fulfillment_max_future_h``): the compressed clock sends the next days' fulfillment of the demo's orders now.
SIMULATED_DAYS_AHEAD = 14


def simulated_journey(rng: random.Random, placed: datetime, warehouse: str, country: str) -> list[tuple[str, datetime]]:
    """One order's fulfillment events as the demo's simulated warehouse and carrier report them: approval within
    the half hour, picking and packing within hours, the carrier's collection later that day or the next, and
    transit drawn per lane (in-country about a day and a half, cross-border about three), with a carrier hiccup
    (one to three extra days) for one parcel in twelve; carriers collect and deliver on weekdays only. The shapes
    follow the seeded month of history."""
    approved = placed + timedelta(hours=rng.uniform(0.05, 0.5))
    packed = approved + timedelta(hours=rng.lognormvariate(1.2, 0.5))
    handed = packed + timedelta(hours=rng.lognormvariate(2.2, 0.5))
    same_country = (country == "DE") == (warehouse == "de-central")
    transit_d = rng.lognormvariate(0.4 if same_country else 1.1, 0.35)
    if rng.random() < 1 / 12:
        transit_d += rng.uniform(1, 3)
    # Carriers collect and deliver on weekdays: a collection or delivery that would fall on a weekend waits.
    handed = _weekday(handed)
    return [("approved", approved), ("packed", packed), ("handed_to_carrier", handed),
            ("delivered", _weekday(handed + timedelta(days=transit_d)))]


def _weekday(at: datetime) -> datetime:
    """``at``, or the same time on the Monday after when it falls on a Saturday or Sunday."""
    while at.weekday() >= 5:
        at += timedelta(days=1)
    return at


def simulate_fulfillment(store, report, console: Console, seed: int = 11) -> None:
    """The compressed clock: the demo's warehouses and carriers fulfil every order the demo placed and report it
    over ``POST /v1/fulfillment/events`` (the ingest key), so the promises recorded at checkout resolve as kept or
    missed and the dashboard's fulfillment and promise panels fill. Events are dated when they would happen, up
    to days ahead, which the demo's server accepts (``fulfillment_max_future_h``)."""
    rng = random.Random(seed)
    events = []
    status = _settled_statuses(report.db_url, [body["order_id"] for body, _, _ in report.placed
                                               if body.get("order_id")])
    not_shipped: dict[str, int] = {}
    shipped = 0
    for body, country, postal in report.placed:
        lines = body.get("lines") or []
        if not lines or not body.get("created_at"):
            continue
        state = status.get(body["order_id"], "unknown")
        if state not in SHIPPABLE:  # a warehouse only ships what the store handed it (not held, not cancelled)
            not_shipped[state] = not_shipped.get(state, 0) + 1
            continue
        shipped += 1
        warehouse = lines[0]["warehouse"]
        placed = datetime.fromisoformat(body["created_at"])
        base = {"order_id": body["order_id"], "warehouse": warehouse, "country": country, "postal_code": postal,
                "origin_region": ORIGIN_REGION.get(warehouse), "placed_at": placed.isoformat()}
        for kind, at in simulated_journey(rng, placed, warehouse, country):
            events.append({**base, "event_id": f"{body['order_id']}-{kind}", "type": kind, "at": at.isoformat()})
    accepted = refused = 0
    for i in range(0, len(events), 1000):
        r = store.client.post("/v1/fulfillment/events", json={"events": events[i:i + 1000]}, headers=store.ingest)
        if r.status_code == 200:
            accepted += r.json().get("accepted", 0)
        else:
            refused += len(events[i:i + 1000])
    report.fulfillment = {"orders": shipped, "events": accepted, "refused": refused, "not_shipped": not_shipped}


#: Order states a warehouse has been handed (the worker hands an order off after its capture).
SHIPPABLE = frozenset({"handed_off", "shipped", "delivered"})
#: States the worker moves on from by itself within seconds (capture, fraud screening, handoff).
_IN_FLIGHT = frozenset({"payment_pending", "authorized", "captured"})


def _settled_statuses(db_url: str, order_ids: list[str], wait_s: float = 20.0) -> dict[str, str]:
    """Each order's status once the worker has had its turn: polled (read only) until none is still between
    checkout and handoff, or ``wait_s`` passes."""
    from sqlalchemy import select

    from ..store.engine import make_engine
    from ..store.tables import orders

    engine = make_engine(db_url)
    deadline = time.monotonic() + wait_s
    try:
        while True:
            with engine.connect() as conn:
                found = {}
                for i in range(0, len(order_ids), 500):
                    chunk = order_ids[i:i + 500]
                    found.update(conn.execute(select(orders.c.id, orders.c.status)
                                              .where(orders.c.id.in_(chunk))).all())
            if not any(s in _IN_FLIGHT for s in found.values()) or time.monotonic() > deadline:
                return {k: str(v) for k, v in found.items()}
            time.sleep(0.5)
    finally:
        engine.dispose()


#: Storefront API requests per order in the seeded traffic history: with 2-3 % of visits buying and a dozen API
#: calls (pages, search, availability, promises, beacons) per visit, a few hundred to a few thousand per order.
REQUESTS_PER_ORDER = 1500


def seed_history(db_url: str, days: int = 120, traffic_days: int = 7, seed: int = 3) -> dict:
    """Give the fresh demo store a past: daily orders replayed from the UCI Online Retail II sample (shifted so
    the last sample day is yesterday) and per-minute request counts for the last ``traffic_days`` days. The
    request counts are synthetic: each day's order volume from the sample spread over a diurnal curve."""
    import math
    from collections import defaultdict

    from sqlalchemy import insert

    from ..store.capacity import record_request_batch
    from ..store.engine import make_engine
    from ..store.tables import order_lines, orders, skus
    from . import GB_SOUTH_SHARE, load_daily_demand

    rng = random.Random(seed)
    rows = load_daily_demand()
    last = max(r["date"] for r in rows)
    last_day = datetime.fromisoformat(last).date()
    today = datetime.now(timezone.utc).date()
    shift = today - timedelta(days=1) - last_day
    engine = make_engine(db_url)
    with engine.connect() as conn:
        prices = {r.sku: (int(r.price), r.currency) for r in conn.execute(skus.select())}
    order_rows, line_rows = [], []
    per_day = defaultdict(int)
    for r in rows:
        day = datetime.fromisoformat(r["date"]).date() + shift
        if (today - day).days > days or r["sku"] not in prices:
            continue
        wh = ("gb-south" if rng.random() < GB_SOUTH_SHARE else "gb-north") if r["market"] == "GB" else "de-central"
        at = datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc) + timedelta(hours=rng.uniform(8, 20))
        oid = f"ord_hist{uuid.uuid4().hex[:24]}"
        qty = max(1, int(r["qty"]))
        price, currency = prices[r["sku"]]
        order_rows.append(dict(id=oid, status="delivered", api_key_id=None, idempotency_key=None,
                               ship_to={"country": "GB" if r["market"] == "GB" else "DE", "postal_code": "EC1A 1BB"},
                               payment={"state": "captured"}, total=qty * price, currency=currency, shipping=None,
                               promise=None, split=0, reservation_expires_at=None, created_at=at, updated_at=at))
        line_rows.append(dict(order_id=oid, line_no=1, sku=r["sku"], warehouse=wh, qty=qty, unit_price=price))
        per_day[day] += 1
    with engine.begin() as conn:
        for i in range(0, len(order_rows), 5000):
            conn.execute(insert(orders), order_rows[i:i + 5000])
            conn.execute(insert(order_lines), line_rows[i:i + 5000])
    returned = replay_returns(engine, prices, shift, today, days, rng)
    # Synthetic per-minute traffic: REQUESTS_PER_ORDER per order, a diurnal curve peaking in the evening, Poisson
    # noise: about a hundred requests a minute in the (UTC) morning and a few hundred at the evening peak, so the
    # demo's own burst (its shoppers and flash sale within a minute or two) is a surge above the ordinary minutes
    # and the forecast's band around those is visible beside it.
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    rollups = []
    for m in range(traffic_days * 1440, 0, -1):
        t = now - timedelta(minutes=m)
        daily_orders = per_day.get(t.date(), per_day.get(t.date() - timedelta(days=7), 60))
        hour = t.hour + t.minute / 60
        shape = 0.35 + 0.65 * math.exp(-((hour - 19.5) ** 2) / 18) + 0.4 * math.exp(-((hour - 12) ** 2) / 8)
        lam = max(1.0, daily_orders * REQUESTS_PER_ORDER / 1440 * shape * 1.6)
        count = max(0, int(rng.gauss(lam, math.sqrt(lam))))
        rollups.append({"minute": t, "route": "/v1/checkouts" if m % 7 == 0 else "/v1/promise", "count": count,
                        "errors": 0, "latency_ms_sum": count * 12.0})
    for i in range(0, len(rollups), 2000):
        record_request_batch(engine, rollups[i:i + 2000])
    engine.dispose()
    return {"orders": len(order_rows), "returns": returned, "traffic_minutes": len(rollups)}


def replay_returns(engine, prices, shift: timedelta, today, days: int, rng: random.Random) -> int:
    """The sample's cancelled invoices, shifted like its orders, as ``returned`` fulfillment events through the
    store's ingest (reason ``other``: the source gives none; not restocked). Returns the events accepted."""
    from ..fulfillment import FulfillmentEvent
    from ..store.promise import SqlFulfillmentStore
    from . import GB_SOUTH_SHARE, load_daily_returns

    events = []
    for r in load_daily_returns():
        day = datetime.fromisoformat(r["date"]).date() + shift
        if (today - day).days > days or r["sku"] not in prices:
            continue
        wh = ("gb-south" if rng.random() < GB_SOUTH_SHARE else "gb-north") if r["market"] == "GB" else "de-central"
        at = datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc) + timedelta(hours=rng.uniform(8, 20))
        rid = f"ret_hist{uuid.uuid4().hex[:24]}"
        events.append(FulfillmentEvent(event_id=rid, order_id=rid, type="returned", at=at, warehouse=wh,
                                       sku=r["sku"], qty=max(1, int(r["qty"])), reason="other", restock=False))
    store = SqlFulfillmentStore(engine)
    now = datetime.now(timezone.utc)
    return sum(store.ingest(events[i:i + 500], now).accepted for i in range(0, len(events), 500))


def plan_ahead(store, report, console: Console, db_url: str) -> None:
    """Restock actions, sell-out risks, the next hours' capacity plan and the cache-warm list for the demo store."""
    from ..bootstrap import build_container
    from ..cli import capacity_cmd, restock_cmd
    from ..cli.output import console as cli_console
    from ..config import Settings

    history = report.history or seed_history(db_url)
    from . import DEMO_COUNTRY

    container = build_container(Settings(database_url=db_url, capacity_warm_default_country=DEMO_COUNTRY))
    try:
        with cli_console.capture() as cap:
            cli_console.print(f"history: {history['orders']} past orders (UCI Online Retail II sample), "
                              f"{history['traffic_minutes']} minutes of request counts")
            restock_cmd.show_restock_summary(container, top=5)
            capacity_cmd.print_demo_capacity(container, hours=3)
    finally:
        container.close()
    from rich.text import Text

    report.sections.append(("planning ahead: restock, sell-out risk, capacity and cache warming",
                            Text.from_ansi(cap.get())))
