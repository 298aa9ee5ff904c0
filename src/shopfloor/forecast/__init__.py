"""Demand forecasting: probabilistic daily forecasts, rolling-origin backtests and accuracy metrics.

Public API (everything else is internal)::

    forecast_demand(history, horizon, future=None, model="auto")   -> unique_id, ds, mean, q_0.005 .. q_0.995
    forecast_distribution(history, horizon, future=None, ...)      -> DemandDistribution (mean + NB dispersion,
                                                                      .sample_paths(), .lead_time_demand())
    backtest(history, BacktestSpec(...), models=("auto",))          -> JSON-ready dict incl. baselines
    evaluate(forecast, actual, train)                               -> RMSSE, dollar-weighted RMSSE, SPL, coverage
"""

from __future__ import annotations

from .backtest import BacktestSpec, backtest, conformal_baselines, cutoffs_for
from .demand import DEFAULT_MODEL, ForecastConfig, forecast_demand, forecast_distribution, point_forecast
from .distribution import DemandDistribution, DispersionConfig, estimate_dispersion, nb_quantiles
from .frames import (
    QUANTILE_COLUMNS,
    QUANTILES,
    ForecastInputError,
    covariate_columns,
    read_frame,
    validate_future,
    validate_history,
    write_frame,
)
from .metrics import dollar_weights, evaluate, per_series_scores, pinball, series_scales, summarize
from .models import MODEL_NAMES, LGBMConfig

__all__ = [
    "DEFAULT_MODEL",
    "MODEL_NAMES",
    "QUANTILES",
    "QUANTILE_COLUMNS",
    "BacktestSpec",
    "DemandDistribution",
    "DispersionConfig",
    "ForecastConfig",
    "ForecastInputError",
    "LGBMConfig",
    "backtest",
    "conformal_baselines",
    "covariate_columns",
    "cutoffs_for",
    "dollar_weights",
    "estimate_dispersion",
    "evaluate",
    "forecast_demand",
    "forecast_distribution",
    "nb_quantiles",
    "per_series_scores",
    "pinball",
    "point_forecast",
    "read_frame",
    "series_scales",
    "summarize",
    "validate_future",
    "validate_history",
    "write_frame",
]
