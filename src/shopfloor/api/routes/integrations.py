"""Inbound integrations: Shopify shop configuration and webhooks, and imported orders by external id. Thin: the
work is in ``shopfloor.integrations``."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from ...bootstrap import Container, build_integrations
from ...store import orders_repo as repo
from ...store.integrations_tables import order_sources
from ..deps import IDENT_PATTERN, get_container, require_scope
from ..errors import envelope, error_responses

router = APIRouter(tags=["integrations"])

Shop = Annotated[str, Path(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]*$",
                           examples=["acme.myshopify.com"])]
Warehouse = Annotated[str, Field(min_length=1, max_length=64, pattern=IDENT_PATTERN)]


class ShopIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    secrets: list[Annotated[str, Field(min_length=8, max_length=200)]] = Field(
        min_length=1, max_length=5, description="The app's client secrets; several while one is rotated.")
    locations: dict[Annotated[str, Field(pattern=r"^[0-9]{1,20}$")], Warehouse] = Field(
        default_factory=dict, max_length=500, description="Shopify location id -> warehouse id.")
    stock_policy: Literal["consume", "reserve", "ignore"] = "consume"


class InventoryItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sku: str = Field(min_length=1, max_length=64, pattern=IDENT_PATTERN)


SHOP_EXAMPLES = {
    "connect": {"summary": "Connect a shop: two Shopify locations are the British warehouses",
                "value": {"secrets": ["shpss_4f8a1c2e9b7d6a5f3e2c1b0a"],
                          "locations": {"71234567890": "gb-south", "71234567891": "gb-north"},
                          "stock_policy": "consume"}},
    "rotate secret": {"summary": "While the app's client secret is rotated, accept the new and the old one",
                      "value": {"secrets": ["shpss_9e0d1c2b3a4f5e6d7c8b9a0f", "shpss_4f8a1c2e9b7d6a5f3e2c1b0a"],
                                "locations": {"71234567890": "gb-south", "71234567891": "gb-north"}}},
}
INVENTORY_ITEM_EXAMPLES = {"t-light holder": {"summary": "Shopify's inventory item for the T-light holder",
                                               "value": {"sku": "85123A"}}}

#: What the routes answer. Imported orders: their lines, the shop's stock policy and where they came from.
SHOP_OUT = {"shop": "acme.myshopify.com", "locations": {"71234567890": "gb-south", "71234567891": "gb-north"},
            "stock_policy": "consume", "secrets": 1, "updated_at": "2026-12-01T10:15:00+00:00"}
INVENTORY_ITEM_OUT = {"shop": "acme.myshopify.com", "inventory_item_id": "44012345678901", "sku": "85123A"}
IMPORTED_ORDERS_OUT = [{
    "order_id": "ord_87e1c4f6154148b59454426074cd837f", "status": "handed_off",
    "lines": [{"sku": "85123A", "qty": 3, "warehouse": "gb-south", "unit_price": 295},
              {"sku": "22423", "qty": 1, "warehouse": "gb-south", "unit_price": 1275}],
    "total": 2160, "currency": "GBP", "split_shipment": False,
    "ship_to": {"country": "GB", "postal_code": "SW1A 2AA"},
    "payment": {"channel": "shopify:acme.myshopify.com", "external_id": "5511118291234"},
    "shipping": None, "promise": None,
    "reservations": [{"sku": "22423", "warehouse": "gb-south", "qty": 1, "state": "consumed",
                      "expires_at": "2027-12-01T10:15:00+00:00"},
                     {"sku": "85123A", "warehouse": "gb-south", "qty": 3, "state": "consumed",
                      "expires_at": "2027-12-01T10:15:00+00:00"}],
    "reservation_expires_at": None, "created_at": "2026-12-01T10:14:02+00:00",
    "updated_at": "2026-12-01T10:15:00+00:00",
    "source": {"channel": "shopify:acme.myshopify.com", "external_id": "5511118291234", "stock_policy": "consume",
               "details": None, "imported_at": "2026-12-01T10:15:00+00:00"},
}]


def _example(value) -> dict:
    return {200: {"content": {"application/json": {"example": value}}}}


def _shopify(c: Container):
    return build_integrations(c)["integrations.shopify"]


@router.put("/v1/integrations/shopify/{shop}",
            responses={**_example(SHOP_OUT),
                       **error_responses({422: "A location maps to an unknown warehouse (field named)."})})
def put_shop(shop: Shop, body: Annotated[ShopIn, Body(openapi_examples=SHOP_EXAMPLES)], response: Response,
             _key: str = Depends(require_scope("admin")), c: Container = Depends(get_container)):
    """Connect (201) or reconfigure (200) a Shopify shop: webhook secrets, location -> warehouse map and what an
    order placed on Shopify does to stock here. Secrets are never shown again."""
    out, created = _shopify(c).configure(shop, body.secrets, body.locations, body.stock_policy)
    response.status_code = 201 if created else 200
    return out


@router.put("/v1/integrations/shopify/{shop}/inventory-items/{inventory_item_id}",
            responses=_example(INVENTORY_ITEM_OUT))
def put_inventory_item(shop: Shop, body: Annotated[InventoryItemIn, Body(openapi_examples=INVENTORY_ITEM_EXAMPLES)],
                       inventory_item_id: Annotated[str, Path(pattern=r"^[0-9]{1,20}$")],
                       _key: str = Depends(require_scope("admin")), c: Container = Depends(get_container)):
    """Map a Shopify inventory item to a SKU (``products/update`` deliveries fill this map too)."""
    return _shopify(c).map_inventory_item(shop, inventory_item_id, body.sku)


@router.post("/v1/integrations/shopify/{shop}/webhooks",
             responses={**_example({"status": "accepted"}),
                        **error_responses({401: "X-Shopify-Hmac-Sha256 does not match (or the shop is unknown).",
                                           400: "X-Shopify-Triggered-At is older than the allowed age.",
                                           413: "The body is over shopify_webhook_max_bytes.",
                                           422: "A required X-Shopify-* header is missing, or the body is not "
                                                "JSON."})})
async def shopify_webhook(shop: Shop, request: Request, c: Container = Depends(get_container)):
    """A Shopify webhook delivery. Verified, stored and answered 200 at once (also for a duplicate); the worker
    processes it. Authenticated by its HMAC, not by an API key."""
    body = await request.body()
    limit = c.settings.shopify_webhook_max_bytes
    if len(body) > limit:
        return envelope(413, "payload_too_large", f"body: at most {limit} bytes", [{"field": "body",
                                                                                   "max_bytes": limit}])
    headers = {k.lower(): v for k, v in request.headers.items() if k.lower().startswith("x-shopify-")}
    receipt = await run_in_threadpool(_shopify(c).receive, shop, body, headers)
    return {"status": receipt.status}


@router.get("/v1/orders", responses=_example(IMPORTED_ORDERS_OUT))
def orders_by_external_id(
    external_id: str = Query(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$"),
    channel: str | None = Query(default=None, max_length=300),
    _key: str = Depends(require_scope("admin")), c: Container = Depends(get_container),
):
    """Orders imported from other channels with this external id (every channel unless ``channel`` is given)."""
    q = select(order_sources).where(order_sources.c.external_id == external_id)
    if channel:
        q = q.where(order_sources.c.channel == channel)
    out = []
    with c.engine.connect() as conn:
        for src in conn.execute(q.order_by(order_sources.c.imported_at, order_sources.c.order_id)).all():
            order = repo.get_order(conn, src.order_id)
            if order is not None:
                order["source"] = {"channel": src.channel, "external_id": src.external_id,
                                   "stock_policy": src.stock_policy, "details": src.details,
                                   "imported_at": src.imported_at.isoformat()}
                out.append(order)
    return out
