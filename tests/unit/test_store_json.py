"""JSON columns are (de)serialised with orjson, falling back to the standard library for what orjson refuses."""

from __future__ import annotations

import math

import sqlalchemy as sa

from shopfloor.store.engine import json_dumps, json_loads, make_engine


def test_round_trip_matches_the_standard_library_for_ordinary_documents():
    doc = {"order_id": "ord_1", "lines": [{"sku": "A", "qty": 2}], "total": 1299, "ok": True, "note": None,
           "ratio": 0.25, "name": "Zoë"}
    assert json_loads(json_dumps(doc)) == doc


def test_values_orjson_refuses_still_store():
    big = {"n": 2**70}
    assert json_loads(json_dumps(big)) == big  # beyond 64 bits: the standard library writes it
    assert json_loads(json_dumps({1: "a"})) == {"1": "a"}  # non-string keys become strings, as before


def test_nan_written_by_the_old_encoder_still_reads():
    assert math.isnan(json_loads('{"x": NaN}')["x"])


def test_engines_use_them_for_json_columns(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'j.db'}")
    meta = sa.MetaData()
    t = sa.Table("docs", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("doc", sa.JSON))
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(t.insert(), [{"id": 1, "doc": {"n": 2**70, "s": "x"}}])
        conn.exec_driver_sql("INSERT INTO docs (id, doc) VALUES (2, '{\"x\": NaN}')")
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.select(t.c.id, t.c.doc)).all())
    engine.dispose()
    assert rows[1] == {"n": 2**70, "s": "x"}
    assert math.isnan(rows[2]["x"])


def test_sqlite_engines_hand_out_the_connection_returned_last(tmp_path):
    """Each SQLite connection has its own page cache, dropped whenever another connection wrote since its last
    transaction: the pool hands the most recently returned connection out again (the writer keeps a warm cache)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'lifo.db'}")
    try:
        first, second = engine.raw_connection(), engine.raw_connection()
        first_driver, second_driver = first.driver_connection, second.driver_connection
        assert first_driver is not second_driver
        first.close()
        second.close()  # returned last
        again = engine.raw_connection()
        assert again.driver_connection is second_driver
        again.close()
    finally:
        engine.dispose()
