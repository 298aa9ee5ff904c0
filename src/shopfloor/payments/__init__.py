"""Payments: the processor contract every gateway adapter implements, circuit breakers, and the router that fails
over between processors without ever charging twice. Public entry point.

* :mod:`.processor` - :class:`PaymentProcessor` (the adapter contract), its answers and its errors
* :mod:`.breakers` - :class:`CircuitBreaker` and its policy (also used for the carrier-rate service)
* :mod:`.router` - :class:`PaymentRouter`: attempts, failover, suspects, pending results
* :mod:`.metrics` - Prometheus metrics of the processor calls

Adapters live elsewhere: the simulated processors in :mod:`shopfloor.simulators`, and a real gateway wherever it
is written, handed to ``orders.payments_service.build_payments_service(processors=...)`` (see docs/payments.md).
"""

from .breakers import BREAKER_GAUGE_VALUE, BreakerPolicy, BreakerState, CircuitBreaker
from .metrics import PaymentMetrics
from .processor import (
    AttemptKeyCancelled,
    BreakerOpen,
    ChargeStatus,
    ConnectionRefused,
    DefinitelyNotCharged,
    OutcomeUnknown,
    PaymentError,
    PaymentProcessor,
    PaymentRejected,
    PaymentRetryable,
    ProcessorResponse,
    ProcessorTimeout,
    ProcessorUnavailable,
)
from .router import (
    AuthorizationResult,
    AuthOutcome,
    CallRecord,
    PaymentAttempt,
    PaymentRouter,
    RouterPolicy,
    new_attempt_key,
    pending_retry_delay_s,
)

__all__ = [
    "BREAKER_GAUGE_VALUE", "AttemptKeyCancelled", "AuthOutcome", "AuthorizationResult", "BreakerOpen", "BreakerPolicy",
    "BreakerState", "CallRecord", "ChargeStatus", "CircuitBreaker", "ConnectionRefused", "DefinitelyNotCharged",
    "OutcomeUnknown", "PaymentAttempt", "PaymentError", "PaymentMetrics", "PaymentProcessor", "PaymentRejected",
    "PaymentRetryable", "PaymentRouter", "ProcessorResponse", "ProcessorTimeout", "ProcessorUnavailable",
    "RouterPolicy", "new_attempt_key", "pending_retry_delay_s",
]
