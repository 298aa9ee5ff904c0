"""Availability and delivery promises.

``PromiseEngine.promise_for(sku, qty, country, postal_code, at=None)`` is the entry point; ``promises_for`` batches.
``build_promise_service`` wires it to the database; ``backtest.replay`` drives it through Olist-shaped history.
"""

from .engine import (
    DeliveryWindow,
    IncomingStock,
    InMemoryStats,
    NoIncomingStock,
    Promise,
    PromiseConfig,
    PromiseEngine,
    StatsSource,
    StockReader,
)

__all__ = [
    "DeliveryWindow",
    "IncomingStock",
    "InMemoryStats",
    "NoIncomingStock",
    "Promise",
    "PromiseConfig",
    "PromiseEngine",
    "StatsSource",
    "StockReader",
]
