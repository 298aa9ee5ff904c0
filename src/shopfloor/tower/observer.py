"""Server-side funnel stages from the buy path: Prometheus metrics plus per-minute rollups in our own database."""

from __future__ import annotations

from typing import Any

from ..domain.clock import Clock
from .metrics import FunnelMetrics
from .funnel import minute_of
from .service import FunnelBuffer, aggregate_events


def _error_code(body: dict[str, Any]) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


_OUTCOMES = {201: "accepted", 402: "declined", 409: "out_of_stock"}


class FunnelObserver:
    """The buy path calls ``checkout_finished`` once per checkout (never for replays)."""

    def __init__(self, metrics: FunnelMetrics, buffer: FunnelBuffer, clock: Clock) -> None:
        self.metrics = metrics
        self.buffer = buffer
        self.clock = clock

    def checkout_finished(self, status_code: int, seconds: float, body: dict[str, Any],
                          payment: dict[str, Any] | None, promised: bool) -> None:
        outcome = _OUTCOMES.get(status_code) or ("error" if status_code >= 500 else "rejected")
        m = self.metrics
        m.observe_checkout(outcome, seconds)
        minute = minute_of(self.clock.now())
        latency_ms = seconds * 1000.0
        # One count per stage this checkout reached (the stages are distinct, all in this minute): what
        # ``aggregate_events`` made of the same events, built directly.
        stages: list[tuple[str, float | None]] = [("checkout_attempt", latency_ms)]
        if promised:
            stages.append(("promise_lookup", None))
            m.promise_lookups.inc()
        if status_code in (201, 402):
            stages.append(("reservation_ok", None))
            m.observe_reservation("reserved")
        elif status_code == 409 and _error_code(body) == "out_of_stock":
            # A sold-out refusal is the right answer, not a failed checkout: counted apart, so the success rate
            # is taken over the attempts that could succeed.
            stages.append(("checkout_refused", None))
            m.observe_reservation("out_of_stock")
        if payment:
            processor = payment.get("processor") or "none"
            m.observe_payment(processor, payment.get("outcome", "unknown"))
            if payment.get("outcome") == "approved":
                stages.append(("payment_ok", None))
        if status_code == 201:
            stages.append(("checkout_succeeded", latency_ms))
        add_stages = getattr(self.buffer, "add_stages", None)
        if add_stages is not None:
            add_stages(minute, stages)
        else:  # a buffer that folds rows only
            self.buffer.add(aggregate_events([(minute, stage, latency) for stage, latency in stages]))

    def stage(self, stage: str, latency_ms: float | None = None) -> None:
        """A later stage (order confirmed, warehouse handoff) seen by the worker."""
        self.buffer.add(aggregate_events([(self.clock.now(), stage, latency_ms)]))
