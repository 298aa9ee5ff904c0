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


@router.get("/v1/analytics/fulfillment", response_model=FulfillmentAnalyticsOut, tags=["analytics"])
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
