"""Breaker state machine and router decisions, with scripted in-memory processors (no I/O)."""

from __future__ import annotations

import threading
import time

import pytest
from prometheus_client import CollectorRegistry

from shopfloor.payments import (
    AttemptKeyCancelled,
    AuthOutcome,
    BreakerPolicy,
    BreakerState,
    ChargeStatus,
    CircuitBreaker,
    ConnectionRefused,
    PaymentAttempt,
    PaymentMetrics,
    PaymentProcessor,
    PaymentRejected,
    PaymentRetryable,
    PaymentRouter,
    ProcessorResponse,
    ProcessorTimeout,
    ProcessorUnavailable,
    RouterPolicy,
    pending_retry_delay_s,
)


class FakeTime:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


class ScriptedProcessor:
    """Answers according to a script of actions; keeps an idempotent in-memory ledger like a real gateway."""

    def __init__(self, name: str, script: list[str] | None = None, status_script: list[str] | None = None):
        self.name = name
        self.script = list(script or [])
        self.status_script = list(status_script or [])
        self.void_script: list[str] = []
        self.default = "approve"
        self.ledger: dict[str, dict] = {}
        self.calls: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def _next(self, script: list[str]) -> str:
        with self.lock:
            return script.pop(0) if script else self.default

    def authorize(self, idempotency_key, amount, currency, token, order_id, *, timeout_s):
        self.calls.append(("authorize", idempotency_key))
        action = self._next(self.script)
        if action == "refuse":
            raise ConnectionRefused(self.name, "refused")
        if action == "5xx":
            raise ProcessorUnavailable(self.name, "503")
        if action == "timeout":
            raise ProcessorTimeout(self.name, "timeout")
        if action == "sleep":
            time.sleep(timeout_s + 0.2)
            raise ProcessorTimeout(self.name, "timeout")
        if action == "boom":
            raise RuntimeError("adapter bug")
        if self.ledger.get(idempotency_key, {}).get("voided"):
            raise AttemptKeyCancelled(self.name, "cancelled key")
        with self.lock:
            entry = self.ledger.setdefault(
                idempotency_key, {"authorized": action != "decline", "declined": action == "decline"}
            )
        if action == "lost":
            raise ProcessorTimeout(self.name, "response lost")
        return ProcessorResponse(entry["authorized"], f"ref-{idempotency_key}", None if entry["authorized"] else "card_declined")

    def capture(self, idempotency_key, amount, currency, *, timeout_s):
        self.calls.append(("capture", idempotency_key))
        action = self._next(self.script)
        if action == "timeout":
            raise ProcessorTimeout(self.name, "timeout")
        entry = self.ledger.get(idempotency_key)
        if entry is None or not entry["authorized"]:
            return ProcessorResponse(False, None, "unknown_authorization")
        entry["captured"] = True
        return ProcessorResponse(True, f"ref-{idempotency_key}")

    def void(self, idempotency_key, *, timeout_s):
        self.calls.append(("void", idempotency_key))
        if self._next(self.void_script) == "timeout":
            raise ProcessorTimeout(self.name, "void timeout")
        entry = self.ledger.setdefault(idempotency_key, {"authorized": False, "declined": False})
        if entry.get("captured"):
            return ProcessorResponse(False, None, "already_captured")
        entry["voided"] = True
        return ProcessorResponse(True, None)

    def status(self, idempotency_key, *, timeout_s):
        self.calls.append(("status", idempotency_key))
        action = self._next(self.status_script)
        if action == "timeout":
            raise ProcessorTimeout(self.name, "status timeout")
        if action == "refuse":
            raise ConnectionRefused(self.name, "refused")
        entry = self.ledger.get(idempotency_key)
        if entry is None:
            return ChargeStatus(self.name, idempotency_key, found=False)
        return ChargeStatus(
            self.name, idempotency_key, found=True, authorized=entry["authorized"], declined=entry["declined"],
            voided=entry.get("voided", False), reference=f"ref-{idempotency_key}",
        )

    def authorize_calls(self) -> int:
        return sum(1 for op, _ in self.calls if op == "authorize")


def attempt(key="k1", suspects=frozenset()):
    return PaymentAttempt(key, "o1", 1000, "USD", "tok_visa_4242", suspects)


def make_router(*procs, policy=None, registry=None, monotonic=time.monotonic):
    return PaymentRouter(
        list(procs), policy=policy or RouterPolicy(call_timeout_s=0.5, status_timeout_s=0.5),
        registry=registry or CollectorRegistry(), monotonic=monotonic,
    )


# ---- breaker -------------------------------------------------------------------------------------------------

POLICY = BreakerPolicy(window_s=10, min_calls=4, failure_pct=50, open_s=5, half_open_probes=2)


def test_breaker_opens_when_the_window_failure_percentage_reaches_the_threshold():
    t = FakeTime()
    b = CircuitBreaker("p", POLICY, monotonic=t)
    for ok in (True, False, True):
        b.record_success() if ok else b.record_failure()
    assert b.state is BreakerState.CLOSED  # 3 calls < min_calls
    b.record_failure()  # 4 calls, 50 % failed
    assert b.state is BreakerState.OPEN
    assert not b.allow()


def test_breaker_stays_closed_below_the_failure_percentage():
    b = CircuitBreaker("p", POLICY, monotonic=FakeTime())
    for _ in range(7):
        b.record_success()
    for _ in range(3):
        b.record_failure()
    assert b.state is BreakerState.CLOSED and b.window() == (10, 3)


def test_breaker_forgets_failures_older_than_the_window():
    t = FakeTime()
    b = CircuitBreaker("p", POLICY, monotonic=t)
    for _ in range(3):
        b.record_failure()
    t.advance(11)
    b.record_failure()
    assert b.window() == (1, 1) and b.state is BreakerState.CLOSED


def test_breaker_half_opens_after_the_open_period_and_closes_after_successful_probes():
    t = FakeTime()
    b = CircuitBreaker("p", POLICY, monotonic=t)
    for _ in range(4):
        b.record_failure()
    t.advance(4.9)
    assert b.state is BreakerState.OPEN and not b.allow()
    t.advance(0.2)
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow() and b.allow()
    assert not b.allow()  # only two probes at a time
    b.record_success()
    assert b.state is BreakerState.HALF_OPEN
    b.record_success()
    assert b.state is BreakerState.CLOSED and b.window() == (0, 0)


def test_breaker_failed_probe_reopens_it_for_another_open_period():
    t = FakeTime()
    b = CircuitBreaker("p", POLICY, monotonic=t)
    for _ in range(4):
        b.record_failure()
    t.advance(5)
    assert b.allow()
    b.record_failure()
    assert b.state is BreakerState.OPEN
    t.advance(4)
    assert not b.allow()


def test_breaker_released_probe_can_be_taken_again():
    t = FakeTime()
    b = CircuitBreaker("p", POLICY, monotonic=t)
    for _ in range(4):
        b.record_failure()
    t.advance(5)
    assert b.allow() and b.allow() and not b.allow()
    b.release()
    assert b.allow()


# ---- router ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("error", ["refuse", "5xx"])
def test_router_fails_over_on_errors_that_certainly_did_not_charge(error):
    primary, secondary = ScriptedProcessor("primary", [error]), ScriptedProcessor("secondary")
    result = make_router(primary, secondary).authorize(attempt(), budget_s=2)
    assert result.outcome is AuthOutcome.APPROVED and result.processor == "secondary"
    assert [c.outcome for c in result.calls] == ["not_charged", "approved"]
    assert result.suspects == frozenset()


def test_router_never_fails_over_on_a_decline():
    primary, secondary = ScriptedProcessor("primary", ["decline"]), ScriptedProcessor("secondary")
    result = make_router(primary, secondary).authorize(attempt(), budget_s=2)
    assert result.outcome is AuthOutcome.DECLINED and result.decline_reason == "card_declined"
    assert secondary.calls == []


def test_after_a_lost_response_the_router_asks_status_and_finds_the_charge_without_charging_again():
    primary, secondary = ScriptedProcessor("primary", ["lost"]), ScriptedProcessor("secondary")
    result = make_router(primary, secondary).authorize(attempt(), budget_s=2)
    assert result.outcome is AuthOutcome.APPROVED and result.processor == "primary"
    assert [op for op, _ in primary.calls] == ["authorize", "status"]
    assert secondary.calls == [] and len(primary.ledger) == 1


def test_after_a_timeout_that_did_not_charge_the_router_cancels_the_key_there_and_fails_over():
    primary, secondary = ScriptedProcessor("primary", ["timeout"]), ScriptedProcessor("secondary")
    result = make_router(primary, secondary).authorize(attempt(), budget_s=2)
    assert result.outcome is AuthOutcome.APPROVED and result.processor == "secondary"
    assert [op for op, _ in primary.calls] == ["authorize", "status", "void"]
    with pytest.raises(AttemptKeyCancelled):  # a late arrival of the first request cannot charge any more
        primary.authorize("k1", 1000, "USD", "tok", "o1", timeout_s=1)


def test_when_the_technical_cancel_fails_the_attempt_stays_pending_on_that_processor():
    primary, secondary = ScriptedProcessor("primary", ["timeout"]), ScriptedProcessor("secondary")
    primary.void_script = ["timeout"]
    result = make_router(primary, secondary).authorize(attempt(), budget_s=2)
    assert result.outcome is AuthOutcome.PENDING and result.suspects == frozenset({"primary"})
    assert secondary.calls == []


def test_a_cancelled_key_is_skipped_without_tripping_the_breaker():
    primary, secondary = ScriptedProcessor("primary"), ScriptedProcessor("secondary")
    primary.ledger["k1"] = {"authorized": False, "declined": False, "voided": True}
    router = make_router(primary, secondary)
    result = router.authorize(attempt(), budget_s=2)
    assert result.processor == "secondary" and router.breaker("primary").window() == (1, 0)


def test_when_status_cannot_be_learnt_the_result_is_pending_and_nobody_else_is_tried():
    primary = ScriptedProcessor("primary", ["lost"], status_script=["timeout"])
    secondary = ScriptedProcessor("secondary")
    result = make_router(primary, secondary).authorize(attempt(), budget_s=2)
    assert result.outcome is AuthOutcome.PENDING and result.pending_reason == "status_unknown"
    assert result.suspects == frozenset({"primary"})
    assert secondary.calls == []


def test_a_retry_resolves_the_suspect_first_even_if_the_order_changed():
    primary = ScriptedProcessor("primary", ["lost"], status_script=["timeout"])
    secondary = ScriptedProcessor("secondary")
    router = make_router(primary, secondary)
    first = router.authorize(attempt(), budget_s=2)
    router.set_order(["secondary", "primary"])
    retry = router.authorize(attempt(suspects=first.suspects), budget_s=2)
    assert retry.outcome is AuthOutcome.APPROVED and retry.processor == "primary"
    assert secondary.calls == []
    assert primary.authorize_calls() == 1


def test_a_retry_whose_suspect_never_charged_moves_on_with_the_same_key():
    primary = ScriptedProcessor("primary", ["timeout"], status_script=["timeout"])
    secondary = ScriptedProcessor("secondary")
    router = make_router(primary, secondary)
    first = router.authorize(attempt(), budget_s=2)
    assert first.outcome is AuthOutcome.PENDING
    primary.script = ["refuse"]
    retry = router.authorize(attempt(suspects=first.suspects), budget_s=2)
    assert retry.outcome is AuthOutcome.APPROVED and retry.processor == "secondary"
    assert secondary.calls == [("authorize", "k1")]
    assert [op for op, _ in primary.calls] == ["authorize", "status", "status", "void", "authorize"]


def test_unknown_history_asks_every_processor_for_the_key_before_charging():
    primary, secondary = ScriptedProcessor("primary"), ScriptedProcessor("secondary")
    secondary.ledger["k1"] = {"authorized": True, "declined": False}  # charged before a crash
    result = make_router(primary, secondary).authorize(attempt(suspects=None), budget_s=2)
    assert result.outcome is AuthOutcome.APPROVED and result.processor == "secondary"
    assert primary.authorize_calls() == 0 and secondary.authorize_calls() == 0


def test_unknown_history_with_an_unreachable_processor_stays_pending():
    primary = ScriptedProcessor("primary", status_script=["refuse"])
    secondary = ScriptedProcessor("secondary")
    result = make_router(primary, secondary).authorize(attempt(suspects=None), budget_s=2)
    assert result.outcome is AuthOutcome.PENDING and "primary" in result.suspects
    assert primary.authorize_calls() == 0 and secondary.authorize_calls() == 0


def test_an_exhausted_budget_returns_pending_within_the_budget():
    primary = ScriptedProcessor("primary", ["sleep"])
    primary.status_script = ["timeout"]
    secondary = ScriptedProcessor("secondary")
    router = make_router(primary, secondary, policy=RouterPolicy(call_timeout_s=1.0, status_timeout_s=1.0))
    started = time.monotonic()
    result = router.authorize(attempt(), budget_s=0.15)
    elapsed = time.monotonic() - started
    assert result.outcome is AuthOutcome.PENDING
    assert result.pending_reason == "budget_exhausted" and result.suspects == frozenset({"primary"})
    assert elapsed < 0.8  # a stuck call would take 1.2 s; the margin is for a loaded CI box
    assert secondary.calls == []
    router.close()


def test_an_open_breaker_skips_its_processor():
    t = FakeTime()
    primary, secondary = ScriptedProcessor("primary"), ScriptedProcessor("secondary")
    policy = RouterPolicy(breaker=BreakerPolicy(min_calls=2, failure_pct=50, open_s=5))
    router = make_router(primary, secondary, policy=policy, monotonic=t)
    primary.script = ["refuse", "refuse"]
    router.authorize(attempt("a"), budget_s=2)
    router.authorize(attempt("b"), budget_s=2)
    assert router.breaker("primary").state is BreakerState.OPEN
    before = primary.authorize_calls()
    result = router.authorize(attempt("c"), budget_s=2)
    assert result.processor == "secondary" and primary.authorize_calls() == before
    assert result.calls[0].outcome == "breaker_open"


def test_all_breakers_open_returns_pending_at_once():
    t = FakeTime()
    p, s = ScriptedProcessor("primary", ["refuse"] * 4), ScriptedProcessor("secondary", ["refuse"] * 4)
    router = make_router(p, s, policy=RouterPolicy(breaker=BreakerPolicy(min_calls=2)), monotonic=t)
    for key in ("a", "b"):
        router.authorize(attempt(key), budget_s=2)
    result = router.authorize(attempt("c"), budget_s=2)
    assert result.outcome is AuthOutcome.PENDING and result.pending_reason == "all_breakers_open"


def test_an_unexpected_adapter_exception_counts_as_an_unknown_outcome():
    primary, secondary = ScriptedProcessor("primary", ["boom"]), ScriptedProcessor("secondary")
    result = make_router(primary, secondary).authorize(attempt(), budget_s=2)
    assert [c.operation for c in result.calls] == ["authorize", "status", "void", "authorize"]
    assert result.calls[0].outcome == "unknown"
    assert result.processor == "secondary"  # never seen, and cancelled there, so failover was safe


def test_the_write_ahead_hook_runs_before_each_processor_call():
    seen = []
    primary, secondary = ScriptedProcessor("primary", ["refuse"]), ScriptedProcessor("secondary")
    make_router(primary, secondary).authorize(
        attempt(), budget_s=2, before_call=lambda k, p, op: seen.append((k, p, op))
    )
    assert seen == [("k1", "primary", "authorize"), ("k1", "secondary", "authorize")]


def test_the_write_ahead_hook_also_announces_technical_cancels():
    seen = []
    primary, secondary = ScriptedProcessor("primary", ["timeout"]), ScriptedProcessor("secondary")
    make_router(primary, secondary).authorize(
        attempt(), budget_s=2, before_call=lambda k, p, op: seen.append((p, op))
    )
    assert seen == [("primary", "authorize"), ("primary", "void"), ("secondary", "authorize")]


def test_after_a_cancel_was_sent_the_processor_can_only_end_cancelled_even_if_the_charge_lands_later():
    primary, secondary = ScriptedProcessor("primary", ["timeout"]), ScriptedProcessor("secondary")
    primary.void_script = ["timeout"]
    router = make_router(primary, secondary)
    first = router.authorize(attempt(), budget_s=2)
    assert first.outcome is AuthOutcome.PENDING and first.cancelling == frozenset({"primary"})
    primary.ledger["k1"] = {"authorized": True, "declined": False}  # the lost request is processed late
    retry = router.authorize(
        PaymentAttempt.for_retry(first.to_json(), order_id="o1", amount=1000, currency="USD", token="tok"),
        budget_s=2,
    )
    assert retry.outcome is AuthOutcome.APPROVED and retry.processor == "secondary"
    assert primary.ledger["k1"]["voided"] is True


def test_for_retry_rebuilds_the_attempt_from_the_stored_result_or_assumes_unknown_history():
    stored = {"attempt_key": "k9", "suspects": ["primary"], "cancelling": ["primary"]}
    a = PaymentAttempt.for_retry(stored, order_id="o", amount=1, currency="USD", token="t")
    assert a.idempotency_key == "k9" and a.suspects == {"primary"} and a.cancelling == {"primary"}
    crashed = PaymentAttempt.for_retry({"attempt_key": "k9"}, order_id="o", amount=1, currency="USD", token="t")
    assert crashed.suspects is None
    with pytest.raises(ValueError):
        PaymentAttempt.for_retry({}, order_id="o", amount=1, currency="USD", token="t")


def test_processor_order_rejects_unknown_and_repeated_names():
    router = make_router(ScriptedProcessor("primary"), ScriptedProcessor("secondary"))
    with pytest.raises(ValueError, match="tertiary"):
        router.set_order(["tertiary"])
    with pytest.raises(ValueError):
        router.set_order(["primary", "primary"])
    assert router.set_order(["secondary"]) == ["secondary"]
    assert router.order() == ["secondary"]


def test_capture_is_retryable_on_timeout_and_rejected_on_a_definite_refusal():
    primary = ScriptedProcessor("primary")
    router = make_router(primary)
    assert router.authorize(attempt(), budget_s=2).approved
    primary.script = ["timeout"]
    with pytest.raises(PaymentRetryable):
        router.capture("primary", "k1", 1000, "USD")
    assert router.capture("primary", "k1", 1000, "USD").approved
    with pytest.raises(PaymentRejected):
        router.capture("primary", "unknown-key", 1000, "USD")


def test_metrics_count_attempts_outcomes_and_breaker_state_per_processor():
    registry = CollectorRegistry()
    primary, secondary = ScriptedProcessor("primary", ["refuse"]), ScriptedProcessor("secondary")
    make_router(primary, secondary, registry=registry).authorize(attempt(), budget_s=2)
    get = registry.get_sample_value
    assert get("shopfloor_payment_attempts_total", {"processor": "primary", "operation": "authorize"}) == 1
    assert get(
        "shopfloor_payment_outcomes_total",
        {"processor": "primary", "operation": "authorize", "outcome": "not_charged"},
    ) == 1
    assert get("shopfloor_payment_latency_seconds_count", {"processor": "secondary", "operation": "authorize"}) == 1
    assert get("shopfloor_payment_breaker_state", {"processor": "primary"}) == 0


def test_building_many_routers_on_one_registry_reuses_the_metrics():
    registry = CollectorRegistry()
    make_router(ScriptedProcessor("primary"), registry=registry)
    make_router(ScriptedProcessor("primary"), registry=registry)
    assert PaymentMetrics.for_registry(registry) is PaymentMetrics.for_registry(registry)


def test_scripted_processor_satisfies_the_protocol():
    assert isinstance(ScriptedProcessor("x"), PaymentProcessor)


def test_pending_retry_delay_grows_exponentially_and_is_capped():
    import random

    rng = random.Random(1)
    delays = [pending_retry_delay_s(n, base_s=1, max_s=30, rng=rng) for n in range(1, 10)]
    assert 0.5 <= delays[0] <= 1 and 4 <= delays[3] <= 8
    assert all(d <= 30 for d in delays) and delays[-1] >= 15


def test_a_key_cancelled_everywhere_asks_for_a_new_attempt_and_for_retry_makes_one():
    primary, secondary = ScriptedProcessor("primary"), ScriptedProcessor("secondary")
    for proc in (primary, secondary):
        proc.ledger["k1"] = {"authorized": False, "declined": False, "voided": True}
    router = make_router(primary, secondary)
    result = router.authorize(attempt(), budget_s=2)
    assert result.outcome is AuthOutcome.PENDING and result.key_exhausted
    assert result.pending_reason == "attempt_key_exhausted"
    fresh = PaymentAttempt.for_retry(result.to_json(), order_id="o1", amount=1000, currency="USD", token="t")
    assert fresh.idempotency_key != "k1" and fresh.suspects == frozenset()
    assert router.authorize(fresh, budget_s=2).approved


def test_an_adapter_that_enforces_its_own_timeout_runs_in_the_callers_thread():
    seen: list[int] = []

    class Recording(ScriptedProcessor):
        def authorize(self, *a, **kw):
            seen.append(threading.get_ident())
            return super().authorize(*a, **kw)

    pooled, inline = Recording("p"), Recording("q")
    inline.honours_timeout = True
    assert make_router(pooled).authorize(attempt("k-pool"), budget_s=1.0).approved
    assert make_router(inline).authorize(attempt("k-inline"), budget_s=1.0).approved
    assert seen[0] != threading.get_ident()  # unknown adapters run in the pool under a hard deadline
    assert seen[1] == threading.get_ident()



def test_a_run_of_failures_opens_the_breaker_even_when_the_window_is_full_of_successes():
    now = [0.0]
    policy = BreakerPolicy(window_s=10, min_calls=4, failure_pct=50, open_s=5, half_open_probes=1,
                           consecutive_failures=3)
    br = CircuitBreaker("rates", policy, monotonic=lambda: now[0])
    for _ in range(100):
        br.record_success()
    br.record_failure()
    br.record_failure()
    br.record_success()  # a success breaks the run
    br.record_failure()
    br.record_failure()
    assert br.state is BreakerState.CLOSED  # 4 of 104 failed: the percentage alone would never open it
    br.record_failure()
    assert br.state is BreakerState.OPEN and not br.allow()
    plain = CircuitBreaker("p", BreakerPolicy(window_s=10, min_calls=4, failure_pct=50), monotonic=lambda: now[0])
    for _ in range(100):
        plain.record_success()
    for _ in range(10):
        plain.record_failure()
    assert plain.state is BreakerState.CLOSED  # off by default: processors keep the windowed rule only
