"""Catalog administration: warehouses, SKUs and stock counts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from ...bootstrap import Container
from ...domain.errors import Conflict, NotFound
from ...store import orders_repo as repo
from ..deps import IDENT_PATTERN, get_container, require_scope

router = APIRouter(tags=["catalog"])

Ident = Annotated[str, Path(min_length=1, max_length=64, pattern=IDENT_PATTERN)]


class WarehouseIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"region": "us-west", "country": "US", "postal_prefixes": ["9", "8"]}]})
    region: str = Field(min_length=1, max_length=120, examples=["us-west"])
    country: str = Field(pattern=r"^[A-Za-z]{2}$", examples=["US"])
    postal_prefixes: list[Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9 -]+$")]] = Field(
        default_factory=list, max_length=1000
    )


class SkuIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "Mug", "category": "kitchen", "price": 1299, "currency": "USD"}]})
    name: str = Field(min_length=1, max_length=300)
    category: str = Field(min_length=1, max_length=120)
    price: int = Field(ge=0, le=10**12, strict=True, description="Unit price in minor units (cents).")
    currency: str = Field(pattern=r"^[A-Z]{3}$", examples=["USD"])


class StockIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"on_hand": 1000}]})
    on_hand: int = Field(ge=0, le=10**12, strict=True)


def _example(value: dict) -> dict:
    return {200: {"content": {"application/json": {"example": value}}}}


#: What the routes answer for the request examples above (the warehouse id and SKU come from the path).
WAREHOUSE_OUT = {"id": "us-west", "region": "us-west", "country": "US", "postal_prefixes": ["9", "8"]}
SKU_OUT = {"sku": "MUG-1", "name": "Mug", "category": "kitchen", "price": 1299, "currency": "USD"}
STOCK_SET_OUT = {"sku": "MUG-1", "warehouse": "us-west", "on_hand": 1000, "reserved": 12, "available": 988}
STOCK_OUT = {"sku": "MUG-1", "warehouses": [
    {"warehouse": "us-east", "on_hand": 40, "reserved": 0, "available": 40},
    {"warehouse": "us-west", "on_hand": 1000, "reserved": 12, "available": 988}],
    "on_hand": 1040, "reserved": 12, "available": 1028}


@router.put("/v1/warehouses/{warehouse_id}", status_code=200, responses=_example(WAREHOUSE_OUT))
def put_warehouse(
    warehouse_id: Ident,
    body: WarehouseIn,
    response: Response,
    _: str = Depends(require_scope("admin")),
    c: Container = Depends(get_container),
):
    """Create or replace a warehouse and the postal prefixes it serves."""
    with c.engine.begin() as conn:
        created = repo.upsert_warehouse(
            conn, warehouse_id, body.region, body.country.upper(), body.postal_prefixes, c.clock.now()
        )
    response.status_code = 201 if created else 200
    return {"id": warehouse_id, **body.model_dump(), "country": body.country.upper()}


@router.put("/v1/skus/{sku}", status_code=200, responses=_example(SKU_OUT))
def put_sku(
    sku: Ident, body: SkuIn, response: Response, _: str = Depends(require_scope("admin")),
    c: Container = Depends(get_container),
):
    """Create or replace a catalog entry. Prices are integer minor units plus an ISO currency."""
    with c.engine.begin() as conn:
        created = repo.upsert_sku(conn, sku, body.name, body.category, body.price, body.currency, c.clock.now())
    response.status_code = 201 if created else 200
    return {"sku": sku, **body.model_dump()}


@router.put("/v1/stock/{sku}/{warehouse_id}", responses=_example(STOCK_SET_OUT))
def put_stock(
    sku: Ident, warehouse_id: Ident, body: StockIn, _: str = Depends(require_scope("admin")),
    c: Container = Depends(get_container),
):
    """Set the physical on-hand count of a SKU in a warehouse (a cycle count or a receipt)."""
    with c.engine.begin() as conn:
        if not repo.sku_exists(conn, sku):
            raise NotFound(f"unknown sku {sku}", [{"field": "sku", "sku": sku}])
        if not repo.warehouse_exists(conn, warehouse_id):
            raise NotFound(f"unknown warehouse {warehouse_id}", [{"field": "warehouse", "warehouse": warehouse_id}])
        ok, reserved = repo.set_on_hand(conn, sku, warehouse_id, body.on_hand, c.clock.now())
        if not ok:
            raise Conflict(
                f"on_hand {body.on_hand} is below the {reserved} units already reserved",
                [{"field": "on_hand", "sku": sku, "warehouse": warehouse_id, "reserved": reserved}],
            )
    return {"sku": sku, "warehouse": warehouse_id, "on_hand": body.on_hand, "reserved": reserved,
            "available": body.on_hand - reserved}


@router.get("/v1/stock/{sku}", responses=_example(STOCK_OUT))
def get_stock(
    sku: Ident, _: str = Depends(require_scope("admin", "storefront")), c: Container = Depends(get_container)
):
    """Per-warehouse on hand, reserved and available units of one SKU."""
    with c.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
        if not repo.sku_exists(conn, sku):
            raise NotFound(f"unknown sku {sku}", [{"field": "sku", "sku": sku}])
        rows = repo.stock_for_sku(conn, sku)
    return {
        "sku": sku,
        "warehouses": rows,
        "on_hand": sum(r["on_hand"] for r in rows),
        "reserved": sum(r["reserved"] for r in rows),
        "available": sum(r["available"] for r in rows),
    }
