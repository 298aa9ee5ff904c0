"""Fulfillment events in; per-warehouse, per-region and per-lane statistics out.

``FulfillmentEvent`` is one fact from a feed; ``FulfillmentStats.apply`` folds it into recency-weighted quantile
sketches (processing time, transit time per lane with broader fallbacks), cutoff behaviour, backlog, feed freshness
and calibration state. Pure Python, no I/O: ``shopfloor.store.promise`` persists it.
"""

from .sketch import DecayingCounter, DecayingHistogram
from .stats import (
    EVENT_TYPES,
    RETURN_REASONS,
    FulfillmentEvent,
    FulfillmentStats,
    OrderTrack,
    StatsConfig,
    blended_quantile,
    lane_keys,
    processing_keys,
    region_chain,
)

__all__ = [
    "EVENT_TYPES",
    "RETURN_REASONS",
    "DecayingCounter",
    "DecayingHistogram",
    "FulfillmentEvent",
    "FulfillmentStats",
    "OrderTrack",
    "StatsConfig",
    "blended_quantile",
    "lane_keys",
    "processing_keys",
    "region_chain",
]
