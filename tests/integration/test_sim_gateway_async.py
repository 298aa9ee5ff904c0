"""The simulated gateway served on an event loop (``shopfloor simulate serve``): the awaited operations roll the same
dice and keep the same ledger as the blocking ones, and a call in flight waits on the loop, not in a thread."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from shopfloor.domain.clock import SystemClock
from shopfloor.payments import AttemptKeyCancelled, ProcessorTimeout, ProcessorUnavailable
from shopfloor.simulators import FaultStore, SimulatedProcessor, SimulatedRateService, build_sim_app, ledger
from shopfloor.orders.shipping import RateServiceError
from shopfloor.store.engine import make_engine

CLOCK = SystemClock()
FAULTS = {"latency_ms": 0, "decline_rate": 0.2, "error_rate": 0.15, "timeout_rate": 0.1, "lost_response_rate": 0.15}


@pytest.fixture
def engine(db_url):
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def _outcome(call):
    try:
        r = call()
        return ("ok", r.approved, r.decline_reason)
    except (ProcessorTimeout, ProcessorUnavailable, AttemptKeyCancelled) as exc:
        return ("raised", type(exc).__name__, None)


def _ledger_shape(engine, name):
    return [(r["idempotency_key"], r["authorized"], r["declined"], r["captured"], r["voided"], r["amount"])
            for r in ledger(engine, name)]


def test_awaited_operations_roll_the_same_dice_and_write_the_same_ledger_as_blocking_ones(engine):
    """Two processors with one seed and one fault mix, on one store under two names: the blocking driver and the
    awaited one give the same answer to every call of the same sequence, and leave the same ledger."""
    store = FaultStore(engine, CLOCK, ttl_s=0.0)
    for name in ("blocking", "awaited"):
        store.put(name, FAULTS)
    blocking = SimulatedProcessor("blocking", engine, store, CLOCK, seed=7, sleep=lambda _s: None)
    awaited = SimulatedProcessor("awaited", engine, store, CLOCK, seed=7)
    ops = []
    for i in range(60):
        key = f"k{i % 40}"  # repeats: idempotent replays of earlier keys
        ops.append(("authorize", key, 100 + i % 40))
        if i % 5 == 0:
            ops.append(("capture", key, 100 + i % 40))
        if i % 7 == 0:
            ops.append(("void", f"v{i}", 0))

    def run_blocking(op, key, amount):
        if op == "authorize":
            return _outcome(lambda: blocking.authorize(key, amount, "USD", "tok", f"o{key}", timeout_s=0.001))
        if op == "capture":
            return _outcome(lambda: blocking.capture(key, amount, "USD", timeout_s=0.001))
        return _outcome(lambda: blocking.void(key, timeout_s=0.001))

    async def run_awaited():
        out = []
        for op, key, amount in ops:
            if op == "authorize":
                coro = awaited.authorize_on_loop(key, amount, "USD", "tok", f"o{key}", timeout_s=0.001)
            elif op == "capture":
                coro = awaited.capture_on_loop(key, amount, "USD", timeout_s=0.001)
            else:
                coro = awaited.void_on_loop(key, timeout_s=0.001)
            try:
                r = await coro
                out.append(("ok", r.approved, r.decline_reason))
            except (ProcessorTimeout, ProcessorUnavailable, AttemptKeyCancelled) as exc:
                out.append(("raised", type(exc).__name__, None))
        return out

    expected = [run_blocking(*op) for op in ops]
    got = asyncio.run(run_awaited())
    assert got == expected
    kinds = {o[0] for o in expected} | {o[1] for o in expected if o[0] == "raised"}
    assert {"ok", "ProcessorTimeout", "ProcessorUnavailable"} <= kinds  # the mix exercised the faults
    assert _ledger_shape(engine, "awaited") == _ledger_shape(engine, "blocking")
    assert asyncio.run(awaited.status_on_loop("k1", timeout_s=1)).found == blocking.status("k1", timeout_s=1).found


def test_an_awaited_rate_quote_prices_as_the_blocking_one_and_maps_faults_to_rate_errors(engine):
    store = FaultStore(engine, CLOCK, ttl_s=0.0)
    store.put("rates", {"latency_ms": 0})
    rates = SimulatedRateService(store, seed=3)
    assert asyncio.run(rates.quote_on_loop("DE", "10115", 2500, timeout_s=1)) == rates.quote("DE", "10115", 2500,
                                                                                              timeout_s=1)
    store.put("rates", {"down": True})
    with pytest.raises(RateServiceError) as err:
        asyncio.run(rates.quote_on_loop("DE", "10115", 2500, timeout_s=1))
    assert err.value.reason == "unavailable"


def test_calls_in_flight_wait_on_the_loop_without_a_thread_each(engine):
    """64 authorizations at once, each with 300 ms of simulated latency: they overlap (all done in well under 64
    times the latency) and the process gains no thread per call, as a thread pool per call would (on SQLite the
    ledger step runs on the loop; on PostgreSQL on a few worker threads, asyncio's default pool here)."""
    store = FaultStore(engine, CLOCK, ttl_s=0.0)
    store.put("primary", {"latency_ms": 300, "latency_jitter": 0})
    store.put("rates", {"latency_ms": 0})
    app = build_sim_app({"primary": SimulatedProcessor("primary", engine, store, CLOCK, seed=1)},
                        SimulatedRateService(store, seed=2))
    peak = []

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
            before = threading.active_count()

            async def one(i):
                r = await client.post("/v1/processors/primary/authorize", headers={"Idempotency-Key": f"c{i}"},
                                      json={"amount": 100, "currency": "USD", "token": "tok", "order_id": f"o{i}",
                                            "timeout_s": 5})
                return r.status_code, r.json()

            async def watch():
                for _ in range(20):
                    peak.append(threading.active_count() - before)
                    await asyncio.sleep(0.01)

            t0 = time.monotonic()
            results, _ = await asyncio.gather(asyncio.gather(*(one(i) for i in range(64))), watch())
            return results, time.monotonic() - t0

    results, wall = asyncio.run(main())
    assert all(code == 200 and body["approved"] for code, body in results)
    assert wall < 5.0
    assert max(peak) <= (1 if engine.dialect.name == "sqlite" else 8), peak
    assert len(ledger(engine, "primary")) == 64


def test_the_kept_connection_insert_queues_on_the_engines_write_lock(engine):
    """SQLite: the authorization's insert on the processor's own DBAPI connection waits for the engine's write
    transactions of this process (the engine's lock), then records once; a replay reads that charge."""
    from sqlalchemy import text

    from shopfloor.store.engine import sqlite_write_lock

    lock = sqlite_write_lock(engine)
    if engine.dialect.name != "sqlite":
        assert lock is None
        return
    store = FaultStore(engine, CLOCK, ttl_s=0.0)
    store.put("primary", {"latency_ms": 0})
    proc = SimulatedProcessor("primary", engine, store, CLOCK, seed=1)
    done = threading.Event()
    answers = []

    def authorize():
        answers.append(proc.authorize("q1", 250, "USD", "tok", "o1", timeout_s=5))
        done.set()

    with engine.begin() as conn:
        conn.execute(text("SELECT 1"))
        assert lock.locked()  # held by this write transaction
        t = threading.Thread(target=authorize)
        t.start()
        assert not done.wait(0.2)  # queued behind it
    assert done.wait(5)
    t.join(5)
    assert not lock.locked()
    again = proc.authorize("q1", 250, "USD", "tok", "o1", timeout_s=5)
    assert answers[0].approved and again.reference == answers[0].reference
    assert [r["idempotency_key"] for r in ledger(engine, "primary")] == ["q1"]
