"""Checkout, idempotency, sweeper and outbox against real SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from shopfloor.domain.clock import FixedClock
from shopfloor.domain.orders import ORDER_PLACED
from shopfloor.domain.stock import OrderLineRequest
from shopfloor.orders import (
    CheckoutService,
    OutboxWorker,
    PlaceOrder,
    release_expired_reservations,
    request_fingerprint,
)
from shopfloor.orders.outbox import FunctionHandler, RetryLater, outbox_status
from shopfloor.store import orders_repo as repo
from shopfloor.store.tables import orders, outbox
from tests.support.store import NOW, check_invariants, engine_for, seed

WAREHOUSES = {"west": ("us-west", "US", ["9"]), "east": ("us-east", "US", ["0", "1"])}


def _cmd(key: str, lines, postal="94107", api_key="key_test", body_hash=None):
    lines = tuple(OrderLineRequest(s, q) for s, q in lines)
    body_hash = body_hash or request_fingerprint({"lines": [[l.sku, l.qty] for l in lines], "postal": postal})
    return PlaceOrder(api_key, key, body_hash, lines, "US", postal, {"token": "tok_ok"})


@pytest.fixture
def store(db_url):
    engine = engine_for(db_url)
    clock = FixedClock(NOW)
    seed(engine, WAREHOUSES, {"A": 1000, "B": 250}, {("A", "west"): 10, ("A", "east"): 5, ("B", "east"): 3})
    svc = CheckoutService(engine, clock, reservation_ttl_s=60)
    yield engine, clock, svc
    svc.close()
    engine.dispose()


def test_checkout_reserves_and_records_order_with_its_outbox_event(store):
    engine, clock, svc = store
    res = svc.place_order(_cmd("k1", [("A", 2)]))
    assert res.status_code == 201 and res.created
    assert res.body["lines"] == [{"sku": "A", "qty": 2, "warehouse": "west"}]
    with engine.connect() as conn:
        order = repo.get_order(conn, res.body["order_id"])
        events = conn.execute(select(outbox.c.type).where(outbox.c.aggregate_id == res.body["order_id"])).all()
    assert order["reservations"][0]["state"] == "active"
    assert [e.type for e in events] == [ORDER_PLACED]
    check_invariants(engine, {("A", "west"): 10, ("A", "east"): 5, ("B", "east"): 3})


def test_sequential_replay_of_a_key_returns_the_first_response(store):
    engine, _, svc = store
    first = svc.place_order(_cmd("same", [("A", 1)]))
    again = svc.place_order(_cmd("same", [("A", 1)]))
    assert again.replayed and again.body == first.body and again.status_code == 201
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(orders)).scalar() == 1


def test_same_key_with_a_different_body_is_refused(store):
    _, _, svc = store
    svc.place_order(_cmd("k", [("A", 1)]))
    res = svc.place_order(_cmd("k", [("A", 2)]))
    assert res.status_code == 422 and res.body["error"]["code"] == "idempotency_key_reused"


def test_concurrent_replays_of_one_key_create_one_order(store):
    engine, _, svc = store
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda _: svc.place_order(_cmd("race", [("A", 1)])), range(40)))
    assert len({r.body["order_id"] for r in results}) == 1
    assert sum(r.created for r in results) == 1
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(orders)).scalar() == 1


def test_whole_order_or_nothing_when_one_line_is_short(store):
    engine, _, svc = store
    res = svc.place_order(_cmd("k", [("A", 1), ("B", 4)]))
    assert res.status_code == 409
    assert res.body["error"]["details"] == [{"sku": "B", "requested": 4, "available": 3}]
    with engine.connect() as conn:
        assert repo.stock_for_sku(conn, "A")[1]["reserved"] == 0


def test_split_shipment_only_when_no_single_warehouse_suffices(store):
    _, _, svc = store
    res = svc.place_order(_cmd("k", [("A", 12)]))
    assert res.status_code == 201 and res.body["split_shipment"] is True
    assert sorted((l["warehouse"], l["qty"]) for l in res.body["lines"]) == [("east", 2), ("west", 10)]


def test_unknown_sku_is_a_clean_422(store):
    _, _, svc = store
    res = svc.place_order(_cmd("k", [("NOPE", 1)]))
    assert res.status_code == 422 and res.body["error"]["code"] == "unknown_sku"


def test_an_unknown_sku_refusal_is_not_kept_under_the_key_so_a_retry_works_once_the_sku_exists(store):
    engine, _, svc = store
    first = svc.place_order(_cmd("late", [("LATE1", 1)]))
    assert first.status_code == 422 and first.body["error"]["code"] == "unknown_sku"
    seed(engine, {}, {"LATE1": 500}, {("LATE1", "west"): 4})
    again = svc.place_order(_cmd("late", [("LATE1", 1)]))
    assert again.status_code == 201 and again.created and not again.replayed
    assert svc.place_order(_cmd("late", [("LATE1", 1)])).replayed  # the order, once placed, is kept


def test_sweeper_releases_expired_reservations_once(store):
    engine, clock, svc = store
    res = svc.place_order(_cmd("k", [("A", 3)]))
    assert release_expired_reservations(engine, clock) == []
    clock.advance(seconds=61)
    assert release_expired_reservations(engine, clock) == [res.body["order_id"]]
    assert release_expired_reservations(engine, clock) == []
    with engine.connect() as conn:
        order = repo.get_order(conn, res.body["order_id"])
    assert order["status"] == "cancelled" and order["reservations"][0]["state"] == "released"
    check_invariants(engine, {("A", "west"): 10, ("A", "east"): 5, ("B", "east"): 3})


def test_outbox_retries_with_backoff_then_dead_letters_poison_events(store):
    engine, clock, svc = store
    svc.place_order(_cmd("k", [("A", 1)]))
    calls = []

    def poison(event):
        calls.append(event.event_id)
        raise ValueError("cannot handle")

    worker = OutboxWorker(engine, clock, [FunctionHandler("poison", frozenset({ORDER_PLACED}), poison)],
                          max_attempts=3, backoff_base_s=1)
    assert worker.run_once() == 1
    assert worker.run_once() == 0  # backing off
    clock.advance(seconds=1.1)
    assert worker.run_once() == 1
    clock.advance(seconds=2.1)
    assert worker.run_once() == 1
    st = outbox_status(engine)
    assert st["dead"] == 1 and "cannot handle" in st["dead_letters"][0]["last_error"]
    assert len(calls) == 3


def test_handlers_that_completed_are_not_rerun_on_redelivery(store):
    engine, clock, svc = store
    svc.place_order(_cmd("k", [("A", 1)]))
    done, flaky_calls = [], []

    def ok(event):
        done.append(event.event_id)

    def flaky(event):
        flaky_calls.append(event.event_id)
        if len(flaky_calls) == 1:
            raise RetryLater("not yet", delay_s=0)

    worker = OutboxWorker(engine, clock, [FunctionHandler("ok", frozenset({ORDER_PLACED}), ok),
                                          FunctionHandler("flaky", frozenset({ORDER_PLACED}), flaky)])
    worker.drain()
    assert len(done) == 1 and len(flaky_calls) == 2
    assert outbox_status(engine)["delivered"] == 1


def test_two_workers_never_process_the_same_event_at_once(store):
    engine, clock, svc = store
    for i in range(12):
        assert svc.place_order(_cmd(f"k{i}", [("A", 1)])).status_code == 201
    seen: list[str] = []
    lock = threading.Lock()

    def record(event):
        with lock:
            seen.append(event.event_id)

    workers = [OutboxWorker(engine, clock, [FunctionHandler("rec", frozenset({ORDER_PLACED}), record)],
                            batch_size=3) for _ in range(2)]
    threads = [threading.Thread(target=w.drain) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 12 and len(set(seen)) == 12


def test_a_concurrent_worker_overlaps_orders_but_keeps_each_orders_events_in_order(store):
    """``concurrency`` > 1: one batch's events for different orders run at the same time (their handlers mostly
    wait on other systems), while the events of one order still run one after another in the order written."""
    import time

    engine, clock, _ = store
    with engine.begin() as conn:
        for step in range(3):
            for agg in ("o1", "o2", "o3", "o4"):
                repo.enqueue_event(conn, ORDER_PLACED, agg, {"step": step}, clock.now())
    lock = threading.Lock()
    log: list[tuple[str, int, float, float]] = []
    running, peak = 0, 0

    def slow(event):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        start = time.monotonic()
        time.sleep(0.1)
        with lock:
            running -= 1
            log.append((event.aggregate_id, event.payload["step"], start, time.monotonic()))

    worker = OutboxWorker(engine, clock, [FunctionHandler("slow", frozenset({ORDER_PLACED}), slow)],
                          batch_size=50, concurrency=4)
    started = time.monotonic()
    assert worker.run_once() == 12
    wall = time.monotonic() - started
    worker.close()
    assert peak == 4 and wall < 0.9  # one after another would take 1.2 s
    for agg in ("o1", "o2", "o3", "o4"):
        mine = sorted((s, e, step) for a, step, s, e in log if a == agg)
        assert [step for _, _, step in mine] == [0, 1, 2]
        assert all(mine[i][1] <= mine[i + 1][0] for i in range(2))  # never two of one order at once
    assert outbox_status(engine)["delivered"] == 12


def test_worker_concurrency_must_be_positive(store):
    engine, clock, _ = store
    with pytest.raises(ValueError, match="concurrency"):
        OutboxWorker(engine, clock, [], concurrency=0)


def test_a_sold_out_refusal_records_each_short_line_for_backorder_frequency(store):
    from shopfloor.store.analytics_tables import stock_refusals

    engine, clock, svc = store
    res = svc.place_order(_cmd("k-short", [("A", 1), ("B", 9)]))
    assert res.status_code == 409
    replay = svc.place_order(_cmd("k-short", [("A", 1), ("B", 9)]))  # a replay is not a second refusal
    assert replay.status_code == 409
    with engine.connect() as conn:
        rows = conn.execute(select(stock_refusals.c.sku, stock_refusals.c.warehouse, stock_refusals.c.requested,
                                   stock_refusals.c.available, stock_refusals.c.at)).all()
    # Only B was short (9 wanted, 3 available); postal 94107 is served first by the west warehouse.
    assert [tuple(r) for r in rows] == [("B", "west", 9, 3, NOW)]
