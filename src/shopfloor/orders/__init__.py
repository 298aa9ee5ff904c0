"""The buy path: checkout, payment outcomes applied to orders, shipping quotes, the outbox worker and its side effects
(fraud screening, mail, warehouse handoff and webhook), and the ports its collaborators satisfy. Public entry point."""

from .checkout import CheckoutResult, CheckoutService, PlaceOrder, request_fingerprint
from .handoff import WarehouseHandoff
from .outbox import OutboxEvent, OutboxWorker, RetryLater, outbox_status, requeue_dead
from .ports import (
    CheckoutObserver,
    InlinePayments,
    Notifier,
    OrderPromises,
    OrderWriter,
    ShippingQuotes,
    ShippingReconciler,
    WebhookSender,
    WorkerPayments,
)
from .service import BuyPath, promise_bookkeeping
from .stages import StageLog
from .sweeper import release_expired_reservations

__all__ = [
    "BuyPath", "CheckoutObserver", "CheckoutResult", "CheckoutService", "InlinePayments", "Notifier", "OrderPromises",
    "OrderWriter", "OutboxEvent", "OutboxWorker", "PlaceOrder", "RetryLater", "ShippingQuotes", "ShippingReconciler", "StageLog",
    "WarehouseHandoff", "WebhookSender", "WorkerPayments", "outbox_status", "promise_bookkeeping",
    "release_expired_reservations", "request_fingerprint", "requeue_dead",
]
