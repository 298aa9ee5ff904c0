"""The buy path: checkout, payments, shipping quotes, outbox worker. Public entry point."""

from .checkout import CheckoutResult, CheckoutService, PlaceOrder, request_fingerprint
from .handoff import WarehouseHandoff
from .outbox import OutboxEvent, OutboxWorker, RetryLater, outbox_status, requeue_dead
from .service import BuyPath, promise_bookkeeping
from .sweeper import release_expired_reservations

__all__ = [
    "BuyPath", "CheckoutResult", "CheckoutService", "OutboxEvent", "OutboxWorker", "PlaceOrder", "RetryLater",
    "WarehouseHandoff", "outbox_status", "promise_bookkeeping", "release_expired_reservations", "request_fingerprint", "requeue_dead",
]
