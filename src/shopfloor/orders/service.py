"""The buy path facade used by the API: shipping quote, durable order, inline payment authorization."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from typing import Any

from .checkout import CheckoutResult, CheckoutService, PlaceOrder
from .payment_flow import PaymentSettlement
from .payments import PaymentAttempt


class BuyPath:
    """Checkout orchestration. The order is durable before any processor is called; the processors and the rate
    service are other systems, so they are never called inside a database transaction."""

    def __init__(self, checkout: CheckoutService, payments: Any = None, settlement: PaymentSettlement | None = None,
                 promise: Any = None) -> None:
        self.checkout_service = checkout
        self.payments = payments
        self.settlement = settlement
        self.promise = promise

    async def checkout(self, cmd: PlaceOrder) -> CheckoutResult:
        extra = dict(cmd.extra)
        if self.payments is not None:
            extra["shipping"] = await asyncio.to_thread(
                self.payments.shipping.quote_for_checkout, cmd.country, cmd.postal_code)
            extra["payment_attempt_key"] = f"pay_{uuid.uuid4().hex}"
        if self.promise is not None:
            extra["promise"] = await asyncio.to_thread(self.promise.promise_for_order, cmd)
        cmd = replace(cmd, extra=extra)
        result = await asyncio.wrap_future(self.checkout_service.submit(cmd))
        if not result.created or self.payments is None:
            return result
        order_id = result.body["order_id"]
        attempt = PaymentAttempt(extra["payment_attempt_key"], order_id, int(result.body["total"]),
                                 result.body["currency"], str(cmd.payment.get("token", "")), frozenset())
        auth = await asyncio.to_thread(self.payments.authorize_inline, attempt)
        status, body = await asyncio.to_thread(
            self.settlement.apply, order_id, auth, retry_no=1,
            idempotency_scope=(f"{cmd.api_key_id}:checkout", cmd.idempotency_key), response_body=result.body,
        )
        if body is None:
            return result
        return CheckoutResult(status, body, created=True)

    def close(self) -> None:
        self.checkout_service.close()
        if self.payments is not None:
            self.payments.close()


__all__ = ["BuyPath"]
