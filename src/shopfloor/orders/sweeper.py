"""Releases reservations of orders that never completed payment within the reservation TTL."""

from __future__ import annotations

from sqlalchemy import Engine

from ..domain.clock import Clock
from ..domain.orders import RESERVATION_EXPIRED, OrderStatus
from ..store import orders_repo as repo


def release_expired_reservations(engine: Engine, clock: Clock, limit: int = 500) -> list[str]:
    """Cancel expired ``payment_pending`` orders and give their stock back. Safe to run from many processes:
    each order moves with a compare-and-set on its status, so only one sweeper releases it."""
    now = clock.now()
    with engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
        candidates = repo.expired_order_ids(conn, [OrderStatus.PAYMENT_PENDING.value], now, limit)
    released: list[str] = []
    for order_id in candidates:
        with engine.begin() as conn:
            if not repo.update_order_status(
                conn, order_id, [OrderStatus.PAYMENT_PENDING.value], OrderStatus.CANCELLED.value, now,
                reservation_expires_at=None,
            ):
                continue
            repo.release_reservations(conn, order_id)
            repo.enqueue_event(conn, RESERVATION_EXPIRED, order_id, {"order_id": order_id}, now)
        released.append(order_id)
    return released
