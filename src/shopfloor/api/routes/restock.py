"""Restock HTTP routes: purchase orders and the restock plan. Thin: validation here, logic in planning/store."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from ...bootstrap import Container, build_restock_planner
from ...domain.errors import InvalidInput, UnknownSku
from ...planning.purchase_orders import PurchaseOrderIn
from ...store.restock import RestockRepository
from ..deps import IDENT_PATTERN, get_container, require_scope
from ..fields import UtcDatetime, years_between

router = APIRouter(tags=["restock"])

PoStatus = Literal["open", "received", "cancelled"]
#: When a purchase order may be expected: a wide window around any real order (a date outside it is a typo or a
#: placeholder such as 0001-01-01, and would sort first in every plan).
PO_FIRST_YEAR, PO_LAST_YEAR = 2000, 2199


class PurchaseOrderBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str = Field(min_length=1, max_length=64)
    warehouse: str = Field(min_length=1, max_length=64)
    qty: int = Field(gt=0, le=10_000_000, strict=True)
    expected_at: Annotated[UtcDatetime, years_between(PO_FIRST_YEAR, PO_LAST_YEAR)] = Field(
        description=f"Expected arrival, with a UTC offset; years {PO_FIRST_YEAR} to {PO_LAST_YEAR}.")
    status: PoStatus = "open"
    supplier: str | None = Field(default=None, max_length=120)


class PurchaseOrderOut(BaseModel):
    po_id: str
    sku: str
    warehouse: str
    qty: int
    expected_at: datetime
    status: PoStatus
    supplier: str | None
    created_at: datetime
    updated_at: datetime


PURCHASE_ORDER_EXAMPLES = {
    "open": {"summary": "24 cake stands expected at the London warehouse",
             "value": {"sku": "SCARCE-001", "warehouse": "gb-south", "qty": 24, "expected_at": "2026-12-10T09:00:00Z",
                       "supplier": "Stoke Pottery Ltd"}},
    "received": {"summary": "Mark it received (final: later updates are a 409)",
                 "value": {"sku": "SCARCE-001", "warehouse": "gb-south", "qty": 24,
                           "expected_at": "2026-12-10T09:00:00Z", "status": "received",
                           "supplier": "Stoke Pottery Ltd"}},
}
#: What ``PUT`` answers for the "open" example, and a purchase order as listed.
PURCHASE_ORDER_OUT = {"po_id": "PO-2026-0042", "sku": "SCARCE-001", "warehouse": "gb-south", "qty": 24,
                      "expected_at": "2026-12-10T09:00:00Z", "status": "open", "supplier": "Stoke Pottery Ltd",
                      "created_at": "2026-12-01T10:15:00Z", "updated_at": "2026-12-01T10:15:00Z"}
_PLAN_LINE = {"supplier": None, "lead_time_days": 7, "review_days": 1, "service_level": 0.95,
              "fill_rate_target": 0.95, "order_capped": False}
RESTOCK_PLAN_OUT = {
    "as_of": "2026-12-01",
    "summary": {"lines": 2, "orders": 1, "units_to_order": 180, "urgent": 1, "sell_out_risks": 1},
    "lines": [
        {**_PLAN_LINE, "sku": "85123A", "warehouse": "gb-south", "on_hand": 96, "reserved": 4, "on_order": 0,
         "inventory_position": 92, "mean_daily_demand": 21.4, "lead_time_demand_mean": 149.8, "reorder_point": 212,
         "order_up_to": 272, "order_qty": 180, "urgent": True, "order_by": "2026-12-01",
         "expected_arrival": "2026-12-08", "projected_stockout_date": "2026-12-05", "stockout_probability": 0.91,
         "next_replenishment": "2026-12-08", "expected_fill_rate": 0.95},
        {**_PLAN_LINE, "sku": "SCARCE-001", "warehouse": "gb-south", "supplier": "Stoke Pottery Ltd", "on_hand": 4,
         "reserved": 0, "on_order": 24, "inventory_position": 28, "mean_daily_demand": 0.6,
         "lead_time_demand_mean": 4.2, "reorder_point": 9, "order_up_to": 10, "order_qty": 0, "urgent": False,
         "order_by": None, "expected_arrival": None, "projected_stockout_date": None, "stockout_probability": 0.02,
         "next_replenishment": "2026-12-10", "expected_fill_rate": 0.99}],
    "sell_out_risks": [
        {"sku": "85123A", "warehouse": "gb-south", "name": "White Hanging Heart T-Light Holder", "category": "lighting",
         "available": 92, "stockout_probability": 0.91, "projected_stockout_date": "2026-12-05",
         "next_replenishment": "2026-12-08", "actions": ["suppress_promotion", "offer_alternatives", "place_order"],
         "alternatives": [{"sku": "21733", "name": "Red Hanging Heart T-Light Holder", "warehouse": "gb-south",
                           "available": 310}]}],
}


def _example(value) -> dict:
    return {200: {"content": {"application/json": {"example": value}}}}


@router.put("/v1/purchase-orders/{po_id}", response_model=PurchaseOrderOut, responses=_example(PURCHASE_ORDER_OUT))
def put_purchase_order(
    body: Annotated[PurchaseOrderBody, Body(openapi_examples=PURCHASE_ORDER_EXAMPLES)],
    response: Response,
    po_id: str = Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$"),
    _key: str = Depends(require_scope("admin")),
    container: Container = Depends(get_container),
) -> PurchaseOrderOut:
    """Create (201) or update (200) a purchase order. Received and cancelled orders are final (409)."""
    po = PurchaseOrderIn(po_id=po_id, **body.model_dump())
    try:
        [(row, created)] = RestockRepository(container.engine).upsert_purchase_orders([po], container.clock.now())
    except UnknownSku as exc:  # the store names the checkout's field (lines.sku); this body's field is sku
        exc.message = f"sku: no SKU {body.sku} in the catalog"
        exc.details = [{"field": "sku", "sku": body.sku}]
        raise
    except InvalidInput as exc:
        if [d.get("field") for d in exc.details] == ["warehouse"]:
            exc.message = f"warehouse: no warehouse {body.warehouse}"
        raise
    response.status_code = 201 if created else 200
    return PurchaseOrderOut(**row)


@router.get("/v1/purchase-orders", response_model=list[PurchaseOrderOut], responses=_example([PURCHASE_ORDER_OUT]))
def list_purchase_orders(
    status: PoStatus | None = Query(default=None),
    sku: str | None = Query(default=None, min_length=1, max_length=64, pattern=IDENT_PATTERN),
    warehouse: str | None = Query(default=None, min_length=1, max_length=64, pattern=IDENT_PATTERN),
    limit: int = Query(default=100, ge=1, le=1000),
    offset: int = Query(default=0, ge=0, le=10**9),
    _key: str = Depends(require_scope("admin")),
    container: Container = Depends(get_container),
) -> list[PurchaseOrderOut]:
    """Purchase orders by expected arrival, optionally filtered."""
    rows = RestockRepository(container.engine).list_purchase_orders(
        status=status, sku=sku, warehouse=warehouse, limit=limit, offset=offset
    )
    return [PurchaseOrderOut(**r) for r in rows]


@router.get("/v1/plans/restock", responses=_example(RESTOCK_PLAN_OUT))
def get_restock_plan(
    sku: str | None = Query(default=None, min_length=1, max_length=64, pattern=IDENT_PATTERN),
    warehouse: str | None = Query(default=None, min_length=1, max_length=64, pattern=IDENT_PATTERN),
    fill_rate: float | None = Query(default=None, ge=0.5, lt=1.0, description="Fill-rate target for every SKU "
                                    "(units sold / units demanded); default: each policy's fill_rate."),
    _key: str = Depends(require_scope("admin")),
    container: Container = Depends(get_container),
) -> dict:
    """Today's restock plan: per SKU x warehouse lines (reorder point, order-up-to, order qty, stockout date)
    and the sell-out risk list with suggested actions, planned for a fill-rate target."""
    try:
        planner = build_restock_planner(container)
    except ValueError as exc:  # a broken policy file is a configuration problem, reported clearly
        raise InvalidInput(str(exc), [{"field": "restock_policy_file"}]) from None
    return planner.plan(sku=sku, warehouse=warehouse, fill_rate=fill_rate).to_dict()
