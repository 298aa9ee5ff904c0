"""The funnel's vocabulary, shared by the tower's modules: stage names, the minute a timestamp falls in, and the
checkout success rate."""

from __future__ import annotations

from datetime import datetime

STOREFRONT_STAGES = ("page_view", "product_view", "add_to_cart", "checkout_started")
# Server-side stages the app records through FunnelRecorder (names shared with the dashboard JSON).
SERVER_STAGES = ("promise_lookup", "checkout_attempt", "checkout_succeeded", "checkout_refused", "reservation_ok",
                 "payment_ok", "order_confirmed", "warehouse_handoff", "carrier_handoff", "delivered")


def checkout_success_rate(attempts: float, succeeded: float, refused: float) -> float | None:
    """Succeeded over the attempts that could succeed: a sold-out refusal (409 ``out_of_stock``, stage
    ``checkout_refused``) is the store answering correctly, not a failed checkout. None without such attempts."""
    could = attempts - refused
    return succeeded / could if could > 0 else None


def minute_of(ts: datetime) -> datetime:
    return ts.replace(second=0, microsecond=0)
