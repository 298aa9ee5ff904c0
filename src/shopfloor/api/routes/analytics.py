"""Fulfillment and returns analytics (admin). Thin: the numbers are computed in the database."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from ...bootstrap import Container, build_fulfillment_analytics
from ...domain.errors import InvalidInput
from ..deps import get_container, require_scope

router = APIRouter()


class WarehouseOut(BaseModel):
    warehouse: str
    pick_pack_p50_h: float | None
    pick_pack_p90_h: float | None
    handoff_delay_p50_h: float | None
    split_shipment_rate: float | None
    backorder_rate: float | None
    inventory_age_p50_d: float | None
    pick_pack_orders: int
    orders: int


class SkuOut(BaseModel):
    sku: str
    return_rate: float | None
    returns_by_reason: dict[str, int]
    backorder_rate: float | None
    inventory_age_p50_d: float | None
    units_sold: int
    units_returned: int


class LaneOut(BaseModel):
    warehouse: str
    zone: str
    transit_p50_h: float | None
    transit_p90_h: float | None
    deliveries: int


class FulfillmentAnalyticsOut(BaseModel):
    since: str
    until: str
    warehouses: list[WarehouseOut]
    skus: list[SkuOut]
    lanes: list[LaneOut]


#: ``?days=30`` for the demo store: two British warehouses, one SKU with returns, lanes by destination country.
FULFILLMENT_ANALYTICS_EXAMPLE = {
    "since": "2026-11-01T10:15:00+00:00", "until": "2026-12-01T10:15:00+00:00",
    "warehouses": [
        {"warehouse": "gb-north", "pick_pack_p50_h": 5.2, "pick_pack_p90_h": 19.8, "handoff_delay_p50_h": 3.1,
         "split_shipment_rate": 0.04, "backorder_rate": 0.01, "inventory_age_p50_d": 24.0, "pick_pack_orders": 1180,
         "orders": 1212},
        {"warehouse": "gb-south", "pick_pack_p50_h": 4.1, "pick_pack_p90_h": 14.6, "handoff_delay_p50_h": 2.4,
         "split_shipment_rate": 0.03, "backorder_rate": 0.02, "inventory_age_p50_d": 18.5, "pick_pack_orders": 1766,
         "orders": 1810}],
    "skus": [
        {"sku": "85123A", "return_rate": 0.021, "returns_by_reason": {"damaged": 9, "not_as_described": 3},
         "backorder_rate": 0.0, "inventory_age_p50_d": 12.0, "units_sold": 566, "units_returned": 12}],
    "lanes": [
        {"warehouse": "gb-south", "zone": "GB", "transit_p50_h": 26.0, "transit_p90_h": 49.5, "deliveries": 402},
        {"warehouse": "gb-north", "zone": "GB", "transit_p50_h": 28.5, "transit_p90_h": 52.0, "deliveries": 311}],
}


@router.get("/v1/analytics/fulfillment", response_model=FulfillmentAnalyticsOut, tags=["analytics"],
            responses={200: {"content": {"application/json": {"example": FULFILLMENT_ANALYTICS_EXAMPLE}}}})
def fulfillment_analytics(
    days: int = Query(30, ge=1, description="Window length in days, ending now."),
    container: Container = Depends(get_container),
    _key: str = Depends(require_scope("admin")),
) -> dict:
    """Per warehouse: pick/pack p50/p90, handoff delay, split-shipment rate, backorder rate, inventory age; per
    SKU: return rate and reasons, backorder rate, inventory age; per lane: transit time by zone."""
    if days > container.settings.analytics_max_days:
        raise InvalidInput(f"days: at most {container.settings.analytics_max_days}",
                           [{"field": "days", "max": container.settings.analytics_max_days, "got": days}])
    until = container.clock.now()
    return build_fulfillment_analytics(container).report(until - timedelta(days=days), until).to_dict()
