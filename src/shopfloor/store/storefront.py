"""Catalog reads for the storefront: one product with its available units, full-text search (SQLite FTS5 or
PostgreSQL ``tsvector``, behind the same method) with keyset pagination, and in-stock alternatives."""

from __future__ import annotations

from typing import Sequence

from sqlalchemy import Engine, bindparam, func, select, text

from ..storefront.service import ProductRecord
from .tables import skus, stock

_available = func.coalesce(func.sum(stock.c.on_hand - stock.c.reserved), 0).label("available")
_columns = (skus.c.sku, skus.c.name, skus.c.category, skus.c.price, skus.c.currency, _available)


def _record(row) -> ProductRecord:
    return ProductRecord(row.sku, row.name, row.category, int(row.price), row.currency, int(row.available))


class SqlCatalogReader:
    """``engine`` is the read engine: the replica when ``SHOPFLOOR_READ_DATABASE_URL`` is set. It never writes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._one = (select(*_columns).select_from(skus.outerjoin(stock, stock.c.sku == skus.c.sku))
                     .where(skus.c.sku == bindparam("b_sku"))
                     .group_by(skus.c.sku, skus.c.name, skus.c.category, skus.c.price, skus.c.currency))

    def _connect(self):
        return self.engine.connect().execution_options(sqlite_begin="DEFERRED")

    def product(self, sku: str) -> ProductRecord | None:
        with self._connect() as conn:
            row = conn.execute(self._one, {"b_sku": sku}).first()
        return _record(row) if row is not None else None

    def search(self, terms: Sequence[str], category: str | None, after: str | None,
               limit: int) -> list[ProductRecord]:
        stmt = (select(*_columns).select_from(skus.outerjoin(stock, stock.c.sku == skus.c.sku))
                .group_by(skus.c.sku, skus.c.name, skus.c.category, skus.c.price, skus.c.currency)
                .order_by(skus.c.sku).limit(limit))
        params: dict[str, object] = {}
        if terms:
            if self._postgres:
                # Every word as a prefix, all required: 'mug & blu:*' style, built from \w+ words only.
                stmt = stmt.where(text("to_tsvector('simple', skus.name || ' ' || skus.category) "
                                       "@@ to_tsquery('simple', :tsq)"))
                params["tsq"] = " & ".join(f"{t}:*" for t in terms)
            else:
                stmt = stmt.where(skus.c.sku.in_(text("SELECT sku FROM sku_search WHERE sku_search MATCH :fts")))
                params["fts"] = " ".join(f'"{t}"*' for t in terms)
        if category:
            stmt = stmt.where(skus.c.category == category)
        if after:
            stmt = stmt.where(skus.c.sku > after)
        with self._connect() as conn:
            return [_record(r) for r in conn.execute(stmt, params)]

    def in_stock_alternatives(self, sku: str, category: str, min_available: int,
                              limit: int) -> list[ProductRecord]:
        if limit <= 0:
            return []
        stmt = (select(*_columns).select_from(skus.join(stock, stock.c.sku == skus.c.sku))
                .where(skus.c.category == category, skus.c.sku != sku)
                .group_by(skus.c.sku, skus.c.name, skus.c.category, skus.c.price, skus.c.currency)
                .having(func.sum(stock.c.on_hand - stock.c.reserved) >= min_available)
                .order_by(_available.desc(), skus.c.sku).limit(limit))
        with self._connect() as conn:
            return [_record(r) for r in conn.execute(stmt)]


class SqlPageSource:
    """What product pages depend on, read from the primary for the edge purger: available units per (sku,
    warehouse) and each SKU's name and price."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def stock_rows(self):
        from ..edge.purge import StockRow

        with self._connect() as conn:
            return [StockRow(r.sku, r.warehouse, int(r.available)) for r in conn.execute(
                select(stock.c.sku, stock.c.warehouse, (stock.c.on_hand - stock.c.reserved).label("available")))]

    def price_rows(self):
        from ..edge.purge import PriceRow

        with self._connect() as conn:
            return [PriceRow(r.sku, r.name, int(r.price), r.currency)
                    for r in conn.execute(select(skus.c.sku, skus.c.name, skus.c.price, skus.c.currency))]

    def _connect(self):
        return self.engine.connect().execution_options(sqlite_begin="DEFERRED")
