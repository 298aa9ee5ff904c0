"""Group commits applied on the server's event loop (SQLite): one transaction per loop turn, no thread hand-off,
and a batch that finds the write lock taken goes to the writer thread, which waits for it, instead of blocking the
loop. PostgreSQL keeps the writer thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest
from sqlalchemy import func, select, text

from shopfloor.domain.clock import FixedClock
from shopfloor.domain.stock import OrderLineRequest
from shopfloor.orders import CheckoutService, PlaceOrder, request_fingerprint
from shopfloor.orders.payment_flow import PaymentSettlement, Settle
from shopfloor.payments import AuthOutcome, AuthorizationResult
from shopfloor.store.tables import orders, stock
from tests.support.store import NOW, engine_for, seed

WAREHOUSES = {"west": ("us-west", "US", ["9"])}


def _cmd(key: str, qty: int = 1) -> PlaceOrder:
    return PlaceOrder("key_test", key, request_fingerprint({"k": key}), (OrderLineRequest("A", qty),), "US", "94107",
                      {"token": "tok_ok"}, {})


@pytest.fixture
def store(db_url):
    engine = engine_for(db_url)
    seed(engine, WAREHOUSES, {"A": 1000}, {("A", "west"): 50})
    clock = FixedClock(NOW)
    svc = CheckoutService(engine, clock, reservation_ttl_s=60, writer_on_loop=True)
    yield engine, clock, svc
    svc.close()
    engine.dispose()


def _reserved(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(stock.c.reserved).where(stock.c.sku == "A")).scalar_one()


def test_checkouts_of_one_loop_turn_commit_together_on_the_loop(store):
    engine, clock, svc = store
    if engine.dialect.name != "sqlite":
        assert svc.writer_on_loop is False  # network round trips: the thread keeps them off the loop
        return
    settlement = PaymentSettlement(engine, clock)

    async def main():
        placed = await asyncio.gather(*(svc.place(_cmd(f"k{i}", qty=2)) for i in range(12)))
        settled = await asyncio.gather(*(
            svc.run_batched(settlement.apply_many, Settle(
                p.body["order_id"], AuthorizationResult(AuthOutcome.APPROVED, f"pay_{i}", processor="primary",
                                                        reference=f"r{i}"),
                1, ("key_test:checkout", f"k{i}"), p.body))
            for i, p in enumerate(placed)))
        replay = await svc.place(_cmd("k3", qty=2))
        return placed, settled, replay

    placed, settled, replay = asyncio.run(main())
    assert [p.status_code for p in placed] == [201] * 12 and len({p.body["order_id"] for p in placed}) == 12
    assert [s[0] for s in settled] == [201] * 12
    assert replay.replayed and replay.body["order_id"] == placed[3].body["order_id"]
    # The 12 orders in one transaction, their 12 settlements in a second, the replay in a third; no thread.
    assert (svc.batches_on_loop, svc.batches_handed_to_thread, svc._thread) == (3, 0, None)
    assert _reserved(engine) == 24
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).where(orders.c.status == "authorized")).scalar_one() == 12


def test_a_write_lock_held_in_this_process_sends_the_batch_to_the_writer_thread(store):
    """Another thread of this process is mid-transaction: the loop does not wait for it; the writer thread takes
    the batch, waits for the lock, and commits it once, and the loop's callers get their orders."""
    engine, _, svc = store
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only: PostgreSQL's writes never run on the loop")
    holding, release = threading.Event(), threading.Event()

    def hold():
        with engine.begin() as conn:
            conn.execute(text("UPDATE stock SET reserved = reserved WHERE sku = 'A'"))
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(5)

    async def main():
        tasks = [asyncio.ensure_future(svc.place(_cmd(f"b{i}"))) for i in range(5)]
        await asyncio.sleep(0.05)  # the loop stays free while the lock is held
        assert not any(t.done() for t in tasks)
        release.set()
        return await asyncio.gather(*tasks)

    placed = asyncio.run(main())
    holder.join(5)
    assert [p.status_code for p in placed] == [201] * 5
    assert svc.batches_handed_to_thread == 1 and svc.batches_on_loop == 0
    assert _reserved(engine) == 5


def test_a_write_lock_held_by_another_process_does_not_block_the_loop(store, tmp_path):
    engine, _, svc = store
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    path = engine.url.database
    other = sqlite3.connect(path, isolation_level=None)  # another process's connection, for SQLite's lock
    other.execute("BEGIN IMMEDIATE")

    async def main():
        task = asyncio.ensure_future(svc.place(_cmd("c1", qty=4)))
        ticks = 0
        for _ in range(10):  # the loop keeps turning while the other writer holds the database
            await asyncio.sleep(0.01)
            ticks += 1
        assert not task.done()
        other.execute("COMMIT")
        return await task, ticks

    placed, ticks = asyncio.run(main())
    other.close()
    assert placed.status_code == 201 and ticks == 10
    assert svc.batches_handed_to_thread == 1
    assert _reserved(engine) == 4
