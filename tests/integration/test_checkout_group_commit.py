"""Follow-up writes that ride the checkout writer's group commit: batched payment settlement, the promise
bookkeeping hook, and the background WAL checkpointer. SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading

import orjson
import pytest
from sqlalchemy import select

from shopfloor.domain.clock import FixedClock
from shopfloor.domain.orders import OrderStatus
from shopfloor.domain.stock import OrderLineRequest
from shopfloor.orders import CheckoutService, PlaceOrder, promise_bookkeeping, request_fingerprint
from shopfloor.orders.payment_flow import PAYMENT_AUTHORIZED, PaymentSettlement, Settle
from shopfloor.payments import AuthOutcome, AuthorizationResult
from shopfloor.store.engine import WalCheckpointer
from shopfloor.store.tables import idempotency_keys, orders, outbox, stock
from tests.support.store import NOW, engine_for, seed

WAREHOUSES = {"west": ("us-west", "US", ["9"])}


def _cmd(key: str, sku: str = "A", qty: int = 1, extra: dict | None = None) -> PlaceOrder:
    lines = (OrderLineRequest(sku, qty),)
    return PlaceOrder("key_test", key, request_fingerprint({"k": key}), lines, "US", "94107", {"token": "tok_ok"},
                      extra or {})


@pytest.fixture
def store(db_url):
    engine = engine_for(db_url)
    seed(engine, WAREHOUSES, {"A": 1000}, {("A", "west"): 50})
    clock = FixedClock(NOW)
    svc = CheckoutService(engine, clock, reservation_ttl_s=60)
    yield engine, clock, svc
    svc.close()
    engine.dispose()


def _approved(key: str) -> AuthorizationResult:
    return AuthorizationResult(AuthOutcome.APPROVED, f"pay_{key}", processor="primary", reference=f"ref_{key}")


def test_settlements_of_one_batch_are_applied_together_and_exactly_once(store):
    engine, clock, svc = store
    settlement = PaymentSettlement(engine, clock)
    placed = [svc.place_order(_cmd(f"k{i}", qty=2)) for i in range(4)]
    ids = [p.body["order_id"] for p in placed]
    scopes = [("key_test:checkout", f"k{i}") for i in range(4)]
    # Queue every settlement before the writer runs them, so they share one batch; the first order is settled
    # twice (a duplicate must change nothing), the last one is declined (the one-at-a-time path).
    items = [Settle(ids[0], _approved("0"), 1, scopes[0], placed[0].body),
             Settle(ids[0], _approved("0"), 1, scopes[0], placed[0].body),
             Settle(ids[1], _approved("1"), 1, scopes[1], placed[1].body),
             Settle(ids[2], _approved("2"), 1, scopes[2], placed[2].body),
             Settle(ids[3], AuthorizationResult(AuthOutcome.DECLINED, "pay_3", processor="primary",
                                                decline_reason="insufficient_funds"), 1, scopes[3], placed[3].body)]
    gate = threading.Event()
    svc.submit_work(lambda conn: gate.wait(5))  # holds the writer while the settlements queue up behind it
    futures = [svc.submit_batched(settlement.apply_many, it) for it in items]
    gate.set()
    results = [f.result(timeout=10) for f in futures]

    assert results[0][0] == 201 and results[0][1]["status"] == "authorized"
    assert results[1] == (201, None)  # the duplicate saw the order already settled
    assert [r[0] for r in results[2:]] == [201, 201, 402]
    with engine.connect() as conn:
        status = dict(conn.execute(select(orders.c.id, orders.c.status).where(orders.c.id.in_(ids))).all())
        events = conn.execute(select(outbox.c.aggregate_id).where(outbox.c.type == PAYMENT_AUTHORIZED)).all()
        idem = dict(conn.execute(select(idempotency_keys.c.key, idempotency_keys.c.response)).all())
        reserved = conn.execute(select(stock.c.reserved).where(stock.c.sku == "A")).scalar_one()
        payment = conn.execute(select(orders.c.payment).where(orders.c.id == ids[1])).scalar_one()
    assert [status[i] for i in ids] == ["authorized"] * 3 + [OrderStatus.DECLINED.value]
    assert sorted(e.aggregate_id for e in events) == sorted(ids[:3])  # one event per order, none for the dup
    assert orjson.loads(idem["k2"])["status"] == "authorized"  # a replay now sees the final outcome
    assert reserved == 6  # the declined order's 2 units went back
    assert payment["state"] == "approved" and payment["processor"] == "primary"


def test_promise_bookkeeping_commits_with_the_orders_and_never_fails_them(store):
    engine, clock, svc = store
    recorded: list[tuple[str, object]] = []

    def record_in(conn, items, now):
        assert conn.in_transaction()
        recorded.extend(items)

    svc.after_place = promise_bookkeeping(record_in)
    ok = svc.place_order(_cmd("p1", extra={"promise_window": "window-1"}))
    plain = svc.place_order(_cmd("p2"))  # no promise shown: nothing to record
    assert recorded == [(ok.body["order_id"], "window-1")]
    assert plain.created

    def broken(conn, items, now):
        raise RuntimeError("calibration store is broken")

    svc.after_place = promise_bookkeeping(broken)
    res = svc.place_order(_cmd("p3", extra={"promise_window": "window-3"}))
    assert res.status_code == 201 and res.created  # the order stands; only the bookkeeping was rolled back
    with engine.connect() as conn:
        assert conn.execute(select(orders.c.id).where(orders.c.id == res.body["order_id"])).first() is not None


def test_checkout_through_the_app_records_the_promise_for_calibration(db_url):
    from fastapi.testclient import TestClient

    from shopfloor.api.app import create_app
    from shopfloor.bootstrap import build_container
    from shopfloor.config import Settings
    from tests.support.store import new_key

    container = build_container(Settings(database_url=db_url))
    seed(container.engine, WAREHOUSES, {"A": 1000}, {("A", "west"): 50})
    _, key = new_key(container.engine, "storefront")
    with TestClient(create_app(container)) as client:
        r = client.post("/v1/checkouts", headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "c1"},
                        json={"lines": [{"sku": "A", "qty": 1}], "ship_to": {"country": "US", "postal_code": "94107"},
                              "payment": {"token": "tok_ok"}})
        assert r.status_code == 201, r.text
        track = container.services["promise"].store.track(r.json()["order_id"])
    assert r.json()["promise"]["deliver_by"] is not None
    assert track is not None and track.promise_due_h is not None  # recorded in the order's own commit


def test_wal_checkpointer_copies_the_wal_back_without_blocking_writers(tmp_path):
    path = tmp_path / "ck.db"
    url = f"sqlite:///{path}"
    assert WalCheckpointer.applies_to(url) and not WalCheckpointer.applies_to("sqlite:///:memory:")
    assert not WalCheckpointer.applies_to("postgresql://postgres@127.0.0.1/test")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")  # only the checkpointer copies
    writer.execute("CREATE TABLE t (x INTEGER)")
    for i in range(200):
        writer.execute("INSERT INTO t VALUES (?)", (i,))
    ck = WalCheckpointer(url, interval_s=0.05)
    conn = sqlite3.connect(path, isolation_level=None)
    busy, frames, copied = ck.checkpoint(conn)
    assert busy == 0 and frames > 0 and copied == frames
    ck.start()
    writer.execute("INSERT INTO t VALUES (-1)")  # writers are not blocked while the thread runs
    deadline = ck.rounds + 3
    for _ in range(100):
        if ck.rounds >= deadline:
            break
        threading.Event().wait(0.05)
    ck.close()
    assert ck.rounds >= deadline
    assert sqlite3.connect(path).execute("SELECT count(*) FROM t").fetchone()[0] == 201
    conn.close()
    writer.close()


def test_async_callers_of_one_batch_are_woken_together(store):
    """``place`` / ``run_batched`` resolve on the caller's loop: one wake-up per batch, not one per command."""
    import asyncio

    engine, clock, svc = store
    settlement = PaymentSettlement(engine, clock)

    async def main() -> tuple[list, list, int]:
        loop = asyncio.get_running_loop()
        wakeups = 0
        real = loop.call_soon_threadsafe

        def counting(*args, **kw):
            nonlocal wakeups
            wakeups += 1
            return real(*args, **kw)

        loop.call_soon_threadsafe = counting
        gate = threading.Event()
        svc.submit_work(lambda conn: gate.wait(5))  # the 20 commands below queue up behind this one
        tasks = [asyncio.ensure_future(svc.place(_cmd(f"a{i}"))) for i in range(20)]
        await asyncio.sleep(0)  # let every task enqueue its command
        gate.set()
        placed = await asyncio.gather(*tasks)
        after_orders = wakeups
        settled = await asyncio.gather(*(
            svc.run_batched(settlement.apply_many, Settle(p.body["order_id"], _approved(f"a{i}"), 1,
                                                          ("key_test:checkout", f"a{i}"), p.body))
            for i, p in enumerate(placed)))
        return placed, settled, after_orders

    placed, settled, wakeups = asyncio.run(main())
    assert [p.status_code for p in placed] == [201] * 20 and all(p.created for p in placed)
    assert len({p.body["order_id"] for p in placed}) == 20
    assert [s[0] for s in settled] == [201] * 20
    # The gate's batch holds only the gate's work (it was queued alone); the 20 checkouts share at most two
    # batches (the writer's size cap is 64), so the loop was woken at most twice for them.
    assert wakeups <= 2
    with engine.connect() as conn:
        n = conn.execute(select(orders.c.id).where(orders.c.status == "authorized")).all()
    assert len(n) == 20


def test_a_cancelled_async_checkout_still_commits_and_replays(store):
    """A caller that goes away (client disconnect) does not undo or lose its order: the batch commits, the
    writer skips the cancelled future, and a replay of the key returns the order."""
    import asyncio

    engine, clock, svc = store

    async def main():
        gate = threading.Event()
        svc.submit_work(lambda conn: gate.wait(5))
        task = asyncio.ensure_future(svc.place(_cmd("gone", qty=3)))
        await asyncio.sleep(0)
        task.cancel()
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await svc.place(_cmd("gone", qty=3))

    replay = asyncio.run(main())
    assert replay.status_code == 201 and replay.replayed
    with engine.connect() as conn:
        reserved = conn.execute(select(stock.c.reserved).where(stock.c.sku == "A")).scalar_one()
    assert reserved == 3


def test_the_writer_publishes_a_watched_products_units_left_after_each_commit_that_reserved_some(store):
    engine, _clock, svc = store
    heard: list[tuple[str, int, str]] = []
    svc.watch_stock(["A"], lambda sku, units: heard.append((sku, units, threading.current_thread().name)))
    svc.place_order(_cmd("w1", qty=20))
    assert heard == [("A", 30, "checkout-writer")]  # told on the writer's thread, after the commit
    svc.place_order(_cmd("w2", qty=30))
    assert heard[-1][:2] == ("A", 0)  # the last units: the listener hears 0 with the commit that took them
    refused = svc.place_order(_cmd("w3", qty=1))
    assert refused.status_code == 409 and len(heard) == 2  # nothing reserved, nothing to tell
    with engine.connect() as conn:  # what was published is what the store holds
        on_hand, reserved = conn.execute(select(stock.c.on_hand, stock.c.reserved).where(stock.c.sku == "A")).one()
    assert on_hand - reserved == 0


def test_a_failing_stock_listener_does_not_fail_the_order(store):
    _engine, _clock, svc = store

    def broken(_sku, _units):
        raise RuntimeError("listener down")

    svc.watch_stock(["A"], broken)
    assert svc.place_order(_cmd("b1", qty=1)).status_code == 201


def test_a_stale_level_read_replans_from_a_warehouse_the_batch_had_not_seen(db_url, monkeypatch):
    """When a guarded update misses (another process changed the row since the batch read its levels) and the
    re-read brings a warehouse the batch had not seen, the writer plans the order again from it."""
    from shopfloor.domain.stock import StockLevel
    from shopfloor.store import orders_repo

    engine = engine_for(db_url)
    seed(engine, {"west": ("us-west", "US", ["9"]), "east": ("us-east", "US", ["1"])}, {"A": 1000},
         {("A", "west"): 0, ("A", "east"): 5})
    real = orders_repo.load_levels
    calls = []

    def stale_first(conn, skus):
        calls.append(list(skus))
        if len(calls) == 1:  # the batch's read: west seemed to hold stock, east was not there yet
            return [StockLevel("A", "west", 3, 0)]
        return real(conn, skus)

    monkeypatch.setattr(orders_repo, "load_levels", stale_first)
    svc = CheckoutService(engine, FixedClock(NOW), reservation_ttl_s=60)
    try:
        res = svc.place_order(_cmd("stale", qty=2))
    finally:
        svc.close()
    assert res.status_code == 201, res.body
    assert [line["warehouse"] for line in res.body["lines"]] == ["east"]
    assert len(calls) == 2
    with engine.connect() as conn:
        reserved = dict(conn.execute(select(stock.c.warehouse, stock.c.reserved).where(stock.c.sku == "A")).all())
    assert reserved == {"west": 0, "east": 2}
    engine.dispose()
