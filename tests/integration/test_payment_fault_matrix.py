"""Many concurrent payment attempts through a fault matrix on the shared simulated ledger: nobody is charged
twice, nothing is lost, and pending attempts resolve on retry with the same key and suspects."""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections import Counter, defaultdict

from prometheus_client import CollectorRegistry

from shopfloor.config import Settings
from shopfloor.domain.clock import SystemClock
from shopfloor.orders.payments_service import build_payments_service
from shopfloor.payments import AuthOutcome, PaymentAttempt, PaymentRejected, PaymentRetryable
from shopfloor.simulators import FaultPatch, ledger
from shopfloor.store.engine import make_engine

HEALTHY = FaultPatch(latency_ms=1, latency_jitter=0, decline_rate=0, error_rate=0, timeout_rate=0,
                     lost_response_rate=0, down=False)
MATRIX = [
    ("primary times out after charging", {"primary": FaultPatch(lost_response_rate=0.5)}),
    ("primary 5xx before charging", {"primary": FaultPatch(error_rate=0.5)}),
    ("primary refuses connections", {"primary": FaultPatch(down=True)}),
    ("primary stalls for 10 s", {"primary": FaultPatch(latency_ms=10_000, latency_jitter=0)}),
    ("decline storm", {"primary": FaultPatch(decline_rate=0.7), "secondary": FaultPatch(decline_rate=0.7)}),
]
PER_PHASE = 40


def test_fault_matrix_never_charges_twice_and_loses_no_attempt(db_url):
    settings = Settings(
        database_url=db_url,
        payments_runtime_cache_ttl_s=0.0,
        payments_call_timeout_s=0.05,
        payments_status_timeout_s=0.05,
        payments_checkout_budget_s=0.3,
        payments_worker_budget_s=1.0,
        payments_breaker_min_calls=6,
        payments_breaker_open_s=0.3,
        payments_sim_seed=11,
    )
    engine = make_engine(db_url, pool_size=12)
    svc = build_payments_service(settings, engine, SystemClock(), registry=CollectorRegistry())
    attempts: dict[str, PaymentAttempt] = {}
    results: dict[str, object] = {}
    history: dict[str, list] = defaultdict(list)
    # The simulators enforce their own timeouts, so the router would call them in the caller's thread. Here they
    # run through the router's pool under its hard deadline instead: a request the caller gave up on may then
    # still land at the processor afterwards, the harshest case for double charges.
    for name in ("primary", "secondary"):
        svc.router.processor(name).honours_timeout = False
    try:
        for name in ("primary", "secondary", "rates"):
            svc.set_faults(name, HEALTHY)
        with cf.ThreadPoolExecutor(8) as pool:
            for phase, (_label, faults) in enumerate(MATRIX):
                # Let breakers opened by the previous phase reach half-open, so that every phase's faults are
                # really met (the 10 s stall leaves attempts pending only if primary is called at all).
                time.sleep(settings.payments_breaker_open_s + 0.05)
                for name in ("primary", "secondary"):
                    svc.set_faults(name, HEALTHY)
                for name, patch in faults.items():
                    svc.set_faults(name, patch)
                batch = [
                    PaymentAttempt(f"att-{phase}-{i}", f"ord-{phase}-{i}", 1000 + i, "USD", f"tok{i}")
                    for i in range(PER_PHASE)
                ]
                attempts.update({a.order_id: a for a in batch})
                for a, r in zip(batch, pool.map(svc.authorize_inline, batch), strict=True):
                    results[a.order_id] = r
                    history[a.order_id].append(r.to_json())

        first_pass = Counter(str(r.outcome) for r in results.values())
        assert first_pass["pending"] > 0, "the matrix should leave some attempts pending"
        assert sum(first_pass.values()) == len(MATRIX) * PER_PHASE

        # The worker (its own process and settings): faults cleared, retry every pending attempt with the SAME
        # key, suspects and cancels. Abandoned requests of the first pass may still land meanwhile.
        for name in ("primary", "secondary"):
            svc.set_faults(name, HEALTHY)
        svc.close()
        svc = build_payments_service(
            settings.model_copy(update={"payments_call_timeout_s": 0.2, "payments_status_timeout_s": 0.2}),
            engine, SystemClock(), registry=CollectorRegistry(),
        )
        for _ in range(5):
            pending = [oid for oid, r in results.items() if r.outcome is AuthOutcome.PENDING]
            for oid in pending:
                a = attempts[oid]
                retry = PaymentAttempt.for_retry(
                    results[oid].to_json(), order_id=oid, amount=a.amount, currency=a.currency, token=a.token
                )
                results[oid] = svc.authorize_retry(retry)
                history[oid].append(results[oid].to_json())
        still = {oid: r.to_json() for oid, r in results.items() if r.outcome is AuthOutcome.PENDING}
        assert still == {}

        # Capture every approval, with lost responses on the capture path too; retries are idempotent.
        svc.set_faults("primary", FaultPatch(lost_response_rate=0.3))
        svc.set_faults("secondary", FaultPatch(lost_response_rate=0.3))
        def capture(oid):
            r = results[oid]
            give_up = time.monotonic() + 30
            while time.monotonic() < give_up:
                try:
                    svc.router.capture(r.processor, r.idempotency_key, attempts[oid].amount, "USD", timeout_s=0.2)
                    return
                except PaymentRetryable:  # the outbox would back off; an open breaker needs open_s to pass
                    time.sleep(0.05)
                except PaymentRejected as exc:  # pragma: no cover - would be a bug
                    raise AssertionError(exc) from exc
            raise AssertionError(f"capture of {oid} never succeeded")  # pragma: no cover

        with cf.ThreadPoolExecutor(8) as pool:
            list(pool.map(capture, [oid for oid, r in results.items() if r.outcome is AuthOutcome.APPROVED]))

        charged = defaultdict(list)
        captured = Counter()
        for name in ("primary", "secondary"):
            for row in ledger(engine, name):
                if row["authorized"] and not row["voided"]:
                    charged[row["order_id"]].append(name)
                if row["captured"]:
                    captured[row["order_id"]] += 1
        doubles = {oid: (procs, history[oid]) for oid, procs in charged.items() if len(procs) > 1}
        assert doubles == {}, "an order was authorized twice"
        assert max(captured.values()) == 1
        for oid, r in results.items():
            if r.outcome is AuthOutcome.APPROVED:
                assert charged[oid] == [r.processor] and captured[oid] == 1
            else:
                assert oid not in charged
        final = Counter(str(r.outcome) for r in results.values())
        assert final["approved"] + final["declined"] == len(MATRIX) * PER_PHASE
    finally:
        svc.close()
        engine.dispose()
