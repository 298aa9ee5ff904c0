"""Fulfillment and returns analytics over a window: the shapes, the definitions, and the port that computes them.

The numbers are computed in the database (``shopfloor.store.analytics``); this module says what they mean, so that
the API, the control tower and the dashboard read one definition:

* ``pick_pack`` (hours): from the order's start (``placed_at``, else its ``approved`` event) to its ``packed``
  event; for feeds that send no ``packed`` event, to its ``handed_to_carrier`` event. Counted for orders packed
  (or handed over) inside the window.
* ``handoff_delay`` (hours): from ``packed`` to ``handed_to_carrier``, for orders handed over inside the window.
* ``transit`` (hours) per lane (warehouse and destination zone: the event's region, else its country): from
  ``handed_to_carrier`` to ``delivered``, for orders delivered inside the window.
* Percentiles interpolate linearly between the two nearest ranks (PostgreSQL's ``percentile_cont``).
* ``split_shipment_rate``: of the orders placed in the window (declined and cancelled ones left out) with a line
  from the warehouse, the share shipped from more than one warehouse.
* ``backorder_rate``: lines refused for stock / (lines refused + lines ordered), in the window; per warehouse a
  refusal counts against the warehouse that serves the destination.
* ``return_rate``: units returned in the window / units ordered in the window; ``returns_by_reason`` counts the
  returned units by reason, most frequent first.
* ``inventory_age_p50_d`` (days): first in, first out, the units on hand are the most recent arrivals (stock
  receipts); the age, at the end of the window, of the median unit on hand. Units on hand that no receipt covers
  have no known age and are left out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol

#: Return reasons that point at the listing (size guide, copy, pictures) rather than the product or the carrier.
LISTING_REASONS = ("fit", "not_as_described")


@dataclass(frozen=True)
class WarehouseMeasures:
    warehouse: str
    pick_pack_p50_h: float | None
    pick_pack_p90_h: float | None
    handoff_delay_p50_h: float | None
    split_shipment_rate: float | None
    backorder_rate: float | None
    inventory_age_p50_d: float | None
    pick_pack_orders: int = 0
    orders: int = 0


@dataclass(frozen=True)
class LaneMeasures:
    warehouse: str
    zone: str
    transit_p50_h: float | None
    transit_p90_h: float | None
    deliveries: int


@dataclass(frozen=True)
class SkuMeasures:
    sku: str
    return_rate: float | None
    returns_by_reason: dict[str, int]
    backorder_rate: float | None
    inventory_age_p50_d: float | None
    units_sold: int = 0
    units_returned: int = 0

    def listing_return_rate(self) -> float | None:
        """Units returned for listing reasons (``fit``, ``not_as_described``) over units sold."""
        if not self.units_sold:
            return None
        return sum(self.returns_by_reason.get(r, 0) for r in LISTING_REASONS) / self.units_sold


@dataclass(frozen=True)
class FulfillmentReport:
    since: datetime
    until: datetime
    warehouses: list[WarehouseMeasures] = field(default_factory=list)
    skus: list[SkuMeasures] = field(default_factory=list)
    lanes: list[LaneMeasures] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"since": self.since.isoformat(), "until": self.until.isoformat(),
                "warehouses": [asdict(w) for w in self.warehouses],
                "skus": [asdict(s) for s in self.skus],
                "lanes": [asdict(lane) for lane in self.lanes]}


class FulfillmentAnalytics(Protocol):
    """Computes a :class:`FulfillmentReport` for ``[since, until)`` (implemented in the store, in SQL)."""

    def report(self, since: datetime, until: datetime) -> FulfillmentReport: ...
