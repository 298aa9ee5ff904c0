"""The promise's stock reader answers the checkout's one-SKU read on a few kept connections: each read sees the
latest committed stock, the connections are reused and bounded, and closing the reader closes them."""

from __future__ import annotations

import threading

from shopfloor.store import orders_repo as repo
from shopfloor.store.engine import make_engine
from shopfloor.store.promise import SqlStockReader
from tests.support.store import NOW, seed


def levels(reader, sku):
    return {lv.warehouse: (lv.on_hand, lv.reserved) for lv in reader.stock_levels(sku)}


def test_each_read_sees_the_latest_committed_stock_on_a_reused_connection(db_url):
    engine = make_engine(db_url)
    seed(engine, {"w1": ("us-west", "US", ["9"])}, {"A1": 100}, {("A1", "w1"): 5})
    reader = SqlStockReader(engine)
    try:
        assert levels(reader, "A1") == {"w1": (5, 0)}
        with engine.begin() as conn:
            repo.set_on_hand(conn, "A1", "w1", 9, NOW)
        assert levels(reader, "A1") == {"w1": (9, 0)}  # no snapshot kept open between reads
        assert levels(reader, "NOPE") == {}
        assert reader._n_kept == 1 and len(reader._idle) == 1
    finally:
        reader.close()
        engine.dispose()
    assert reader._n_kept == 0


def test_concurrent_reads_use_at_most_the_kept_connections_and_fall_back_to_the_pool(db_url):
    engine = make_engine(db_url)
    seed(engine, {"w1": ("us-west", "US", ["9"])}, {"A1": 100}, {("A1", "w1"): 5})
    reader = SqlStockReader(engine, kept_connections=2)
    seen, errors = [], []

    def work():
        try:
            for _ in range(30):
                seen.append(levels(reader, "A1"))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and len(seen) == 180 and all(s == {"w1": (5, 0)} for s in seen)
        assert 1 <= reader._n_kept <= 2
    finally:
        reader.close()
        engine.dispose()


def test_a_broken_kept_connection_is_dropped_and_the_read_still_answers(db_url):
    engine = make_engine(db_url)
    seed(engine, {"w1": ("us-west", "US", ["9"])}, {"A1": 100}, {("A1", "w1"): 5})
    reader = SqlStockReader(engine)
    try:
        levels(reader, "A1")
        reader._idle[0].close()  # the server went away, say
        assert levels(reader, "A1") == {"w1": (5, 0)}
        assert reader._n_kept == 0
    finally:
        reader.close()
        engine.dispose()
