"""Seeding and invariant checks shared by store-level tests."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import func, select

from shopfloor.domain.orders import SOLD
from shopfloor.store import orders_repo as repo
from shopfloor.store.engine import make_engine
from shopfloor.store.keys import create_api_key
from shopfloor.store.tables import order_lines, orders, reservations, stock

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


def seed(engine, warehouses: dict[str, tuple[str, str, list[str]]], skus: dict[str, int],
         stock_levels: dict[tuple[str, str], int], now: datetime = NOW) -> None:
    with engine.begin() as conn:
        for wid, (region, country, prefixes) in warehouses.items():
            repo.upsert_warehouse(conn, wid, region, country, prefixes, now)
        for sku, price in skus.items():
            repo.upsert_sku(conn, sku, f"Item {sku}", "general", price, "USD", now)
        for (sku, wid), qty in stock_levels.items():
            repo.set_on_hand(conn, sku, wid, qty, now)


def new_key(engine, *scopes: str) -> tuple[str, str]:
    return create_api_key(engine, list(scopes) or ["storefront"], "test", NOW)


def check_invariants(engine, initial: dict[tuple[str, str], int]) -> dict:
    """Stock is conserved and every counter matches the reservations: returns a summary for asserts."""
    with engine.connect() as conn:
        rows = {(r.sku, r.warehouse): (int(r.on_hand), int(r.reserved)) for r in conn.execute(select(stock))}
        active = repo.active_reserved_by_row(conn)
        sold_rows = conn.execute(
            select(order_lines.c.sku, order_lines.c.warehouse, func.sum(order_lines.c.qty))
            .join(orders, orders.c.id == order_lines.c.order_id)
            .where(orders.c.status.in_([s.value for s in SOLD]))
            .group_by(order_lines.c.sku, order_lines.c.warehouse)
        ).all()
        sold = {(r[0], r[1]): int(r[2]) for r in sold_rows}
        consumed = conn.execute(
            select(reservations.c.sku, reservations.c.warehouse, func.sum(reservations.c.qty))
            .where(reservations.c.state == "consumed")
            .group_by(reservations.c.sku, reservations.c.warehouse)
        ).all()
    consumed_map = {(r[0], r[1]): int(r[2]) for r in consumed}
    for key, (on_hand, reserved) in rows.items():
        assert on_hand >= 0 and 0 <= reserved <= on_hand, (key, on_hand, reserved)
        assert reserved == active.get(key, 0), (key, reserved, active.get(key, 0))
        assert sold.get(key, 0) == consumed_map.get(key, 0), (key, sold.get(key), consumed_map.get(key))
        if key in initial:
            available = on_hand - reserved
            assert initial[key] == available + reserved + sold.get(key, 0), (key, initial[key], on_hand, sold)
    return {"rows": rows, "sold": sold, "active": active}


def engine_for(url: str):
    return make_engine(url)
