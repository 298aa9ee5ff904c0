"""After a load run: the store and the processors' ledgers checked for lost, oversold, duplicated or double-charged
orders, and stock conserved."""

from __future__ import annotations

from typing import Any

import httpx

#: The checks that must all be 0.
CHECKS = ("lost", "unverified_201", "oversold", "flash_oversold", "duplicate_orders", "replay_mismatches",
          "double_captures", "double_authorizations", "live_authorizations_on_cancelled_orders", "dead_letters",
          "stock_not_conserved")



def charge_anomalies(charges: list[dict[str, Any]]) -> tuple[int, int]:
    """From processors' ledger rows: (orders captured more than once, orders that would be charged twice by a
    live authorization beside a capture or another live authorization). Rows without an order id are cancelled
    keys (technical voids) and never charge."""
    captures: dict[str, int] = {}
    holds: dict[str, int] = {}
    for charge in charges:
        oid = charge.get("order_id") or ""
        if not oid:
            continue
        if charge.get("captured"):
            captures[oid] = captures.get(oid, 0) + 1
        if charge.get("authorized") and not charge.get("voided") and not charge.get("captured"):
            holds[oid] = holds.get(oid, 0) + 1
    double_captures = sum(1 for n in captures.values() if n > 1)
    double_auth = sum(1 for oid, n in holds.items() if n + captures.get(oid, 0) > 1)
    return double_captures, double_auth


def live_authorizations_on_ended_orders(charges: list[dict[str, Any]], ended_orders: set[str]) -> int:
    """Orders that ended without a capture (cancelled, expired or declined) for which a processor still holds a
    live authorization: the customer's funds stay held for nothing."""
    return len({c["order_id"] for c in charges
                if c.get("order_id") in ended_orders and c.get("authorized") and not c.get("voided")
                and not c.get("captured")})


def processor_ledger(url: str, key: str, processors: list[str]) -> list[dict[str, Any]]:
    """Every simulated processor's ledger, read through the admin API as an operator would."""
    rows: list[dict[str, Any]] = []
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {key}"}) as client:
        for name in processors:
            resp = client.get(f"{url}/v1/admin/processors/{name}/ledger")
            resp.raise_for_status()
            rows.extend(resp.json())
    return rows


def stock_snapshot(database_url: str) -> dict[tuple[str, str], int]:
    """``on_hand`` per (sku, warehouse): taken before the load, it is what conservation is checked against."""
    from sqlalchemy import select

    from ..store.engine import make_engine
    from ..store.tables import stock

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return {(r.sku, r.warehouse): int(r.on_hand)
                    for r in conn.execute(select(stock.c.sku, stock.c.warehouse, stock.c.on_hand))}
    finally:
        engine.dispose()


def count_payment_pending(engine) -> int:
    """Orders still waiting for a payment outcome (the worker retries them)."""
    from sqlalchemy import func, select

    from ..domain.orders import OrderStatus
    from ..store.tables import orders

    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(orders).where(
            orders.c.status == OrderStatus.PAYMENT_PENDING.value)).scalar_one())


def drain(engine, timeout_s: float, say=None) -> dict[str, Any]:
    """Wait until the worker has delivered every outbox event and settled every pending payment, or ``timeout_s``
    passed; returns how long it took and what was left (``settled`` False when time ran out)."""
    import time

    from ..orders import outbox_status

    started = time.monotonic()
    while True:
        st = outbox_status(engine)
        pending = count_payment_pending(engine)
        settled = st["pending"] == 0 and pending == 0
        if settled or time.monotonic() - started > timeout_s:
            break
        if say is not None:
            say(f"draining: {st['pending']} events, {pending} payments pending")
        time.sleep(0.5)
    return {"seconds": round(time.monotonic() - started, 1), "settled": settled, "outbox_pending": st["pending"],
            "outbox_delivered": st["delivered"], "outbox_dead": st["dead"], "payment_pending_orders": pending}


def store_checks(engine, flash_units: int, initial: dict[tuple[str, str], int]) -> dict[str, Any]:
    """Stock conservation per row (units on hand now plus units that left with handed-off orders equal the units
    at the start; reservation counters match the live reservations), flash-sale units sold, and orders still
    waiting for a payment outcome."""
    from sqlalchemy import func, select

    from ..domain.orders import OrderStatus
    from ..store import orders_repo as repo
    from ..store.tables import order_lines, orders, reservations, stock

    with engine.connect() as conn:
        rows = conn.execute(select(stock.c.sku, stock.c.warehouse, stock.c.on_hand, stock.c.reserved)).all()
        active = repo.active_reserved_by_row(conn)
        consumed = {(r[0], r[1]): int(r[2]) for r in conn.execute(
            select(reservations.c.sku, reservations.c.warehouse, func.sum(reservations.c.qty))
            .where(reservations.c.state == "consumed").group_by(reservations.c.sku, reservations.c.warehouse))}
        released = [OrderStatus.DECLINED.value, OrderStatus.CANCELLED.value]
        flash_sold = conn.execute(
            select(func.coalesce(func.sum(order_lines.c.qty), 0))
            .join(orders, orders.c.id == order_lines.c.order_id)
            .where(order_lines.c.sku == "HOT", orders.c.status.not_in(released))).scalar()
        provisional = sum(1 for (doc,) in conn.execute(select(orders.c.shipping))
                          if isinstance(doc, dict) and doc.get("provisional"))
        by_status = {r[0]: int(r[1]) for r in conn.execute(
            select(orders.c.status, func.count()).group_by(orders.c.status))}
        ended = {r[0] for r in conn.execute(select(orders.c.id).where(orders.c.status.in_(released)))}
    not_conserved = sum(
        1 for r in rows
        if int(r.reserved) != active.get((r.sku, r.warehouse), 0) or not 0 <= int(r.reserved) <= int(r.on_hand)
        or int(r.on_hand) + consumed.get((r.sku, r.warehouse), 0) != initial.get((r.sku, r.warehouse))
    )
    return {
        "stock_not_conserved": not_conserved,
        "flash_oversold": max(0, int(flash_sold) - flash_units),
        "flash_sold": int(flash_sold),
        "payment_pending_orders": by_status.get(OrderStatus.PAYMENT_PENDING.value, 0),
        "provisional_quotes_left": provisional,
        "orders_by_status": by_status,
        "ended_unpaid_orders": ended,
    }


def verify_store(database_url: str, created_order_ids: list[str]) -> dict:
    """Oversold, lost and duplicate checks after a run. ``created_order_ids``: the order id of every 201 the load
    generator received; an order is lost when its id is not in the store."""
    from sqlalchemy import func, select

    from ..store import orders_repo as repo
    from ..store.engine import make_engine
    from ..store.tables import orders, stock

    engine = make_engine(database_url)
    with engine.connect() as conn:
        oversold = conn.execute(
            select(func.count()).select_from(stock).where(
                (stock.c.reserved > stock.c.on_hand) | (stock.c.on_hand < 0) | (stock.c.reserved < 0)
            )
        ).scalar()
        active = repo.active_reserved_by_row(conn)
        rows = conn.execute(select(stock.c.sku, stock.c.warehouse, stock.c.reserved)).all()
        mismatched = sum(1 for r in rows if int(r.reserved) != active.get((r.sku, r.warehouse), 0))
        n_orders = conn.execute(select(func.count()).select_from(orders)).scalar()
        wanted = sorted(set(created_order_ids))
        found = 0
        for i in range(0, len(wanted), 500):
            found += conn.execute(select(func.count()).select_from(orders)
                                  .where(orders.c.id.in_(wanted[i:i + 500]))).scalar()
        dup = conn.execute(
            select(func.count()).select_from(
                select(orders.c.idempotency_key)
                .group_by(orders.c.api_key_id, orders.c.idempotency_key)
                .having(func.count() > 1)
                .subquery()
            )
        ).scalar()
        hot_reserved = conn.execute(select(func.sum(stock.c.reserved)).where(stock.c.sku == "HOT")).scalar()
        hot_on_hand = conn.execute(select(func.sum(stock.c.on_hand)).where(stock.c.sku == "HOT")).scalar()
    engine.dispose()
    return {
        "oversold": int(oversold) + mismatched,
        "lost": len(wanted) - int(found),
        "duplicate_orders": int(dup),
        "orders_in_db": int(n_orders),
        "hot_sku_sold": int(hot_reserved or 0),
        "hot_sku_units": int(hot_on_hand or 0),
    }


def buy_path_checks(store: dict[str, Any], checks: dict[str, Any], drained: dict[str, Any], load: Any,
                    double_captures: int, double_auth: int, live_on_ended: int) -> dict[str, int]:
    """The buy path's checks, shared by the game days that drive checkouts through HTTP shoppers (``load`` has
    ``checkouts``, ``replay_mismatches`` and ``unclean_checkout_failures``); every value must be 0."""
    return {
        "lost": store["lost"],
        "unverified_201": sum(1 for c in load.checkouts if c["status"] == 201 and not c["order_id"]),
        "oversold": store["oversold"],
        "flash_oversold": checks["flash_oversold"],
        "duplicate_orders": store["duplicate_orders"],
        "replay_mismatches": load.replay_mismatches,
        "double_captures": double_captures,
        "double_authorizations": double_auth,
        "live_authorizations_on_cancelled_orders": live_on_ended,
        "dead_letters": drained["outbox_dead"],
        "stock_not_conserved": checks["stock_not_conserved"],
        "unclean_checkout_failures": load.unclean_checkout_failures,
    }
