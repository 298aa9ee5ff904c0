"""The simulated gateway against real SQLite and PostgreSQL: idempotent ledger, faults, sharing across instances."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest
from prometheus_client import CollectorRegistry

from shopfloor.config import Settings
from shopfloor.domain.clock import SystemClock
from shopfloor.orders.payments_service import build_payments_service
from shopfloor.payments import (
    AuthOutcome,
    ConnectionRefused,
    PaymentAttempt,
    PaymentRetryable,
    ProcessorTimeout,
    ProcessorUnavailable,
)
from shopfloor.simulators import FaultPatch, FaultStore, SimulatedProcessor, ledger
from shopfloor.store.engine import make_engine

CLOCK = SystemClock()


@pytest.fixture
def engine(db_url):
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def gateway(engine, name="primary", seed=1, ttl_s=0.0, **faults):
    store = FaultStore(engine, CLOCK, ttl_s=ttl_s)
    store.put(name, {"latency_ms": 0, **faults})
    return SimulatedProcessor(name, engine, store, CLOCK, seed=seed)


def charges(engine, name="primary"):
    return [r for r in ledger(engine, name) if r["authorized"]]


def test_same_key_never_charges_twice_even_from_two_threads(engine):
    gw = gateway(engine)
    results, barrier = [], threading.Barrier(2)

    def go():
        barrier.wait()
        results.append(gw.authorize("key-1", 500, "USD", "tok_4242", "o1", timeout_s=5))

    threads = [threading.Thread(target=go) for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(results) == 2 and all(r.approved for r in results)
    assert results[0].reference == results[1].reference
    assert gw.authorize("key-1", 500, "USD", "tok_4242", "o1", timeout_s=5).reference == results[0].reference
    assert len(ledger(engine, "primary")) == 1


def test_ledger_is_shared_by_two_gateway_instances_on_one_database(db_url):
    e1, e2 = make_engine(db_url), make_engine(db_url)
    try:
        a, b = gateway(e1, seed=1), gateway(e2, seed=2)
        first = a.authorize("shared", 700, "EUR", "tok", "o2", timeout_s=5)
        second = b.authorize("shared", 700, "EUR", "tok", "o2", timeout_s=5)
        assert first.reference == second.reference
        assert b.status("shared", timeout_s=5).authorized
        assert b.capture("shared", 700, "EUR", timeout_s=5).approved
        assert ledger(e1, "primary") == ledger(e2, "primary")
        assert ledger(e1, "primary")[0]["captured"] is True
    finally:
        e1.dispose()
        e2.dispose()


def test_down_processor_refuses_at_once_and_records_nothing(engine):
    gw = gateway(engine, down=True)
    with pytest.raises(ConnectionRefused):
        gw.authorize("k", 1, "USD", "t", "o", timeout_s=5)
    assert ledger(engine, "primary") == []


def test_error_rate_raises_a_not_processed_5xx_and_records_nothing(engine):
    gw = gateway(engine, error_rate=1.0)
    with pytest.raises(ProcessorUnavailable):
        gw.authorize("k", 1, "USD", "t", "o", timeout_s=5)
    assert ledger(engine, "primary") == []


def test_timeout_rate_hangs_until_the_timeout_and_records_nothing(engine):
    gw = gateway(engine, timeout_rate=1.0)
    started = time.monotonic()
    with pytest.raises(ProcessorTimeout):
        gw.authorize("k", 1, "USD", "t", "o", timeout_s=0.05)
    assert 0.04 <= time.monotonic() - started < 1
    assert ledger(engine, "primary") == []


def test_a_stall_longer_than_the_timeout_ends_at_the_callers_timeout(engine):
    gw = gateway(engine)
    gw._faults.put("primary", {"latency_ms": 10_000, "latency_jitter": 0})
    started = time.monotonic()
    with pytest.raises(ProcessorTimeout):
        gw.authorize("k", 1, "USD", "t", "o", timeout_s=0.05)
    assert time.monotonic() - started < 1


def test_lost_response_records_the_charge_but_the_caller_sees_a_timeout(engine):
    gw = gateway(engine, lost_response_rate=1.0)
    with pytest.raises(ProcessorTimeout):
        gw.authorize("k", 900, "USD", "t", "o", timeout_s=0.05)
    assert len(charges(engine)) == 1
    gw._faults.put("primary", {"lost_response_rate": 0.0})
    assert gw.status("k", timeout_s=1).authorized


def test_decline_rate_declines_and_the_same_key_gets_the_same_answer(engine):
    gw = gateway(engine, decline_rate=1.0)
    first = gw.authorize("k", 1, "USD", "t", "o", timeout_s=5)
    gw._faults.put("primary", {"decline_rate": 0.0})
    again = gw.authorize("k", 1, "USD", "t", "o", timeout_s=5)
    assert not first.approved and not again.approved and again.decline_reason == "card_declined"
    assert charges(engine) == [] and ledger(engine, "primary")[0]["declined"] is True


def test_reusing_a_key_for_a_different_amount_is_refused(engine):
    gw = gateway(engine)
    gw.authorize("k", 100, "USD", "t", "o", timeout_s=5)
    reuse = gw.authorize("k", 999, "USD", "t", "o", timeout_s=5)
    assert not reuse.approved and reuse.decline_reason == "idempotency_key_reused"


def test_capture_is_idempotent_and_counts_every_request(engine):
    gw = gateway(engine)
    gw.authorize("k", 100, "USD", "t", "o", timeout_s=5)
    for _ in range(3):
        assert gw.capture("k", 100, "USD", timeout_s=5).approved
    [row] = ledger(engine, "primary")
    assert row["captured"] and row["capture_requests"] == 3


def test_a_voided_authorization_cannot_be_captured_and_a_captured_one_cannot_be_voided(engine):
    gw = gateway(engine)
    gw.authorize("a", 100, "USD", "t", "o", timeout_s=5)
    assert gw.void("a", timeout_s=5).approved
    assert gw.capture("a", 100, "USD", timeout_s=5).decline_reason == "authorization_voided"
    gw.authorize("b", 100, "USD", "t", "o2", timeout_s=5)
    gw.capture("b", 100, "USD", timeout_s=5)
    assert gw.void("b", timeout_s=5).decline_reason == "already_captured"


def test_fault_configuration_reaches_another_instance_within_its_ttl(engine):
    writer = FaultStore(engine, CLOCK, ttl_s=0.0)
    reader = FaultStore(engine, CLOCK, ttl_s=0.2)
    assert reader.get("primary").down is False
    writer.put("primary", FaultPatch(down=True))
    assert reader.get("primary").down is False  # still cached
    time.sleep(0.25)
    assert reader.get("primary").down is True
    # a patch keeps the fields it does not mention
    writer.put("primary", {"error_rate": 0.5})
    assert writer.get("primary").down is True and writer.get("primary").error_rate == 0.5


def _service(db_url, **overrides):
    settings = Settings(
        database_url=db_url,
        payments_runtime_cache_ttl_s=0.0,
        payments_call_timeout_s=0.2,
        payments_status_timeout_s=0.2,
        payments_sim_faults={"primary": {"latency_ms": 0}, "secondary": {"latency_ms": 0}, "rates": {"latency_ms": 0}},
        payments_sim_seed=7,
        **overrides,
    )
    engine = make_engine(db_url)
    return build_payments_service(settings, engine, CLOCK, registry=CollectorRegistry()), engine


def test_router_on_the_simulated_gateway_finds_a_lost_charge_instead_of_charging_again(db_url):
    svc, engine = _service(db_url)
    try:
        svc.set_faults("primary", FaultPatch(lost_response_rate=1.0))
        result = svc.authorize_inline(PaymentAttempt("att-1", "o1", 1200, "USD", "tok"))
        assert result.outcome is AuthOutcome.APPROVED and result.processor == "primary"
        assert [c.operation for c in result.calls] == ["authorize", "status"]
        assert len(charges(engine, "primary")) == 1 and charges(engine, "secondary") == []
    finally:
        svc.close()
        engine.dispose()


def test_router_on_the_simulated_gateway_fails_over_when_the_primary_is_down(db_url):
    svc, engine = _service(db_url)
    try:
        svc.set_faults("primary", FaultPatch(down=True))
        results = [svc.authorize_inline(PaymentAttempt(f"att-{i}", f"o{i}", 100, "USD", "tok")) for i in range(12)]
        assert all(r.outcome is AuthOutcome.APPROVED and r.processor == "secondary" for r in results)
        assert svc.router.breaker("primary").state == "open"
        assert results[-1].calls[0].outcome == "breaker_open"
        assert len(charges(engine, "secondary")) == 12 and ledger(engine, "primary") == []
        svc.router.capture("secondary", "att-0", 100, "USD")
        with pytest.raises(PaymentRetryable):
            svc.router.capture("primary", "att-0", 100, "USD")
    finally:
        svc.close()
        engine.dispose()


def test_concurrent_retries_of_one_attempt_charge_at_most_once(db_url):
    svc, engine = _service(db_url)
    try:
        barrier = threading.Barrier(4)
        out = []

        def go():
            barrier.wait()
            out.append(svc.authorize_inline(PaymentAttempt("same", "o1", 100, "USD", "tok")))

        threads = [threading.Thread(target=go) for _ in range(4)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert {r.reference for r in out} == {out[0].reference}
        assert len(charges(engine, "primary")) + len(charges(engine, "secondary")) == 1
    finally:
        svc.close()
        engine.dispose()


def test_processor_order_is_shared_between_service_instances(db_url):
    a, ea = _service(db_url)
    b, eb = _service(db_url)
    try:
        assert b.processor_order() == ["primary", "secondary"]
        a.set_processor_order(["secondary", "primary"])
        assert b.processor_order() == ["secondary", "primary"]
        result = b.authorize_inline(PaymentAttempt("k", "o", 100, "USD", "tok"))
        assert result.processor == "secondary"
    finally:
        for svc, eng in ((a, ea), (b, eb)):
            svc.close()
            eng.dispose()


def test_health_snapshots_are_persisted_for_the_cli(db_url):
    svc, engine = _service(db_url)
    try:
        svc.set_faults("primary", FaultPatch(down=True))
        svc.authorize_inline(PaymentAttempt("k", "o", 100, "USD", "tok"))
        svc.router.flush_health()
        rows = {r["processor"]: r for r in svc.health_store.read(max_age_s=60)}
        assert rows["primary"]["window_failures"] == 1
        assert rows["primary"]["counters"]["authorize:not_charged"] == 1
        assert rows["secondary"]["counters"]["authorize:approved"] == 1
        assert rows["primary"]["updated_at"] <= datetime.now(timezone.utc)
    finally:
        svc.close()
        engine.dispose()


def test_voiding_an_unseen_key_cancels_it_so_a_late_request_cannot_charge(engine):
    from shopfloor.payments import AttemptKeyCancelled

    gw = gateway(engine)
    assert gw.void("late", timeout_s=5).approved
    with pytest.raises(AttemptKeyCancelled):
        gw.authorize("late", 100, "USD", "t", "o", timeout_s=5)
    assert charges(engine) == []
    status = gw.status("late", timeout_s=5)
    assert status.found and status.voided and not status.authorized


# PostgreSQL only: SQLite serialises writers (BEGIN IMMEDIATE), so this interleaving cannot occur there.
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_void_racing_an_authorization_that_commits_mid_transaction_still_cancels_it(db_url):
    """PostgreSQL READ COMMITTED: the authorization commits after the void's UPDATE but before its SELECT."""
    from sqlalchemy import event

    from shopfloor.store.payments_tables import sim_gateway_charges

    engine = make_engine(db_url)
    other = make_engine(db_url)
    try:
        gw = gateway(engine)
        conn = other.connect()
        tx = conn.begin()
        conn.execute(sim_gateway_charges.insert().values(
            processor="primary", idempotency_key="race", order_id="o", amount=100, currency="USD",
            reference="pri_x", authorized=True, declined=False, captured=False, voided=False,
            capture_requests=0, created_at=datetime.now(timezone.utc), authorized_at=datetime.now(timezone.utc),
        ))
        fired = []

        @event.listens_for(engine, "before_cursor_execute")
        def commit_the_authorization_now(c, cursor, statement, params, context, executemany):
            if not fired and statement.lstrip().upper().startswith("SELECT") and "sim_gateway_charges" in statement:
                fired.append(True)
                tx.commit()

        # The void's UPDATE runs first and sees nothing; the authorization commits just before its SELECT.
        assert gw.void("race", timeout_s=5).approved
        conn.close()
        assert fired
        [row] = ledger(engine, "primary")
        assert row["voided"] is True and row["authorized"] is True
    finally:
        engine.dispose()
        other.dispose()
