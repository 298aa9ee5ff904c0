"""Outbox leases: a worker renews the leases of events it is still working on, records each event when it is done,
and a worker that lost a lease (stalled past it) cannot overwrite the outcome written by the one that took over.

Handlers block on events the test controls; time is a fixed clock the test advances past the lease."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select

from shopfloor.domain.clock import FixedClock
from shopfloor.domain.orders import ORDER_PLACED
from shopfloor.orders import OutboxWorker
from shopfloor.orders.outbox import FunctionHandler
from shopfloor.store import orders_repo as repo
from shopfloor.store.tables import outbox, processed_events
from tests.support.store import NOW, engine_for

LEASE_S = 30.0


@pytest.fixture
def store(db_url):
    engine = engine_for(db_url)
    yield engine, FixedClock(NOW)
    engine.dispose()


def _enqueue(engine, clock, *aggregates: str) -> None:
    with engine.begin() as conn:
        for agg in aggregates:
            repo.enqueue_event(conn, ORDER_PLACED, agg, {"order_id": agg}, clock.now())


def _rows(engine):
    with engine.connect() as conn:
        return {r.aggregate_id: r for r in conn.execute(select(outbox))}


class Gate:
    """A handler that records who ran it and, for the chosen aggregates, waits until the test opens the gate."""

    def __init__(self, blocked: set[str]) -> None:
        self.blocked = blocked
        self.runs: list[tuple[str, str]] = []
        self.entered = threading.Event()
        self.open = threading.Event()
        self.fail = False

    def handler(self, who: str) -> FunctionHandler:
        def run(event):
            self.runs.append((who, event.aggregate_id))
            if event.aggregate_id in self.blocked:
                self.entered.set()
                assert self.open.wait(30), "the test never opened the gate"
                if self.fail:
                    raise ValueError(f"{who} failed late")

        return FunctionHandler("slow", frozenset({ORDER_PLACED}), run)


def _wait_until(condition, what: str, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_a_handler_slower_than_the_lease_keeps_it_and_a_second_worker_never_runs_its_event(store):
    engine, clock = store
    _enqueue(engine, clock, "o1")
    gate = Gate({"o1"})
    a = OutboxWorker(engine, clock, [gate.handler("A")], lease_s=LEASE_S, lease_renew_every_s=0.01)
    b = OutboxWorker(engine, clock, [gate.handler("B")], lease_s=LEASE_S)
    runner = threading.Thread(target=a.run_once)
    runner.start()
    assert gate.entered.wait(30)
    clock.advance(seconds=LEASE_S + 1)  # the lease A took at claim time has run out
    _wait_until(lambda: _rows(engine)["o1"].locked_until > clock.now(), "A never renewed its lease")
    assert b.run_once() == 0  # B finds nothing to claim while A works
    gate.open.set()
    runner.join()
    assert gate.runs == [("A", "o1")]
    assert _rows(engine)["o1"].status == "delivered"


def test_each_event_is_recorded_when_it_completes_not_when_its_batch_ends(store):
    engine, clock = store
    _enqueue(engine, clock, "fast", "slow")
    gate = Gate({"slow"})
    a = OutboxWorker(engine, clock, [gate.handler("A")], lease_s=LEASE_S)
    runner = threading.Thread(target=a.run_once)
    runner.start()
    assert gate.entered.wait(30)
    try:
        rows = _rows(engine)
        assert rows["fast"].status == "delivered" and rows["slow"].status == "pending"
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(processed_events)).scalar() == 1
    finally:
        gate.open.set()
        runner.join()
    assert _rows(engine)["slow"].status == "delivered"


def test_a_worker_that_lost_its_lease_leaves_the_new_owners_outcome_alone(store):
    engine, clock = store
    _enqueue(engine, clock, "o1")
    stalled = Gate({"o1"})
    stalled.fail = True
    a = OutboxWorker(engine, clock, [stalled.handler("A")], lease_s=LEASE_S, lease_renew_every_s=3600)  # stalls
    b = OutboxWorker(engine, clock, [Gate(set()).handler("B")], lease_s=LEASE_S)
    runner = threading.Thread(target=a.run_once)
    runner.start()
    assert stalled.entered.wait(30)
    clock.advance(seconds=LEASE_S + 1)
    assert b.run_once() == 1  # A's lease ran out without renewal: B takes the event over and delivers it
    stalled.open.set()  # A wakes up and fails late
    runner.join()
    row = _rows(engine)["o1"]
    assert row.status == "delivered" and row.attempts == 0 and row.last_error is None
