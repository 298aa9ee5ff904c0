"""Extra demo steps: a payment outage with failover, and promises before/after a warehouse delay."""

from __future__ import annotations

import random
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from rich import box
from rich.console import Console
from rich.table import Table

PROMISE_DESTINATIONS = [("GB", "EC1A 1BB"), ("GB", "M1 1AE"), ("DE", "10115")]
ORIGIN_REGION = {"gb-south": "gb-south", "gb-north": "gb-north", "de-central": "eu-central"}


def payment_outage(store, report, console: Console, n: int = 120) -> None:
    """Take the primary processor down, keep selling, and show where the money went."""
    catalog_skus = [o["lines"][0]["sku"] for o in report.orders[:50]] or ["85123A"]
    store.put("/v1/admin/processors/primary/faults", {"down": True})
    time.sleep(1.0)  # the processes' fault caches refresh
    results, lock = [], threading.Lock()

    def buy(i):
        status, body, ms = store.checkout([{"sku": catalog_skus[i % len(catalog_skus)], "qty": 1}], "GB",
                                          "EC1A 1BB", token=f"tok_outage_{i}")
        with lock:
            results.append((status, body, ms))

    try:
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(buy, range(n)))
    finally:
        store.put("/v1/admin/processors/primary/faults", {"down": False})
    ok = [b for s, b, _ in results if s == 201]
    ids = {b["order_id"] for b in ok}
    by_processor = {}
    for name in ("primary", "secondary"):
        ledger = store.client.get(f"/v1/admin/processors/{name}/ledger", headers=store.admin).json()
        by_processor[name] = sum(1 for c in ledger if c["order_id"] in ids and c["authorized"])
    lat = sorted(ms for _, _, ms in results)
    t = Table(show_header=False)
    t.add_row("checkouts during the outage", str(n))
    t.add_row("accepted", f"{len(ok)} ({100 * len(ok) / n:.1f}%)")
    t.add_row("authorized by primary / secondary", f"{by_processor['primary']} / {by_processor['secondary']}")
    t.add_row("p50 / p99 latency", f"{statistics.median(lat):.0f} ms / {lat[int(0.99 * (len(lat) - 1))]:.0f} ms")
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


def promises_before_and_after_delay(store, report, console: Console) -> None:
    """Feed a month of fulfillment history, show promises, then simulate a backlog at the London warehouse."""
    rng = random.Random(7)
    now = datetime.now(timezone.utc)
    headers = store.ingest
    events = _history_events(rng, now)
    for i in range(0, len(events), 500):
        store.client.post("/v1/fulfillment/events", json={"events": events[i:i + 500]}, headers=headers)
    sku = "85123A"
    for o in report.orders:  # a popular SKU that is still in stock
        candidate = o["lines"][0]["sku"]
        if store.client.get(f"/v1/stock/{candidate}", headers=store.admin).json().get("available", 0) > 20:
            sku = candidate
            break
    before = _promise_table(store, sku, f"promises for {sku} before the delay")
    # The delay: London accepts a surge of orders but hands none of them to carriers.
    backlog = []
    for i in range(250):
        oid = f"surge-{i}-{uuid.uuid4().hex[:6]}"
        placed = now - timedelta(hours=rng.uniform(1, 30))
        backlog.append({"event_id": f"{oid}-approved", "order_id": oid, "type": "approved", "at": placed.isoformat(),
                        "warehouse": "gb-south", "country": "GB", "postal_code": "EC1A 1BB",
                        "origin_region": "gb-south", "placed_at": placed.isoformat()})
    store.client.post("/v1/fulfillment/events", json={"events": backlog}, headers=headers)
    after = _promise_table(store, sku, "after a 250-order handoff backlog builds at gb-south")
    grid = Table.grid()
    grid.add_row(before)
    grid.add_row(after)
    report.sections.append(("delivery promises react to a warehouse delay", grid))


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
    # Synthetic per-minute traffic: ~40 requests per order, a diurnal curve peaking in the evening, Poisson noise.
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    rollups = []
    for m in range(traffic_days * 1440, 0, -1):
        t = now - timedelta(minutes=m)
        daily_orders = per_day.get(t.date(), per_day.get(t.date() - timedelta(days=7), 60))
        hour = t.hour + t.minute / 60
        shape = 0.35 + 0.65 * math.exp(-((hour - 19.5) ** 2) / 18) + 0.4 * math.exp(-((hour - 12) ** 2) / 8)
        lam = max(1.0, daily_orders * 40 / 1440 * shape * 1.6)
        count = max(0, int(rng.gauss(lam, math.sqrt(lam))))
        rollups.append({"minute": t, "route": "/v1/checkouts" if m % 7 == 0 else "/v1/promise", "count": count,
                        "errors": 0, "latency_ms_sum": count * 12.0})
    for i in range(0, len(rollups), 2000):
        record_request_batch(engine, rollups[i:i + 2000])
    engine.dispose()
    return {"orders": len(order_rows), "traffic_minutes": len(rollups)}


def plan_ahead(store, report, console: Console, db_url: str) -> None:
    """Restock actions, sell-out risks, the next hours' capacity plan and the cache-warm list for the demo store."""
    from ..bootstrap import build_container
    from ..cli import capacity_cmd, restock_cmd
    from ..cli.output import console as cli_console
    from ..config import Settings

    history = seed_history(db_url)
    container = build_container(Settings(database_url=db_url))
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
