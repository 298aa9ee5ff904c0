"""Hot writes on the DBAPI cursor (store/raw.py) store exactly what SQLAlchemy's own execution stores, and fail
with SQLAlchemy's exceptions, so the checkout writer's retries and the readers see no difference."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from shopfloor.store.engine import make_engine
from shopfloor.store.raw import RawStatements
from shopfloor.store.tables import outbox
from tests.support.store import NOW


def event(event_id, payload):
    return dict(event_id=event_id, type="OrderPlaced", aggregate_id="ord_1", payload=payload, status="pending",
                attempts=0, available_at=NOW + timedelta(seconds=3), created_at=NOW)


def test_a_raw_insert_stores_the_same_row_as_sqlalchemy(db_url):
    engine = make_engine(db_url)
    raw = RawStatements(lambda name: insert(outbox))
    payload = {"order_id": "ord_1", "lines": [{"sku": "A1", "qty": 2}], "note": None, "price": 12.5}
    try:
        with engine.begin() as conn:
            conn.execute(insert(outbox), [event("evt_sa", payload)])
            raw.run(conn, "outbox", [event("evt_raw1", payload), event("evt_raw2", {"x": 1})])
        with engine.connect() as conn:
            rows = {r.event_id: r for r in conn.execute(select(outbox))}
        sa, r1 = rows["evt_sa"], rows["evt_raw1"]
        for col in ("type", "aggregate_id", "payload", "status", "attempts", "available_at", "created_at"):
            assert getattr(r1, col) == getattr(sa, col), col
        assert r1.available_at.tzinfo is not None and rows["evt_raw2"].payload == {"x": 1}
    finally:
        engine.dispose()


def test_a_raw_insert_raises_sqlalchemys_integrity_error_and_the_transaction_rolls_back(db_url):
    engine = make_engine(db_url)
    raw = RawStatements(lambda name: insert(outbox))
    try:
        with pytest.raises(IntegrityError):
            with engine.begin() as conn:
                raw.run(conn, "outbox", [event("evt_1", {}), event("evt_1", {})])
        with engine.connect() as conn:
            assert conn.execute(select(outbox)).all() == []
    finally:
        engine.dispose()


def test_the_raw_guarded_reservation_reserves_only_what_is_available(db_url):
    from shopfloor.domain.stock import Allocation
    from shopfloor.store import orders_repo as repo
    from shopfloor.store.tables import stock
    from tests.support.store import seed

    engine = make_engine(db_url)
    seed(engine, {"w1": ("us-west", "US", ["9"])}, {"A1": 100}, {("A1", "w1"): 5})
    try:
        with engine.begin() as conn:
            assert repo.try_reserve(conn, [Allocation("A1", "w1", 3)]) is None
            miss = Allocation("A1", "w1", 3)
            assert repo.try_reserve(conn, [miss]) == miss  # 2 left: the guard refuses, nothing changes
            assert repo.try_reserve(conn, [Allocation("A1", "w1", 2)]) is None
        with engine.connect() as conn:
            assert conn.execute(select(stock.c.reserved).where(stock.c.sku == "A1")).scalar() == 5
    finally:
        engine.dispose()


def test_a_database_left_off_the_raw_writer_runs_the_same_statements_through_sqlalchemy(db_url, monkeypatch):
    from shopfloor.store import raw as raw_module

    engine = make_engine(db_url)
    raw = RawStatements(lambda name: insert(outbox))
    monkeypatch.setattr(raw_module, "_RAW_DIALECTS", set())  # restored after the test
    used: list[str] = []
    monkeypatch.setattr(raw_module.RawStatement, "executemany", lambda *a: used.append("raw"))
    try:
        with engine.begin() as conn:
            raw.run(conn, "outbox", [event("evt_a", {"x": 1}), event("evt_b", {"x": 2})])
        with engine.connect() as conn:
            rows = {r.event_id: r.payload for r in conn.execute(select(outbox))}
        assert rows == {"evt_a": {"x": 1}, "evt_b": {"x": 2}} and used == []
        raw_module.use_raw_writer_on([engine.dialect.name])
        with engine.begin() as conn:
            raw.run(conn, "outbox", [event("evt_c", {})])
        assert used == ["raw"]
    finally:
        engine.dispose()


def test_the_raw_writer_setting_names_only_known_databases():
    from pydantic import ValidationError

    from shopfloor.config import Settings

    assert Settings(store_raw_writer="sqlite").store_raw_writer == "sqlite"
    assert Settings(store_raw_writer="").store_raw_writer == ""
    with pytest.raises(ValidationError, match="store_raw_writer"):
        Settings(store_raw_writer="mysql")


def test_the_writers_reads_on_the_dbapi_cursor_find_what_sqlalchemy_finds_and_skip_sqlalchemys_execution(db_url):
    from sqlalchemy import event as sa_event

    from shopfloor.store import orders_repo as repo
    from shopfloor.store.tables import skus, stock
    from tests.support.store import seed

    engine = make_engine(db_url)
    seed(engine, {"w1": ("us-west", "US", ["9"]), "w2": ("us-east", "US", ["1"])}, {"A1": 100, "B2": 250},
         {("A1", "w1"): 5, ("A1", "w2"): 7, ("B2", "w1"): 1})
    through_sqlalchemy: list[str] = []
    sa_event.listen(engine, "before_cursor_execute", lambda *a: through_sqlalchemy.append(a[2]))
    try:
        with engine.begin() as conn:
            repo.save_idempotency_record(conn, "k:checkout", "i1", "h1", 201, '{"ok": 1}', NOW)
        through_sqlalchemy.clear()
        with engine.begin() as conn:
            prices = repo.load_prices(conn, ["A1", "B2", "ZZ"])
            levels = repo.load_levels(conn, ["A1", "B2"])
            records = repo.get_idempotency_records(conn, [("k:checkout", "i1"), ("k:checkout", "nope")])
            sa_prices = {r.sku: (r.price, r.currency) for r in conn.execute(select(skus.c.sku, skus.c.price,
                                                                                   skus.c.currency))}
            sa_levels = conn.execute(select(stock.c.sku, stock.c.warehouse, stock.c.on_hand, stock.c.reserved)).all()
        assert prices == {k: v for k, v in sa_prices.items() if k in ("A1", "B2")}
        assert sorted((lv.sku, lv.warehouse, lv.on_hand, lv.reserved) for lv in levels) == sorted(
            tuple(r) for r in sa_levels)
        assert list(records) == [("k:checkout", "i1")]
        assert records[("k:checkout", "i1")].request_hash == "h1" and records[("k:checkout", "i1")].status_code == 201
        # Only BEGIN and the two comparison SELECTs went through SQLAlchemy: the writer's three reads did not.
        assert not [sql for sql in through_sqlalchemy if "idempotency_keys" in sql or " IN " in sql]
    finally:
        engine.dispose()


def test_the_checkouts_promise_bookkeeping_stores_what_the_one_at_a_time_path_stores(db_url):
    from shopfloor.fulfillment.stats import OrderTrack, to_hours
    from shopfloor.store.promise import SqlFulfillmentStore
    from shopfloor.store.promise_tables import fulfillment_orders, fulfillment_stats

    class Window:
        confidence = 0.9

        def __init__(self, days: int) -> None:
            self.days = days

        def attach_to(self, track: OrderTrack) -> None:  # what a DeliveryWindow sets
            track.warehouse = "w1"
            track.placed_h = to_hours(NOW)
            track.promise_conf = self.confidence
            track.promise_p50_h = 24.0 * self.days
            track.promise_due_h = track.promise_eta_h = to_hours(NOW) + 24.0 * self.days

    engine = make_engine(db_url)
    store = SqlFulfillmentStore(engine)
    try:
        with engine.begin() as conn:
            store.record_promises_in(conn, [("ord_1", Window(3)), ("ord_2", Window(5))], NOW)
        with engine.begin() as conn:
            store.record_promises_in(conn, [("ord_3", Window(4))], NOW)
        store.record_promise("ord_4", Window(2), NOW)
        with engine.connect() as conn:
            tracks = {r.order_id: OrderTrack.from_json(r.track) for r in conn.execute(select(fulfillment_orders))}
            stats_seqs = [r.seq for r in conn.execute(select(fulfillment_stats.c.seq))]
        assert sorted(tracks) == ["ord_1", "ord_2", "ord_3", "ord_4"]
        assert tracks["ord_2"].promise_p50_h == 120.0 and tracks["ord_3"].promise_conf == 0.9
        assert tracks["ord_4"].promise_due_h == to_hours(NOW) + 48.0
        assert store.current_seq() == 3 and all(seq <= 3 for seq in stats_seqs)  # one bump per transaction
    finally:
        engine.dispose()
