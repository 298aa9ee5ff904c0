"""Restock HTTP routes: purchase orders and the restock plan. Thin: validation here, logic in planning/store."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
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


@router.put("/v1/purchase-orders/{po_id}", response_model=PurchaseOrderOut)
def put_purchase_order(
    body: PurchaseOrderBody,
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


@router.get("/v1/purchase-orders", response_model=list[PurchaseOrderOut])
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


@router.get("/v1/plans/restock")
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
