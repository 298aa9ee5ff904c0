"""What every payment gateway adapter implements (:class:`PaymentProcessor`), what it answers, and the errors that
tell the router whether a failed call certainly did not charge (:class:`DefinitelyNotCharged`) or may have
(:class:`OutcomeUnknown`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class ProcessorResponse:
    """A definite answer from a processor: ``approved`` or declined with a reason."""

    approved: bool
    reference: str | None = None
    decline_reason: str | None = None


@dataclass(frozen=True)
class ChargeStatus:
    """What a processor holds for one idempotency key. ``found=False``: it never processed that key."""

    processor: str
    idempotency_key: str
    found: bool
    authorized: bool = False
    declined: bool = False
    captured: bool = False
    voided: bool = False
    amount: int | None = None
    currency: str | None = None
    order_id: str | None = None
    reference: str | None = None
    decline_reason: str | None = None


class PaymentError(Exception):
    """Base class of processor call failures."""

    def __init__(self, processor: str, message: str) -> None:
        super().__init__(f"{processor}: {message}")
        self.processor = processor
        self.message = message


class DefinitelyNotCharged(PaymentError):
    """The request certainly had no effect (never reached the processor, or it said so). Safe to fail over."""


class ConnectionRefused(DefinitelyNotCharged):
    """TCP connection refused / DNS failure: the request never left us."""


class ProcessorUnavailable(DefinitelyNotCharged):
    """An explicit 5xx that the processor documents as "not processed" (e.g. 503 before processing)."""

    def __init__(self, processor: str, message: str, status_code: int = 503) -> None:
        super().__init__(processor, message)
        self.status_code = status_code


class AttemptKeyCancelled(DefinitelyNotCharged):
    """The key was cancelled at this processor (a technical cancel after a timeout): it will never charge under
    it. Not a sign of an unhealthy processor."""


class OutcomeUnknown(PaymentError):
    """We do not know whether the request took effect (timeout, lost response). Ask ``status`` first."""


class ProcessorTimeout(OutcomeUnknown):
    """No answer within the call timeout."""


class BreakerOpen(DefinitelyNotCharged):
    """The router did not call the processor because its breaker is open."""


class PaymentRetryable(Exception):
    """Capture/void could not be completed now; retrying with the same key is safe (the outbox retries)."""

    def __init__(self, processor: str, operation: str, cause: Exception) -> None:
        super().__init__(f"{operation} at {processor} failed, retry later: {cause}")
        self.processor = processor
        self.operation = operation
        self.cause = cause


class PaymentRejected(Exception):
    """Capture/void definitely refused by the processor (e.g. authorization voided). Retrying will not help."""

    def __init__(self, processor: str, operation: str, reason: str | None) -> None:
        super().__init__(f"{operation} at {processor} rejected: {reason}")
        self.processor = processor
        self.operation = operation
        self.reason = reason


@runtime_checkable
class PaymentProcessor(Protocol):
    """The contract every gateway adapter implements (see docs/payments.md).

    Every method takes the attempt's idempotency key and must be idempotent by it: the same key never creates a
    second charge, and re-sending it returns the first outcome. ``timeout_s`` is the most the call may take.
    Failures must be raised as :class:`DefinitelyNotCharged` only when the request certainly had no effect, and
    as :class:`OutcomeUnknown` otherwise; the router treats any other exception as an unknown outcome.

    ``void`` of a key the processor has not seen is a *technical cancel*: it must succeed and make any later
    ``authorize`` with that key fail with :class:`AttemptKeyCancelled`. (A gateway that cannot do this should
    raise :class:`OutcomeUnknown` from such a void; the router then never fails over after an ambiguous outcome
    there, and the attempt stays pending until the processor answers.)

    Optional attribute (not part of the structural check): ``honours_timeout = True`` declares that every method
    itself returns or raises within ``timeout_s`` (a client with a total timeout); the router then calls it in
    the caller's thread instead of through its pool under a hard deadline, one thread hop less.
    """

    name: str

    def authorize(
        self, idempotency_key: str, amount: int, currency: str, token: str, order_id: str, *, timeout_s: float
    ) -> ProcessorResponse: ...

    def capture(self, idempotency_key: str, amount: int, currency: str, *, timeout_s: float) -> ProcessorResponse: ...

    def void(self, idempotency_key: str, *, timeout_s: float) -> ProcessorResponse: ...

    def status(self, idempotency_key: str, *, timeout_s: float) -> ChargeStatus: ...
