"""Outbound webhook policy, pure: which internal events subscribers hear about, what they carry, and what a
delivery attempt's answer means for the next attempt (Standard Webhooks retry schedule)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Mapping

ORDER_PLACED = "order.placed"
ORDER_PAID = "order.paid"
ORDER_CANCELLED = "order.cancelled"
ORDER_SHIPPED = "order.shipped"
STOCK_LOW = "stock.low"
PROMISE_DEGRADED = "promise.degraded"
TOWER_ALERT = "tower.alert"

EVENT_TYPES: tuple[str, ...] = (ORDER_PLACED, ORDER_PAID, ORDER_CANCELLED, ORDER_SHIPPED, STOCK_LOW,
                                PROMISE_DEGRADED, TOWER_ALERT)

#: Internal outbox event type -> the public event type subscribers see.
INTERNAL_TO_PUBLIC: dict[str, str] = {
    "OrderPlaced": ORDER_PLACED,
    "OrderImported": ORDER_PLACED,
    "PaymentCaptured": ORDER_PAID,
    "OrderCancelled": ORDER_CANCELLED,
    "ReservationExpired": ORDER_CANCELLED,
    "OrderShipped": ORDER_SHIPPED,
    "StockLow": STOCK_LOW,
    "PromiseDegraded": PROMISE_DEGRADED,
    "TowerAlert": TOWER_ALERT,
}

# Fields of internal payloads that never leave the building (payment tokens, API key ids, e-mail addresses).
_PRIVATE_FIELDS = frozenset({"payment_token", "api_key_id", "email", "payment", "customer_id"})

#: Delay before attempt n+1 after n attempts (Standard Webhooks / Svix): immediately, 5 s, 5 min, 30 min, 2 h,
#: 5 h, 10 h, 10 h. Eight attempts in all, a little over a day and a half.
RETRY_SCHEDULE_S: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_ATTEMPTS = len(RETRY_SCHEDULE_S)
#: Answers whose Retry-After header is obeyed.
RETRY_AFTER_STATUSES = frozenset({429, 502, 503, 504})


def public_event(internal_type: str, payload: Mapping[str, Any], at: datetime) -> dict[str, Any] | None:
    """The Standard Webhooks body ``{"type", "timestamp", "data"}`` for an internal event (None: not published)."""
    public = INTERNAL_TO_PUBLIC.get(internal_type)
    if public is None:
        return None
    data = _scrub(payload)
    if internal_type == "ReservationExpired":
        data.setdefault("reason", "reservation_expired")
    return {"type": public, "timestamp": at.astimezone(timezone.utc).isoformat(), "data": data}


def _scrub(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _scrub(v) for k, v in value.items() if k not in _PRIVATE_FIELDS}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one HTTP attempt got: a status code (None when no answer came) and the Retry-After header."""

    status_code: int | None
    retry_after: str | None = None
    error: str | None = None
    duration_ms: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    """``succeeded``; ``retry`` after ``delay_s``; ``failed`` (final for this delivery); ``gone`` (410: the
    subscriber asked to be unsubscribed, so the endpoint is disabled)."""

    kind: str
    delay_s: float = 0.0
    reason: str = ""


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())


def scheduled_delay(attempts_made: int, rng: random.Random, jitter: float = 0.1) -> float | None:
    """Delay before the next attempt after ``attempts_made`` attempts, with +-``jitter`` so that subscribers that
    failed together do not all come back at the same instant; None when the schedule is used up."""
    if attempts_made >= MAX_ATTEMPTS:
        return None
    base = RETRY_SCHEDULE_S[attempts_made]
    return base * (1.0 + rng.uniform(-jitter, jitter)) if base else 0.0


def judge(result: AttemptResult, attempts_made: int, now: datetime, rng: random.Random, *,
          max_client_error_attempts: int = 3, max_retry_after_s: float = 36_000) -> Verdict:
    """The fate of a delivery after its ``attempts_made``-th attempt got ``result``."""
    code = result.status_code
    if code is not None and 200 <= code < 300:
        return Verdict("succeeded")
    if code == 410:
        return Verdict("gone", reason="410 Gone: the subscriber removed this endpoint")
    reason = f"HTTP {code}" if code is not None else (result.error or "no answer")
    if code is not None and 400 <= code < 500 and code not in (408, 429) and attempts_made >= max_client_error_attempts:
        return Verdict("failed", reason=f"{reason}: a client error, not retried after {attempts_made} attempts")
    delay = scheduled_delay(attempts_made, rng)
    if delay is None:
        return Verdict("failed", reason=f"{reason}: gave up after {attempts_made} attempts")
    if code in RETRY_AFTER_STATUSES:
        asked = parse_retry_after(result.retry_after, now)
        if asked is not None:
            delay = min(asked, max_retry_after_s)
    return Verdict("retry", delay_s=delay, reason=reason)
