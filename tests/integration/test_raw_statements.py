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


def test_the_checkouts_hook_skips_the_track_look_up_and_stores_the_same_track(db_url):
    """``new_orders=True`` (the checkout writer's hook: orders its own transaction created) reads no track and
    stores what the look-up path stores for a new order; the track text is the standard library's JSON."""
    import json
    from dataclasses import fields

    from shopfloor.fulfillment.stats import OrderTrack, to_hours
    from shopfloor.store.promise import SqlFulfillmentStore
    from shopfloor.store.promise_tables import fulfillment_orders

    class Window:
        confidence = 0.9

        def attach_to(self, track: OrderTrack) -> None:
            track.warehouse = "w1"
            track.placed_h = to_hours(NOW) + 0.1
            track.promise_conf = self.confidence
            track.promise_p50_h = 72.25
            track.promise_due_h = track.promise_eta_h = to_hours(NOW) + 72.0

    engine = make_engine(db_url)
    store = SqlFulfillmentStore(engine)
    try:
        with engine.begin() as conn:
            store.record_promises_in(conn, [("ord_a", Window())], NOW)
        with engine.begin() as conn:
            raw_cursor_sql: list[str] = []
            orig = conn.connection.cursor

            def spying_cursor():
                cur = orig()

                class Spy:
                    def __getattr__(self, name):
                        return getattr(cur, name)

                    def execute(self, sql, *args):
                        raw_cursor_sql.append(sql)
                        return cur.execute(sql, *args)

                    def executemany(self, sql, *args):
                        raw_cursor_sql.append(sql)
                        return cur.executemany(sql, *args)

                return Spy()

            conn.connection.cursor = spying_cursor
            try:
                store.record_promises_in(conn, [("ord_b", Window())], NOW, new_orders=True)
            finally:
                conn.connection.cursor = orig
        assert not [sql for sql in raw_cursor_sql if sql.lstrip().upper().startswith("SELECT")
                    and "fulfillment_orders" in sql]
        assert [sql for sql in raw_cursor_sql if "fulfillment_orders" in sql]  # the track was still written
        with engine.connect() as conn:
            rows = {r.order_id: r.track for r in conn.execute(select(fulfillment_orders))}
        a, b = json.loads(rows["ord_a"]), json.loads(rows["ord_b"])
        assert a.pop("order_id") == "ord_a" and b.pop("order_id") == "ord_b"
        assert a == b
        track = OrderTrack.from_json(rows["ord_b"])
        assert rows["ord_b"] == json.dumps({f.name: getattr(track, f.name) for f in fields(OrderTrack)},
                                           separators=(",", ":"))
    finally:
        engine.dispose()


def test_a_raw_savepoint_rolled_back_undoes_only_what_was_written_inside_it(db_url):
    from shopfloor.store.raw import begin_savepoint

    engine = make_engine(db_url)
    raw = RawStatements(lambda name: insert(outbox))
    try:
        with engine.begin() as conn:
            raw.run(conn, "outbox", [event("evt_before", {})])
            kept = begin_savepoint(conn)
            raw.run(conn, "outbox", [event("evt_kept", {})])
            kept.commit()
            undone = begin_savepoint(conn)
            raw.run(conn, "outbox", [event("evt_undone", {})])
            inner = begin_savepoint(conn)
            raw.run(conn, "outbox", [event("evt_inner", {})])
            inner.commit()
            undone.rollback()
            raw.run(conn, "outbox", [event("evt_after", {})])
        with engine.connect() as conn:
            ids = sorted(r.event_id for r in conn.execute(select(outbox.c.event_id)))
        assert ids == ["evt_after", "evt_before", "evt_kept"]
    finally:
        engine.dispose()


def test_a_failed_statement_inside_a_raw_savepoint_leaves_the_transaction_usable_after_its_rollback(db_url):
    from shopfloor.store.raw import begin_savepoint

    engine = make_engine(db_url)
    raw = RawStatements(lambda name: insert(outbox))
    try:
        with engine.begin() as conn:
            raw.run(conn, "outbox", [event("evt_1", {})])
            sp = begin_savepoint(conn)
            with pytest.raises(IntegrityError):
                raw.run(conn, "outbox", [event("evt_1", {})])  # PostgreSQL aborts the transaction here
            sp.rollback()
            raw.run(conn, "outbox", [event("evt_2", {})])
        with engine.connect() as conn:
            assert sorted(r.event_id for r in conn.execute(select(outbox.c.event_id))) == ["evt_1", "evt_2"]
    finally:
        engine.dispose()


def test_rows_that_share_a_datetime_and_rows_that_do_not_each_store_their_own(db_url):
    engine = make_engine(db_url)
    raw = RawStatements(lambda name: insert(outbox))
    later = NOW + timedelta(minutes=5)
    rows = [event("evt_1", {}), event("evt_2", {}), {**event("evt_3", {}), "created_at": later},
            event("evt_4", {})]
    try:
        with engine.begin() as conn:
            raw.run(conn, "outbox", rows)
        with engine.connect() as conn:
            created = {r.event_id: r.created_at for r in conn.execute(select(outbox.c.event_id, outbox.c.created_at))}
        assert created == {"evt_1": NOW, "evt_2": NOW, "evt_3": later, "evt_4": NOW}
    finally:
        engine.dispose()


def test_in_lists_of_any_length_find_the_same_rows_and_compile_only_a_few_shapes(db_url):
    from shopfloor.store import orders_repo as repo
    from shopfloor.store.raw import in_list
    from tests.support.store import seed

    engine = make_engine(db_url)
    skus = [f"S{i:03d}" for i in range(70)]
    seed(engine, {"w1": ("us-west", "US", ["9"])}, {s: 100 + i for i, s in enumerate(skus)},
         {(s, "w1"): 1 for s in skus})
    try:
        with engine.begin() as conn:
            for n in range(1, 71):
                assert repo.load_prices(conn, skus[:n]) == {s: (100 + i, "USD") for i, s in enumerate(skus[:n])}
        shapes = {len(in_list(list(range(n)))) for n in range(1, 71)}
        assert shapes == {1, 2, 4, 8, 16, 32, 64, 128}
        assert in_list(["a", "b", "c"]) == ["a", "b", "c", "c"] and in_list(["a"]) == ["a"]
    finally:
        engine.dispose()
