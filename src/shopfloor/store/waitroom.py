"""What the waiting room reads from the order store: a product's units that can still be reserved."""

from __future__ import annotations

from sqlalchemy import Engine, bindparam, func, select

from .tables import stock

_AVAILABLE = select(func.coalesce(func.sum(stock.c.on_hand - stock.c.reserved), 0)).where(
    stock.c.sku == bindparam("b_sku"))


class StockLevelsReader:
    """:class:`shopfloor.waitroom.StockLevels` over the stock table (a read-only, deferred transaction)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def available(self, sku: str) -> int:
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            return int(conn.execute(_AVAILABLE, {"b_sku": sku}).scalar_one())
