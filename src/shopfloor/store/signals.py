"""Read-only queries behind the control tower's per-entity signals (one processor, warehouse or SKU each)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from .payments_tables import payment_processor_health
from .promise_tables import fulfillment_events
from .tables import order_lines, orders, stock, warehouses


def signal_key(entity_id: str) -> str:
    """How an id appears in a signal name: ``de-central`` -> ``de_central``, ``FLASH-001`` -> ``FLASH_001``."""
    return entity_id.replace("-", "_").replace(".", "_")


def breaker_snapshots(engine: Engine, since: datetime) -> list[dict[str, Any]]:
    """The breaker snapshots the server processes persisted since ``since`` (one row per process and processor)."""
    t = payment_processor_health
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(t).where(t.c.updated_at >= since)).mappings()]


def newest_feed_events(engine: Engine) -> dict[str, datetime | None]:
    """Per warehouse, when its newest fulfillment event arrived (None: it has sent none)."""
    fe = fulfillment_events
    with engine.connect() as conn:
        known = {r[0]: None for r in conn.execute(select(warehouses.c.id))}
        newest = dict(conn.execute(select(fe.c.warehouse, func.max(fe.c.received_at)).group_by(fe.c.warehouse)).all())
    return {**known, **newest}


def stock_and_sales(engine: Engine, sku_keys: set[str], since: datetime) -> dict[str, tuple[str, int, int]]:
    """For SKUs whose :func:`signal_key` is in ``sku_keys``: ``key -> (sku, units available, units sold since)``."""
    if not sku_keys:
        return {}
    key = func.replace(func.replace(stock.c.sku, "-", "_"), ".", "_")
    with engine.connect() as conn:
        available = conn.execute(
            select(stock.c.sku, func.sum(stock.c.on_hand - stock.c.reserved))
            .where(key.in_(sorted(sku_keys))).group_by(stock.c.sku)
        ).all()
        skus = [sku for sku, _ in available]
        sold = dict(conn.execute(
            select(order_lines.c.sku, func.sum(order_lines.c.qty))
            .join(orders, orders.c.id == order_lines.c.order_id)
            .where(order_lines.c.sku.in_(skus), orders.c.created_at >= since)
            .group_by(order_lines.c.sku)
        ).all()) if skus else {}
    return {signal_key(sku): (sku, int(units or 0), int(sold.get(sku) or 0)) for sku, units in available}
