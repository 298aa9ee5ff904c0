"""Payment processors behind one protocol, and a router that fails over without ever charging twice.

The safety argument, in short:

* One *attempt key* per payment attempt. The caller stores it with the order before the first processor call and
  passes the same key on every retry. Each processor deduplicates by key, so re-sending it to the same processor
  can never create a second charge.
* The router only moves on to the next processor after an error that **certainly did not charge**
  (:class:`DefinitelyNotCharged`: connection refused, an explicit "not processed" 5xx). After an ambiguous outcome
  (:class:`OutcomeUnknown`: timeout, lost response, anything unexpected) it asks that processor for the key's
  ``status`` before doing anything else. If the status cannot be learnt in the time left, the processor stays a
  *suspect* and the result is ``pending``: nobody else is tried until a later retry has resolved it.
* Declines are definite and are never retried elsewhere.

Breakers (one per processor, sliding time window with a minimum number of calls and a failure percentage, an open
period, then half-open probes) keep a sick processor from eating the checkout budget.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from prometheus_client import CollectorRegistry

from .breakers import BREAKER_GAUGE_VALUE, BreakerPolicy, BreakerState, CircuitBreaker
from .metrics import PaymentMetrics
from .processor import (
    AttemptKeyCancelled,
    BreakerOpen,
    ChargeStatus,
    DefinitelyNotCharged,
    OutcomeUnknown,
    PaymentError,
    PaymentProcessor,
    PaymentRejected,
    PaymentRetryable,
    ProcessorResponse,
    ProcessorTimeout,
)

log = logging.getLogger(__name__)


class AuthOutcome(StrEnum):
    APPROVED = "approved"
    DECLINED = "declined"
    PENDING = "pending"


@dataclass(frozen=True)
class PaymentAttempt:
    """One payment attempt. ``idempotency_key`` is stored with the order before the first call.

    ``suspects``: processors that may hold a charge under this key whose outcome is not yet known. A fresh
    checkout passes ``frozenset()``; a retry passes what the previous result said (see :meth:`for_retry`).
    ``None`` means "we do not know" (e.g. the process died during the inline call): every configured processor is
    then asked for the key's status before anything is charged.
    ``cancelling``: suspects to which a technical cancel was already sent; such a processor can only end as
    cancelled for this attempt, never as the approver (the cancel may still land).
    """

    idempotency_key: str
    order_id: str
    amount: int
    currency: str
    token: str
    suspects: frozenset[str] | None = frozenset()
    cancelling: frozenset[str] = frozenset()

    @classmethod
    def for_retry(
        cls, stored: Mapping[str, Any] | None, *, order_id: str, amount: int, currency: str, token: str,
        idempotency_key: str | None = None,
    ) -> PaymentAttempt:
        """Rebuild the attempt from what was stored with the order (``AuthorizationResult.to_json()``).

        When no result was stored (the process died mid-call), ``suspects`` is ``None``: unknown history.
        """
        stored = stored or {}
        if stored.get("key_exhausted"):
            # Every processor confirmed the old key is cancelled: start a new attempt (persist its key first).
            return cls(new_attempt_key(order_id), order_id, amount, currency, token, frozenset(), frozenset())
        key = idempotency_key or stored.get("attempt_key")
        if not key:
            raise ValueError("a retry needs the stored attempt key")
        if "suspects" not in stored:
            return cls(key, order_id, amount, currency, token, None, frozenset())
        return cls(
            key,
            order_id,
            amount,
            currency,
            token,
            frozenset(stored.get("suspects") or ()),
            frozenset(stored.get("cancelling") or ()),
        )


@dataclass(frozen=True)
class CallRecord:
    processor: str
    operation: str
    outcome: str
    latency_ms: float
    error: str | None = None


@dataclass(slots=True)
class _CallOutcome:
    """What one processor call came to, filled in while it runs (see ``PaymentRouter._recorded``)."""

    started: float
    outcome: str = "approved"
    error: str | None = None

    def returned(self, result: Any) -> Any:
        if isinstance(result, ProcessorResponse) and not result.approved:
            self.outcome = "declined"
        elif isinstance(result, ChargeStatus):
            self.outcome = "found" if result.found else "not_found"
        return result


@dataclass(frozen=True)
class AuthorizationResult:
    """The router's answer. ``pending`` means "accept the order, retry later with the same key, ``suspects`` and
    ``cancelling``" (store :meth:`to_json` and rebuild with :meth:`PaymentAttempt.for_retry`)."""

    outcome: AuthOutcome
    idempotency_key: str
    processor: str | None = None
    reference: str | None = None
    decline_reason: str | None = None
    pending_reason: str | None = None
    suspects: frozenset[str] = frozenset()
    cancelling: frozenset[str] = frozenset()
    #: True when the key is cancelled at every processor: no charge exists anywhere under it, and the next try
    #: must be a new attempt with a new key (``PaymentAttempt.for_retry`` does that).
    key_exhausted: bool = False
    calls: tuple[CallRecord, ...] = ()

    @property
    def approved(self) -> bool:
        return self.outcome is AuthOutcome.APPROVED

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary for the order's ``payment`` column (no card data)."""
        return {
            "outcome": str(self.outcome),
            "attempt_key": self.idempotency_key,
            "processor": self.processor,
            "reference": self.reference,
            "decline_reason": self.decline_reason,
            "pending_reason": self.pending_reason,
            "suspects": sorted(self.suspects),
            "cancelling": sorted(self.cancelling),
            "key_exhausted": self.key_exhausted,
            "calls": [
                {
                    "processor": c.processor,
                    "operation": c.operation,
                    "outcome": c.outcome,
                    "latency_ms": round(c.latency_ms, 1),
                    **({"error": c.error} if c.error else {}),
                }
                for c in self.calls
            ],
        }


@dataclass
class _Run:
    """Mutable state of one ``authorize`` call."""

    attempt: PaymentAttempt
    deadline: float
    before_call: Callable[[str, str, str], None] | None
    suspects: set[str]
    cancelling: set[str]
    calls: list[CallRecord] = field(default_factory=list)
    cancelled_at: set[str] = field(default_factory=set)  # processors where the key is certainly dead


@dataclass(frozen=True, slots=True)
class _Step:
    """One processor call an authorization needs: ``operation`` (authorize, void, status) at ``name`` with ``args``
    (positional, then ``timeout_s``), recorded in ``calls``."""

    name: str
    operation: str
    timeout: float
    calls: list[CallRecord]
    args: tuple

    def sync_fn(self, proc: PaymentProcessor) -> Callable[[], Any]:
        method, args, timeout = getattr(proc, self.operation), self.args, self.timeout
        return lambda: method(*args, timeout_s=timeout)


def new_attempt_key(order_id: str) -> str:
    """A fresh idempotency key for one payment attempt of ``order_id``."""
    return f"pay_{order_id}_{uuid.uuid4().hex[:16]}"


def pending_retry_delay_s(
    retry_no: int, *, base_s: float, max_s: float, rng: random.Random | None = None
) -> float:
    """Exponential backoff with full jitter for retrying a pending payment (``retry_no`` starts at 1)."""
    cap = min(max_s, base_s * (2 ** max(0, retry_no - 1)))
    return (rng or random).uniform(cap / 2, cap)


@dataclass(frozen=True)
class RouterPolicy:
    call_timeout_s: float = 0.8
    status_timeout_s: float = 0.5
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    min_call_s: float = 0.02  # below this much budget a call is not worth starting
    health_snapshot_interval_s: float = 2.0
    threads: int = 32


class PaymentRouter:
    """Routes authorizations over an ordered list of processors with breakers, timeouts and a time budget.

    Thread-safe; one instance per process. The processor order comes from ``order_source`` (a callable, so that
    it can follow a shared runtime setting) and may be changed with :meth:`set_order`.
    """

    def __init__(
        self,
        processors: Mapping[str, PaymentProcessor] | Iterable[PaymentProcessor],
        *,
        policy: RouterPolicy | None = None,
        order_source: Callable[[], Sequence[str]] | None = None,
        order_sink: Callable[[Sequence[str]], None] | None = None,
        registry: CollectorRegistry | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        health_sink: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        if not isinstance(processors, Mapping):
            processors = {p.name: p for p in processors}
        if not processors:
            raise ValueError("a payment router needs at least one processor")
        self._processors: dict[str, PaymentProcessor] = dict(processors)
        self.policy = policy or RouterPolicy()
        self._monotonic = monotonic
        self._metrics = PaymentMetrics.for_registry(registry)
        self._breakers = {
            name: CircuitBreaker(
                name, self.policy.breaker, monotonic=monotonic, on_state_change=self._on_breaker_change
            )
            for name in self._processors
        }
        for name in self._processors:
            self._metrics.breaker_state.labels(processor=name).set(0)
        self._local_order: list[str] = list(self._processors)
        self._order_source = order_source
        self._order_sink = order_sink
        self._executor: cf.ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._counters: dict[str, dict[str, int]] = {n: {} for n in self._processors}
        self._counters_lock = threading.Lock()
        self._health_sink = health_sink
        self._last_snapshot = 0.0
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    # -- configuration ------------------------------------------------------------------------------------------
    @property
    def processor_names(self) -> list[str]:
        return list(self._processors)

    def processor(self, name: str) -> PaymentProcessor:
        return self._processors[name]

    def breaker(self, name: str) -> CircuitBreaker:
        return self._breakers[name]

    def order(self) -> list[str]:
        """The current failover order (unknown names from a shared setting are ignored)."""
        names = list(self._order_source()) if self._order_source is not None else None
        if not names:
            names = self._local_order
        return [n for n in names if n in self._processors]

    def set_order(self, names: Sequence[str]) -> list[str]:
        """Change the failover order. Raises ``ValueError`` naming unknown or repeated processors."""
        names = list(names)
        unknown = [n for n in names if n not in self._processors]
        if unknown:
            raise ValueError(f"unknown processor(s): {', '.join(unknown)}")
        if len(set(names)) != len(names) or not names:
            raise ValueError("processor order must list each processor at most once and not be empty")
        self._local_order = names
        if self._order_sink is not None:
            self._order_sink(names)
        return names

    # -- authorize ----------------------------------------------------------------------------------------------
    # The authorization's decisions are written once, as a generator that yields each processor call it needs
    # (:class:`_Step`) and is sent the answer (or has the call's error thrown in). :meth:`authorize` runs those calls
    # in the calling thread (the worker), :meth:`authorize_async` awaits them on the running event loop (the
    # checkout), so that no thread waits on a remote call per in-flight checkout. Same decisions, same keys.
    def authorize(
        self,
        attempt: PaymentAttempt,
        *,
        budget_s: float,
        before_call: Callable[[str, str, str], None] | None = None,
    ) -> AuthorizationResult:
        """Authorize ``attempt`` within ``budget_s`` seconds; never raises for processor trouble.

        ``before_call(idempotency_key, processor, operation)`` runs before each ``authorize`` and each technical
        cancel (``void``) request: a write-ahead hook for callers that want the contacted processors on disk
        before the request leaves. Call this outside any open database transaction of the caller: processors are
        other systems and may take seconds.
        """
        steps = self._authorize_steps(attempt, budget_s, before_call)
        try:
            step = next(steps)
            while True:
                try:
                    answer = self._call(step.name, step.operation, step.sync_fn(self._processors[step.name]),
                                        step.timeout, step.calls)
                except PaymentError as exc:
                    step = steps.throw(exc)
                else:
                    step = steps.send(answer)
        except StopIteration as done:
            return done.value

    async def authorize_async(
        self,
        attempt: PaymentAttempt,
        *,
        budget_s: float,
        before_call: Callable[[str, str, str], None] | None = None,
    ) -> AuthorizationResult:
        """:meth:`authorize` on the running event loop. A processor with ``<operation>_async`` methods (the HTTP
        adapter) is awaited on the loop; any other one is called in the router's thread pool."""
        steps = self._authorize_steps(attempt, budget_s, before_call)
        try:
            step = next(steps)
            while True:
                try:
                    answer = await self._acall(step)
                except PaymentError as exc:
                    step = steps.throw(exc)
                else:
                    step = steps.send(answer)
        except StopIteration as done:
            return done.value

    def _authorize_steps(self, attempt: PaymentAttempt, budget_s: float,
                         before_call: Callable[[str, str, str], None] | None):
        run = _Run(
            attempt=attempt,
            deadline=self._monotonic() + budget_s,
            before_call=before_call,
            suspects=set(self._processors) if attempt.suspects is None else set(attempt.suspects),
            cancelling=set(attempt.cancelling),
        )
        order = self.order()

        # 1. Resolve earlier ambiguous outcomes first: a processor that may have charged blocks everyone else.
        rank = {n: i for i, n in enumerate(order)}
        for name in sorted(run.suspects, key=lambda n: (rank.get(n, len(rank)), n)):
            if name not in self._processors:
                return self._pending(run, "suspect_unknown")
            resolved = yield from self._resolve_suspect(run, name)
            if resolved is not None:
                return resolved

        # 2. Walk the processors in order, failing over only on certain non-charges.
        skipped_open = 0
        key = attempt.idempotency_key
        for name in order:
            if run.deadline - self._monotonic() < self.policy.min_call_s:
                return self._pending(run, "budget_exhausted")
            breaker = self._breakers[name]
            if not breaker.allow():
                skipped_open += 1
                self._count(name, "authorize", "breaker_open")
                run.calls.append(CallRecord(name, "authorize", "breaker_open", 0.0))
                continue
            if before_call is not None:
                try:
                    before_call(key, name, "authorize")
                except Exception:
                    breaker.release()
                    raise
            timeout = min(self.policy.call_timeout_s, run.deadline - self._monotonic())
            try:
                resp = yield _Step(name, "authorize", timeout, run.calls,
                                   (key, attempt.amount, attempt.currency, attempt.token, attempt.order_id))
            except AttemptKeyCancelled:
                breaker.record_success()
                run.cancelled_at.add(name)
                continue
            except DefinitelyNotCharged:
                breaker.record_failure()
                continue
            except OutcomeUnknown:
                breaker.record_failure()
                run.suspects.add(name)
                resolved = yield from self._resolve_suspect(run, name)
                if resolved is not None:
                    return resolved
                continue
            breaker.record_success()
            outcome = AuthOutcome.APPROVED if resp.approved else AuthOutcome.DECLINED
            return self._final(run, outcome, name, resp.reference, resp.decline_reason)
        if not run.suspects and run.cancelled_at >= set(order):
            return self._pending(run, "attempt_key_exhausted", key_exhausted=True)
        return self._pending(run, "all_breakers_open" if skipped_open == len(order) else "no_processor_available")

    def _resolve_suspect(self, run: _Run, name: str):
        """Settle what ``name`` holds under the key after an ambiguous outcome (a step generator, see
        :meth:`_authorize_steps`).

        Returns a final result when the processor holds a live authorization (approved) or a decline, a pending
        result when that cannot be learnt in the time left, and ``None`` (after removing ``name`` from the
        suspects) when the key certainly holds no live charge there, so moving on is safe. "Not found" alone is
        no proof, as the request may still be in flight at the processor: the key is then cancelled there
        (technical cancel via ``void``) so that a late arrival cannot charge. Once a cancel was sent, the
        processor can only end as cancelled for this attempt, because that cancel may still land.
        """
        key = run.attempt.idempotency_key
        status = yield from self._status_step(name, key, run.deadline, run.calls)
        if status is None:
            return self._pending(run, self._why_unknown(run))
        if status.found and status.declined:
            return self._final(run, AuthOutcome.DECLINED, name, status.reference, status.decline_reason or "declined")
        if status.found and status.voided:
            self._cleared(run, name)
            return None
        live = status.found and status.authorized
        if live and name not in run.cancelling:
            return self._final(run, AuthOutcome.APPROVED, name, status.reference)
        if live and status.captured:  # money moved there: that is the payment, whatever we sent before
            return self._final(run, AuthOutcome.APPROVED, name, status.reference)
        # Not found (or live but already being cancelled): cancel the key there before moving on.
        remaining = run.deadline - self._monotonic()
        if remaining < self.policy.min_call_s:
            return self._pending(run, "budget_exhausted")
        if run.before_call is not None:
            run.before_call(key, name, "void")
        run.cancelling.add(name)
        timeout = min(self.policy.status_timeout_s, remaining)
        try:
            resp = yield _Step(name, "void", timeout, run.calls, (key,))
        except PaymentError:
            self._breakers[name].record_failure()
            return self._pending(run, self._why_unknown(run))
        self._breakers[name].record_success()
        if resp.approved:
            self._cleared(run, name)
            return None
        # The cancel was refused because the charge was captured in the meantime: that is the payment.
        status = yield from self._status_step(name, key, run.deadline, run.calls)
        if status is not None and status.found and status.authorized and status.captured:
            return self._final(run, AuthOutcome.APPROVED, name, status.reference)
        return self._pending(run, self._why_unknown(run))

    def _why_unknown(self, run: _Run) -> str:
        return "budget_exhausted" if run.deadline - self._monotonic() < self.policy.min_call_s else "status_unknown"

    @staticmethod
    def _cleared(run: _Run, name: str) -> None:
        run.suspects.discard(name)
        run.cancelling.discard(name)
        run.cancelled_at.add(name)

    def _final(
        self,
        run: _Run,
        outcome: AuthOutcome,
        processor: str,
        reference: str | None,
        decline_reason: str | None = None,
    ) -> AuthorizationResult:
        return AuthorizationResult(
            outcome=outcome,
            idempotency_key=run.attempt.idempotency_key,
            processor=processor,
            reference=reference,
            decline_reason=None if outcome is AuthOutcome.APPROVED else decline_reason,
            calls=tuple(run.calls),
        )

    def _pending(self, run: _Run, reason: str, *, key_exhausted: bool = False) -> AuthorizationResult:
        return AuthorizationResult(
            outcome=AuthOutcome.PENDING,
            idempotency_key=run.attempt.idempotency_key,
            pending_reason=reason,
            key_exhausted=key_exhausted,
            suspects=frozenset(run.suspects),
            cancelling=frozenset(run.cancelling & run.suspects),
            calls=tuple(run.calls),
        )

    def _status_step(self, name: str, key: str, deadline: float, calls: list[CallRecord]):
        """Ask ``name`` about ``key`` (a step generator); ``None`` when it cannot tell us in the time left."""
        remaining = deadline - self._monotonic()
        if remaining < self.policy.min_call_s:
            calls.append(CallRecord(name, "status", "skipped_no_budget", 0.0))
            return None
        timeout = min(self.policy.status_timeout_s, remaining)
        breaker = self._breakers[name]
        try:
            status = yield _Step(name, "status", timeout, calls, (key,))
        except PaymentError:
            breaker.record_failure()
            return None
        breaker.record_success()
        return status

    # -- capture / void (worker side) ----------------------------------------------------------------------------
    def capture(
        self, processor: str, idempotency_key: str, amount: int, currency: str, *, timeout_s: float | None = None
    ) -> ProcessorResponse:
        """Capture at the processor that authorized. Idempotent by key; raises :class:`PaymentRetryable` when the
        outcome is not known or the processor is unavailable, :class:`PaymentRejected` on a definite refusal."""
        return self._settle(
            processor,
            "capture",
            lambda p, t: p.capture(idempotency_key, amount, currency, timeout_s=t),
            timeout_s,
        )

    def void(self, processor: str, idempotency_key: str, *, timeout_s: float | None = None) -> ProcessorResponse:
        """Release an authorization (e.g. an order cancelled before capture). Same error contract as capture."""
        return self._settle(processor, "void", lambda p, t: p.void(idempotency_key, timeout_s=t), timeout_s)

    def status(self, processor: str, idempotency_key: str, *, timeout_s: float | None = None) -> ChargeStatus:
        """Look a key up at one processor (raises :class:`PaymentRetryable` when it cannot answer)."""
        timeout = timeout_s or self.policy.status_timeout_s
        proc = self._proc_or_fail(processor)
        try:
            return self._call(processor, "status", lambda: proc.status(idempotency_key, timeout_s=timeout), timeout, [])
        except PaymentError as exc:
            raise PaymentRetryable(processor, "status", exc) from exc

    def _settle(
        self,
        processor: str,
        operation: str,
        fn: Callable[[PaymentProcessor, float], ProcessorResponse],
        timeout_s: float | None,
    ) -> ProcessorResponse:
        proc = self._proc_or_fail(processor)
        breaker = self._breakers[processor]
        if not breaker.allow():
            self._count(processor, operation, "breaker_open")
            raise PaymentRetryable(processor, operation, BreakerOpen(processor, "breaker open"))
        timeout = timeout_s or self.policy.call_timeout_s
        try:
            resp = self._call(processor, operation, lambda: fn(proc, timeout), timeout, [])
        except PaymentError as exc:
            breaker.record_failure()
            raise PaymentRetryable(processor, operation, exc) from exc
        breaker.record_success()
        if not resp.approved:
            raise PaymentRejected(processor, operation, resp.decline_reason)
        return resp

    def _proc_or_fail(self, processor: str) -> PaymentProcessor:
        try:
            return self._processors[processor]
        except KeyError:
            raise ValueError(f"unknown processor: {processor}") from None

    # -- calls, metrics, health ---------------------------------------------------------------------------------
    def _pool(self) -> cf.ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = cf.ThreadPoolExecutor(
                    max_workers=self.policy.threads, thread_name_prefix="payments"
                )
            return self._executor

    def _call(self, name: str, operation: str, fn: Callable[[], Any], timeout: float, calls: list[CallRecord]):
        """Run one processor call with a hard timeout, recording metrics and the call trail."""
        # An adapter that enforces ``timeout_s`` itself (``honours_timeout = True``: an HTTP client with a total
        # timeout, the simulators) runs in the calling thread; any other one runs in the pool under a hard deadline.
        inline = getattr(self._processors.get(name), "honours_timeout", False) is True
        future = None if inline else self._pool().submit(fn)
        with self._recorded(name, operation, calls) as record:
            try:
                result = fn() if future is None else future.result(timeout=max(timeout, 0.0))
            except cf.TimeoutError:
                future.cancel()
                raise ProcessorTimeout(name, f"no answer within {timeout:.3f}s") from None
            except (DefinitelyNotCharged, OutcomeUnknown):
                raise
            except Exception as exc:  # an adapter bug or transport error we cannot classify: assume unknown
                raise OutcomeUnknown(name, f"unexpected {type(exc).__name__}: {exc}") from exc
            return record.returned(result)

    @contextmanager
    def _recorded(self, name: str, operation: str, calls: list[CallRecord]):
        """Around one processor call, blocking or awaited: counts the attempt, and on the way out records its
        outcome (approved, declined, found/not_found, not_charged, unknown), latency and trail entry."""
        self._metrics.child("attempts", name, operation).inc()
        record = _CallOutcome(self._monotonic())
        try:
            yield record
        except DefinitelyNotCharged as exc:
            record.outcome, record.error = "not_charged", exc.message
            raise
        except OutcomeUnknown as exc:
            record.outcome, record.error = "unknown", exc.message
            raise
        finally:
            elapsed = self._monotonic() - record.started
            self._metrics.child("latency", name, operation).observe(elapsed)
            self._metrics.child("outcomes", name, operation, record.outcome).inc()
            calls.append(CallRecord(name, operation, record.outcome, elapsed * 1000.0, record.error))
            self._count(name, operation, record.outcome)

    async def _acall(self, step: _Step) -> Any:
        """:meth:`_call` on the running event loop: the processor's ``<operation>_async`` method when it has one
        (and honours its timeout), else its blocking method in the pool under a hard deadline."""
        name, operation, timeout = step.name, step.operation, step.timeout
        proc = self._processors[name]
        native = getattr(proc, operation + "_async", None)
        if getattr(proc, "honours_timeout", False) is not True:
            native = None
        with self._recorded(name, operation, step.calls) as record:
            try:
                if native is not None:
                    result = await native(*step.args, timeout_s=timeout)
                else:
                    fn = step.sync_fn(proc)
                    result = await asyncio.wait_for(
                        asyncio.wrap_future(self._pool().submit(fn)), timeout=max(timeout, 0.0))
            except (asyncio.TimeoutError, TimeoutError):
                raise ProcessorTimeout(name, f"no answer within {timeout:.3f}s") from None
            except (DefinitelyNotCharged, OutcomeUnknown):
                raise
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # an adapter bug or transport error we cannot classify: assume unknown
                raise OutcomeUnknown(name, f"unexpected {type(exc).__name__}: {exc}") from exc
            return record.returned(result)

    def _count(self, name: str, operation: str, outcome: str) -> None:
        with self._counters_lock:
            c = self._counters.setdefault(name, {})
            c[f"{operation}:{outcome}"] = c.get(f"{operation}:{outcome}", 0) + 1
        if outcome == "breaker_open":
            self._metrics.child("outcomes", name, operation, outcome).inc()
        self._maybe_snapshot()

    def _on_breaker_change(self, name: str, state: BreakerState) -> None:
        self._metrics.breaker_state.labels(processor=name).set(BREAKER_GAUGE_VALUE[state])

    def health(self) -> list[dict[str, Any]]:
        """Breaker state, window and cumulative counters per processor, as this process sees them."""
        out = []
        order = self.order()
        for name in self._processors:
            breaker = self._breakers[name]
            calls, failures = breaker.window()
            with self._counters_lock:
                counters = dict(self._counters.get(name, {}))
            out.append(
                {
                    "processor": name,
                    "position": order.index(name) if name in order else None,
                    "breaker_state": str(breaker.state),
                    "window_calls": calls,
                    "window_failures": failures,
                    "window_failure_pct": round(100.0 * failures / calls, 1) if calls else 0.0,
                    "counters": counters,
                }
            )
        return out

    def _maybe_snapshot(self, force: bool = False) -> None:
        if self._health_sink is None:
            return
        now = self._monotonic()
        if not force and now - self._last_snapshot < self.policy.health_snapshot_interval_s:
            return
        self._last_snapshot = now
        snapshot = self.health()
        try:
            on_loop = not force and asyncio.get_running_loop() is not None
        except RuntimeError:  # a worker or CLI thread
            on_loop = False
        if on_loop:  # an async authorization on the server's event loop: a database write must not block it
            self._pool().submit(self._write_snapshot, snapshot)
        else:
            self._write_snapshot(snapshot)

    def _write_snapshot(self, snapshot: list[dict[str, Any]]) -> None:
        try:
            self._health_sink(snapshot)
        except Exception:  # health reporting must never break a payment
            log.warning("could not persist payment health snapshot", exc_info=True)

    def flush_health(self) -> None:
        if any(self._counters.values()):  # a process that called no processor (a CLI command) has nothing to list
            self._maybe_snapshot(force=True)

    def close(self) -> None:
        with self._executor_lock:
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None
