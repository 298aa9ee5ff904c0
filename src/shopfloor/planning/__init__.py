"""Planning: restock plans (and, alongside, capacity plans) plus the simulators that backtest them.

Names are resolved on first use (PEP 562): importing ``shopfloor.planning.purchase_orders`` from the API or the
store must not load scipy, pandas and LightGBM into every server process (about 250 MB) when only a plan request
needs them.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    # --- restock ---
    "DemandOutlook": "lead_time",
    "EmpiricalDemand": "lead_time",
    "NegBinomialDemand": "lead_time",
    "fill_rate_base_stock": "lead_time",
    "CatalogEntry": "restock",
    "DEFAULT_ORDER_CAP": "restock",
    "check_order_cap": "restock",
    "order_shortfall": "restock",
    "PolicyBook": "restock",
    "ReplenishmentPolicy": "restock",
    "RestockPlan": "restock",
    "StockPosition": "restock",
    "build_restock_plan": "restock",
    "inventory_position": "restock",
    "projected_stockout_day": "restock",
    "round_order_quantity": "restock",
    "check_fill_rate": "restock",
    "EngineTuning": "restock_engine",
    "RestockEngine": "restock_engine",
    "ReplenishmentAgent": "restock_agent",
    "RestockPlanner": "restock_service",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
