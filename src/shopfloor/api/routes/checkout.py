"""Storefront buy path: checkout and order lookup."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path
from ..responses import FastJSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ...bootstrap import Container
from ...domain.errors import NotFound
from ...domain.stock import OrderLineRequest
from ...orders.checkout import PlaceOrder, request_fingerprint
from ...store import orders_repo as repo
from ..deps import IDENT_PATTERN, Caller, get_container, require_caller, require_scope

router = APIRouter(tags=["checkout"])

SkuId = Annotated[str, Field(min_length=1, max_length=64, pattern=IDENT_PATTERN)]


class LineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sku: SkuId
    qty: int = Field(ge=1, le=10_000)


class ShipToIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    country: str = Field(pattern=r"^[A-Za-z]{2}$", examples=["US"])
    postal_code: str = Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9][A-Za-z0-9 -]*$", examples=["94107"])
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
                              description="Where the confirmation goes.")


class PaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$", examples=["tok_ok"])
    customer_id: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")
    billing_country: str | None = Field(default=None, pattern=r"^[A-Za-z]{2}$")


class CheckoutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lines: list[LineIn] = Field(min_length=1, max_length=50)
    ship_to: ShipToIn
    payment: PaymentIn


IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key", min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$",
        description="Unique per purchase attempt. Replaying it with the same body returns the first response.",
    ),
]


@router.post(
    "/v1/checkouts",
    status_code=201,
    responses={409: {"description": "out_of_stock"}, 422: {"description": "validation or idempotency_key_reused"}},
)
async def create_checkout(
    body: CheckoutIn,
    idempotency_key: IdempotencyKey,
    key_id: str = Depends(require_scope("storefront")),
    c: Container = Depends(get_container),
):
    """Reserve every line (whole order or nothing), record the order and its outbox event in one transaction."""
    payload = body.model_dump()
    cmd = PlaceOrder(
        api_key_id=key_id,
        idempotency_key=idempotency_key,
        request_hash=request_fingerprint(payload),
        lines=tuple(OrderLineRequest(l.sku, l.qty) for l in body.lines),
        country=body.ship_to.country.upper(),
        postal_code=body.ship_to.postal_code.upper(),
        payment={k: v for k, v in payload["payment"].items() if v is not None},
        extra={"email": body.ship_to.email} if body.ship_to.email else {},
    )
    buy_path = c.services["buy_path"]
    result = await buy_path.checkout(cmd)
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    return FastJSONResponse(result.body, status_code=result.status_code, headers=headers)


@router.get("/v1/orders/{order_id}")
def get_order(
    order_id: Annotated[str, Path(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")],
    caller: Caller = Depends(require_caller("storefront", "admin")),
    c: Container = Depends(get_container),
):
    """An order with its lines, reservations, payment state, shipping quote and promise. A storefront key sees
    only the orders placed with it (another's answer 404, as if they did not exist); an admin key sees all."""
    with c.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
        order = repo.get_order(conn, order_id, placed_by=None if caller.is_admin else caller.key_id)
    if order is None:
        raise NotFound(f"no order {order_id}", [{"field": "order_id", "order_id": order_id}])
    return order

