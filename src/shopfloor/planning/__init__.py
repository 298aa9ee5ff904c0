"""Planning: restock plans (and, alongside, capacity plans) plus the simulators that backtest them.

Each area exports its public names in its own block below; keep blocks independent so they merge cleanly.
"""

# --- restock ---
from .demand_model import HorizonErrorVariance  # noqa: F401
from .forecast_outlook import ForecastCache, PeriodicForecastModel, forecast_package_means  # noqa: F401
from .lead_time import DemandOutlook, EmpiricalDemand, NegBinomialDemand, fill_rate_base_stock  # noqa: F401
from .restock import (  # noqa: F401
    CatalogEntry,
    PolicyBook,
    ReplenishmentPolicy,
    RestockPlan,
    StockPosition,
    build_restock_plan,
    inventory_position,
    projected_stockout_day,
    round_order_quantity,
)
from .restock_service import RestockPlanner, outlooks_from_history  # noqa: F401
