"""Server-side funnel stages from the buy path: Prometheus metrics plus per-minute rollups in our own database."""

from __future__ import annotations

from typing import Any

from ..domain.clock import Clock
from .metrics import FunnelMetrics
from .service import FunnelBuffer, aggregate_events


def _error_code(body: dict[str, Any]) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


class FunnelObserver:
    """The buy path calls ``checkout_finished`` once per checkout (never for replays)."""

    def __init__(self, metrics: FunnelMetrics, buffer: FunnelBuffer, clock: Clock) -> None:
        self.metrics = metrics
        self.buffer = buffer
        self.clock = clock

    def checkout_finished(self, status_code: int, seconds: float, body: dict[str, Any],
                          payment: dict[str, Any] | None, promised: bool) -> None:
        outcome = {201: "accepted", 402: "declined", 409: "out_of_stock"}.get(status_code, "error" if
                                                                             status_code >= 500 else "rejected")
        self.metrics.observe_checkout(outcome, seconds)
        now = self.clock.now()
        events = [(now, "checkout_attempt", seconds * 1000.0)]
        if promised:
            events.append((now, "promise_lookup", None))
            self.metrics.promise_lookups.inc()
        if status_code in (201, 402):
            events.append((now, "reservation_ok", None))
            self.metrics.reservations.labels(outcome="reserved").inc()
        elif status_code == 409 and _error_code(body) == "out_of_stock":
            # A sold-out refusal is the right answer, not a failed checkout: counted apart, so the success rate
            # is taken over the attempts that could succeed.
            events.append((now, "checkout_refused", None))
            self.metrics.reservations.labels(outcome="out_of_stock").inc()
        if payment:
            processor = payment.get("processor") or "none"
            self.metrics.observe_payment(processor, payment.get("outcome", "unknown"))
            if payment.get("outcome") == "approved":
                events.append((now, "payment_ok", None))
        if status_code == 201:
            events.append((now, "checkout_succeeded", seconds * 1000.0))
        self.buffer.add(aggregate_events(events))

    def stage(self, stage: str, latency_ms: float | None = None) -> None:
        """A later stage (order confirmed, warehouse handoff) seen by the worker."""
        self.buffer.add(aggregate_events([(self.clock.now(), stage, latency_ms)]))
