"""What the game days (checkout, edge, regions) do alike around their load: the simulated payment processors'
environment they start from, and after the load the drain, the store checks and the processors' ledgers."""

from __future__ import annotations

import json
from typing import Any, Callable

from .checks import charge_anomalies, drain, live_authorizations_on_ended_orders, processor_ledger, store_checks
from .faults import LATENCY_MS


def simulator_env(seed: int) -> dict[str, str]:
    """The simulated processors and rate service answering in ~``LATENCY_MS`` each, seeded with ``seed``."""
    return {"SHOPFLOOR_PAYMENTS_SIM_FAULTS": json.dumps({name: {"latency_ms": LATENCY_MS}
                                                        for name in ("primary", "secondary", "rates")}),
            "SHOPFLOOR_PAYMENTS_SIM_SEED": str(seed)}


def drain_and_check(database_url: str, drain_timeout_s: float, hot_units: int, initial: dict[tuple[str, str], int],
                    say: Callable[[str], None] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Wait for the worker to drain the outbox (:func:`~.checks.drain`), then run the store checks once
    (:func:`~.checks.store_checks`, ``hot_units`` of the scarce SKU, ``initial`` stock); returns (drained, checks)."""
    from ..store.engine import make_engine

    engine = make_engine(database_url)
    try:
        drained = drain(engine, drain_timeout_s, say)
        checks = store_checks(engine, hot_units, initial)  # once, after the drain
    finally:
        engine.dispose()
    return drained, checks


def ledger_anomalies(app_url: str, key: str, processors: list[str],
                     ended_unpaid_orders: set[str]) -> tuple[list[dict[str, Any]], int, int, int]:
    """The processors' ledgers read through ``app_url``'s admin API, and what is wrong in them: (charges, double
    captures, double authorizations, live authorizations on orders that ended unpaid)."""
    charges = processor_ledger(app_url, key, processors)
    double_captures, double_auth = charge_anomalies(charges)
    return charges, double_captures, double_auth, live_authorizations_on_ended_orders(charges, ended_unpaid_orders)
