"""The buy path facade used by the API: checkout (and, as they are wired, quotes, promises and payments)."""

from __future__ import annotations

import asyncio

from .checkout import CheckoutResult, CheckoutService, PlaceOrder


class BuyPath:
    def __init__(self, checkout: CheckoutService) -> None:
        self.checkout_service = checkout

    async def checkout(self, cmd: PlaceOrder) -> CheckoutResult:
        return await asyncio.wrap_future(self.checkout_service.submit(cmd))

    def close(self) -> None:
        self.checkout_service.close()
