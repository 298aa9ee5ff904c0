"""Warehouse handoff: a paid order becomes one task per shipping warehouse, and its stock leaves the building."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Engine, insert, select

from ..domain.clock import Clock
from ..domain.orders import OrderStatus
from ..store import orders_repo as repo
from ..store.tables import order_lines, warehouse_tasks
from .outbox import OutboxEvent

ORDER_HANDED_OFF = "OrderHandedOff"


class WarehouseHandoff:
    """Outbox handler. Idempotent: the status compare-and-set and the task primary key make a redelivery a no-op."""

    name = "warehouse_handoff"

    def __init__(self, engine: Engine, clock: Clock, event_types: frozenset[str], ready_statuses: frozenset[str]):
        self.engine = engine
        self.clock = clock
        self.event_types = event_types
        self.ready_statuses = ready_statuses

    def handle(self, event: OutboxEvent) -> None:
        order_id = event.payload["order_id"]
        now = self.clock.now()
        with self.engine.begin() as conn:
            if not repo.update_order_status(
                conn, order_id, list(self.ready_statuses), OrderStatus.HANDED_OFF.value, now
            ):
                return  # already handed off, cancelled or not paid: nothing to do
            rows = conn.execute(
                select(order_lines.c.warehouse, order_lines.c.sku, order_lines.c.qty).where(
                    order_lines.c.order_id == order_id
                )
            ).all()
            per_wh: dict[str, list[dict]] = defaultdict(list)
            for r in rows:
                per_wh[r.warehouse].append({"sku": r.sku, "qty": int(r.qty)})
            for wh, lines in sorted(per_wh.items()):
                conn.execute(
                    insert(warehouse_tasks).values(
                        order_id=order_id, warehouse=wh, lines=lines, status="open", created_at=now
                    )
                )
            repo.consume_reservations(conn, order_id)
            repo.enqueue_event(
                conn, ORDER_HANDED_OFF, order_id,
                {"order_id": order_id, "warehouses": sorted(per_wh), "tasks": dict(per_wh)}, now,
            )
