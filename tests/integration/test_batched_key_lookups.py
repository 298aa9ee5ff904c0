"""Batched look-ups on composite primary keys (idempotency records, processed outbox events): exact pairs, and an
index search rather than a scan of a table that grows with every order."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import text

from shopfloor.store import orders_repo as repo
from shopfloor.store.engine import make_engine

NOW = datetime(2026, 11, 27, 12, tzinfo=timezone.utc)


def test_batched_lookup_returns_exactly_the_pairs_asked_for(db_url):
    engine = make_engine(db_url)
    with engine.begin() as conn:
        for scope in ("key_a:checkout", "key_b:checkout"):
            for k in ("k1", "k2"):
                repo.save_idempotency_record(conn, scope, k, f"h-{scope}-{k}", 201, "{}", NOW)
    with engine.connect() as conn:
        got = repo.get_idempotency_records(conn, [("key_a:checkout", "k1"), ("key_b:checkout", "k2"),
                                                  ("key_a:checkout", "missing")])
    engine.dispose()
    assert sorted(got) == [("key_a:checkout", "k1"), ("key_b:checkout", "k2")]
    assert got[("key_b:checkout", "k2")].request_hash == "h-key_b:checkout-k2"


def test_batched_lookup_searches_the_primary_key_instead_of_scanning(tmp_path):
    from shopfloor.store.migrate import upgrade_database

    url = f"sqlite:///{tmp_path / 'plan.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    stmt = repo._build_read(("idempotency", 1, 2)).params(b_s0="key_a:checkout", b_k0="k1", b_k1="k2")
    sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))
    engine.dispose()
    assert "SEARCH" in plan and "scope=? AND key=?" in plan, plan


def test_the_outbox_workers_processed_event_lookup_searches_the_primary_key(tmp_path):
    from shopfloor.orders.outbox import processed_lookup
    from shopfloor.store.migrate import upgrade_database

    url = f"sqlite:///{tmp_path / 'plan.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    sql = str(processed_lookup(["capture", "mail"], ["evt_1", "evt_2"]).compile(
        engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))
    engine.dispose()
    assert "SEARCH" in plan and "handler=? AND event_id=?" in plan, plan
