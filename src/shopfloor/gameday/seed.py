"""A store seeded for load runs (warehouses, ample stock, a scarce HOT SKU, an API key), and the guard that refuses
a database that already holds orders."""

from __future__ import annotations

def seed_bench_store(database_url: str, n_skus: int, hot_units: int) -> str:
    """Fresh schema, 3 warehouses, ``n_skus`` SKUs with ample stock, a HOT sku with ``hot_units``. Returns a key."""
    from datetime import datetime, timezone

    from ..store import orders_repo as repo
    from ..store.engine import make_engine
    from ..store.keys import create_api_key
    from ..store.migrate import upgrade_database

    upgrade_database(database_url)
    now = datetime.now(timezone.utc)
    engine = make_engine(database_url)
    with engine.begin() as conn:
        for wid, region, prefixes in (("us-west-1", "us-west", ["9", "8"]), ("us-east-1", "us-east", ["0", "1", "2"]),
                                      ("us-central-1", "us-central", ["3", "4", "5", "6", "7"])):
            repo.upsert_warehouse(conn, wid, region, "US", prefixes, now)
        for i in range(n_skus):
            sku = f"SKU{i:05d}"
            repo.upsert_sku(conn, sku, f"Bench item {i}", f"cat{i % 20}", 500 + i, "USD", now)
            for wid in ("us-west-1", "us-east-1", "us-central-1"):
                repo.set_on_hand(conn, sku, wid, 1_000_000, now)
        _add_sku(conn, "HOT", "Flash sale item", "promo", 999, "us-west-1", hot_units, now)
    _, key = create_api_key(engine, ["storefront", "admin"], "bench", now)
    engine.dispose()
    return key


def seed_sku(database_url: str, sku: str, name: str, category: str, price_cents: int, warehouse: str,
             units: int) -> None:
    """One more SKU (USD) with ``units`` on hand in ``warehouse``, in a store already seeded."""
    from datetime import datetime, timezone

    from ..store.engine import make_engine

    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            _add_sku(conn, sku, name, category, price_cents, warehouse, units, datetime.now(timezone.utc))
    finally:
        engine.dispose()


def _add_sku(conn, sku: str, name: str, category: str, price_cents: int, warehouse: str, units: int, now) -> None:
    from ..store import orders_repo as repo

    repo.upsert_sku(conn, sku, name, category, price_cents, "USD", now)
    repo.set_on_hand(conn, sku, warehouse, units, now)


def ensure_fresh_store(database_url: str) -> None:
    """Refuse a database that already holds orders: the lost/duplicate checks count every order in it, and the hot
    SKU's earlier reservations would make its phase sell nothing."""
    from sqlalchemy import func, inspect, select

    from ..store.engine import make_engine
    from ..store.tables import orders

    engine = make_engine(database_url)
    try:
        if inspect(engine).has_table(orders.name):
            with engine.connect() as conn:
                n = conn.execute(select(func.count()).select_from(orders)).scalar()
            if n:
                raise ValueError(f"the benchmark database already holds {n} orders; point it at a fresh, empty "
                                 "database (one per run)")
    finally:
        engine.dispose()
