"""Fulfillment events in; per-warehouse, per-region and per-lane statistics out.

``FulfillmentEvent`` is one fact from a feed; ``FulfillmentStats.apply`` folds it into recency-weighted quantile
sketches (processing time, transit time per lane with broader fallbacks), cutoff behaviour, backlog, feed freshness
and calibration state. Pure Python, no I/O: ``shopfloor.store.promise`` persists it.

``EventIn`` is what a valid event is as a feed sends it (the ingest API's body and ``shopfloor fulfillment import``'s
rows are both checked with it, ``EventWindow`` bounding its times around the clock); ``EventIn.to_event`` gives the
``FulfillmentEvent``.
"""

from .events import (
    EVENT_FIELDS,
    REQUIRED_FIELDS,
    RETURN_QTY_MAX,
    EventIn,
    EventWindow,
    OutOfWindow,
)
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
    "EVENT_FIELDS",
    "EVENT_TYPES",
    "REQUIRED_FIELDS",
    "RETURN_QTY_MAX",
    "RETURN_REASONS",
    "DecayingCounter",
    "DecayingHistogram",
    "EventIn",
    "EventWindow",
    "FulfillmentEvent",
    "FulfillmentStats",
    "OrderTrack",
    "OutOfWindow",
    "StatsConfig",
    "blended_quantile",
    "lane_keys",
    "processing_keys",
    "region_chain",
]
