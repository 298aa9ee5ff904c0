"""Orders: the status machine and the events it emits."""

from __future__ import annotations

from enum import StrEnum

from .errors import InvalidTransition


class OrderStatus(StrEnum):
    PAYMENT_PENDING = "payment_pending"  # accepted; payment outcome not known yet (the worker retries)
    AUTHORIZED = "authorized"  # payment authorized; waiting for capture and handoff
    ON_HOLD = "on_hold"  # fraud screening asked for a human look before capture
    CAPTURED = "captured"  # money taken
    HANDED_OFF = "handed_off"  # warehouse task created
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    DECLINED = "declined"  # payment definitely declined; reservation released
    CANCELLED = "cancelled"  # cancelled or expired; reservation released


ALLOWED_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PAYMENT_PENDING: frozenset(
        {OrderStatus.AUTHORIZED, OrderStatus.DECLINED, OrderStatus.CANCELLED}
    ),
    OrderStatus.AUTHORIZED: frozenset(
        {OrderStatus.CAPTURED, OrderStatus.ON_HOLD, OrderStatus.CANCELLED, OrderStatus.HANDED_OFF}
    ),
    OrderStatus.ON_HOLD: frozenset({OrderStatus.AUTHORIZED, OrderStatus.CANCELLED}),
    OrderStatus.CAPTURED: frozenset({OrderStatus.HANDED_OFF, OrderStatus.CANCELLED}),
    OrderStatus.HANDED_OFF: frozenset({OrderStatus.SHIPPED, OrderStatus.CANCELLED}),
    OrderStatus.SHIPPED: frozenset({OrderStatus.DELIVERED}),
    OrderStatus.DELIVERED: frozenset(),
    OrderStatus.DECLINED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
}

#: Statuses in which the order still holds a reservation (stock counted in ``reserved``).
HOLDS_RESERVATION = frozenset(
    {OrderStatus.PAYMENT_PENDING, OrderStatus.AUTHORIZED, OrderStatus.ON_HOLD, OrderStatus.CAPTURED}
)
#: Statuses after which the reserved stock has left the building (counted as sold).
SOLD = frozenset({OrderStatus.HANDED_OFF, OrderStatus.SHIPPED, OrderStatus.DELIVERED})


def check_transition(current: str, target: str) -> OrderStatus:
    cur, tgt = OrderStatus(current), OrderStatus(target)
    if tgt not in ALLOWED_TRANSITIONS[cur]:
        raise InvalidTransition(
            f"order cannot go from {cur} to {tgt}", [{"from": str(cur), "to": str(tgt)}]
        )
    return tgt


# Event type names (past tense). Payloads are plain dicts so they serialise into the outbox as JSON.
ORDER_PLACED = "OrderPlaced"
ORDER_CANCELLED = "OrderCancelled"
RESERVATION_EXPIRED = "ReservationExpired"
