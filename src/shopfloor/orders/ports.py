"""What the buy path and the worker's handlers need from their collaborators.

``bootstrap.build_container`` hands in the concrete ones (:class:`~shopfloor.orders.checkout.CheckoutService`,
:class:`~shopfloor.orders.payments_service.PaymentsService`, :class:`~shopfloor.promise.engine.PromiseEngine`,
:class:`~shopfloor.tower.observer.FunnelObserver`, ...). Another implementation, or a test double, only has to do
what is written here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any, Protocol

from sqlalchemy import Connection

from ..domain.fraud import FraudAssessment
from ..payments import AuthorizationResult, ChargeStatus, PaymentAttempt, ProcessorResponse
from .checkout import CheckoutResult, PlaceOrder

# -- the buy path (POST /v1/checkouts) ------------------------------------------------------------------------------


class OrderWriter(Protocol):
    """Places orders durably (the group-commit writer) and runs follow-up writes in its next commit."""

    async def place(self, cmd: PlaceOrder) -> CheckoutResult: ...

    async def run_batched(self, handler: Callable[[Connection, list[Any]], list[Any]], item: Any) -> Any: ...

    def close(self) -> None: ...


class ShippingQuotes(Protocol):
    """A shipping quote for a checkout: live, or provisional when the rate service does not answer in time."""

    def quote_for_checkout(self, country: str, postal_code: str | None = None) -> dict[str, Any]: ...

    async def quote_for_checkout_async(self, country: str, postal_code: str | None = None) -> dict[str, Any]: ...


class InlinePayments(Protocol):
    """Authorizes a payment within the checkout's budget, and quotes shipping (``shipping``)."""

    shipping: ShippingQuotes

    def authorize_inline(self, attempt: PaymentAttempt) -> AuthorizationResult: ...

    async def authorize_inline_async(self, attempt: PaymentAttempt) -> AuthorizationResult: ...

    def close(self) -> None: ...


class LinePromise(Protocol):
    """One line's delivery promise, as the buy path reads it."""

    @property
    def deliver_by(self) -> date | None: ...

    @property
    def window(self) -> Any: ...  # what ``promise_bookkeeping``'s ``record_in`` stores for calibration

    def to_dict(self) -> dict[str, Any]: ...


class OrderPromises(Protocol):
    """Delivery promises for an order's lines, each from the warehouse its allocation will ship it from."""

    def promise_for_order(self, lines: Sequence[tuple[str, int]], country: str,
                          postal_code: str) -> Sequence[LinePromise]: ...


class CheckoutObserver(Protocol):
    """Told once per checkout that was not a replay (metrics, funnel)."""

    def checkout_finished(self, status_code: int, seconds: float, body: dict[str, Any],
                          payment: dict[str, Any] | None, promised: bool) -> None: ...


# -- the worker's handlers ------------------------------------------------------------------------------------------


class ProcessorCalls(Protocol):
    """Capture, void and status of one attempt key at a named processor (the payment router)."""

    def capture(self, processor: str, idempotency_key: str, amount: int, currency: str, *,
                timeout_s: float | None = None) -> ProcessorResponse: ...

    def void(self, processor: str, idempotency_key: str, *, timeout_s: float | None = None) -> ProcessorResponse: ...

    def status(self, processor: str, idempotency_key: str, *, timeout_s: float | None = None) -> ChargeStatus: ...


class FraudScreening(Protocol):
    def assess(self, order_id: str) -> FraudAssessment: ...


class WorkerPayments(Protocol):
    """What the payment handlers use: retries with the worker's longer budget, the router, the fraud screen."""

    router: ProcessorCalls
    fraud: FraudScreening

    def processor_names(self) -> list[str]: ...

    def authorize_retry(self, attempt: PaymentAttempt) -> AuthorizationResult: ...


class ShippingReconciler(Protocol):
    """Replaces a provisional quote by a live one (``None``: nothing to reconcile)."""

    def reconcile(self, shipping: Mapping[str, Any], country: str,
                  postal_code: str | None = None) -> dict[str, Any] | None: ...


class Notifier(Protocol):
    """Sends an order's confirmation (once per order; returns the message id)."""

    def send_confirmation(self, order: Mapping[str, Any], recipient: str | None = None) -> str: ...


class WebhookSender(Protocol):
    """Delivers one signed event to the warehouse (returns the HTTP status)."""

    def deliver(self, event_id: str, payload: Mapping[str, Any]) -> int: ...


__all__ = [
    "CheckoutObserver", "FraudScreening", "InlinePayments", "LinePromise", "Notifier", "OrderPromises", "OrderWriter",
    "ProcessorCalls", "ShippingQuotes", "ShippingReconciler", "WebhookSender", "WorkerPayments",
]
