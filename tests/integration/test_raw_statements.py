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
