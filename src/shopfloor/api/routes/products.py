"""The storefront's product pages and search: public (no key, or a storefront key) and edge-cacheable. Thin: the
page is built by shopfloor.storefront; this module validates input and writes the cache headers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from ...bootstrap import Container
from ...storefront import VARY, Page, StorefrontService, etag_matches
from ..deps import IDENT_PATTERN, get_container
from ..errors import error_responses
from ..responses import FastJSONResponse

router = APIRouter(tags=["storefront"])

Ident = Annotated[str, Path(min_length=1, max_length=64, pattern=IDENT_PATTERN)]


async def optional_storefront_key(request: Request) -> str | None:
    """No key is fine (a public page); a key, when sent, must be valid and carry storefront or admin."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    return request.app.state.authenticator.require(header, ("storefront", "admin"))


def storefront(c: Container = Depends(get_container)) -> StorefrontService:
    return c.services["storefront"]


def _answer(request: Request, page: Page) -> Response:
    headers = {"Cache-Control": page.cache_control, "ETag": page.etag, "Vary": VARY}
    if etag_matches(request.headers.get("if-none-match"), page.etag):
        return Response(status_code=304, headers=headers)
    return FastJSONResponse(page.body, headers=headers)


@router.get("/v1/products/{sku}", responses={
    200: {"description": "The product page for this destination; `Cache-Control` says how long an edge may keep "
                         "it (minutes with plenty of stock, seconds near sell-out).",
          "content": {"application/json": {"example": {
              "sku": "MUG-1", "name": "Mug", "category": "kitchen", "price": 1299, "currency": "USD",
              "availability": "limited", "stock_band": {"min": 1, "max": 3},
              "destination": {"country": "US", "postal_code": "94107"},
              "promise": {"ship_by": "2026-12-04", "deliver_by": "2026-12-08", "provisional": False,
                          "reasons": [], "confidence": 0.9, "warehouse": "us-west-1"},
              "alternatives": [{"sku": "MUG-2", "name": "Mug, blue", "price": 1299, "currency": "USD",
                                "availability": "in_stock"}], "degraded": []}}}},
    304: {"description": "Not modified (`If-None-Match` matched the ETag)."},
    **error_responses({401: "A key was sent and is not valid.", 404: "Unknown SKU.",
                       422: "A query parameter is invalid (the message names it)."}),
})
def get_product(
    request: Request,
    sku: Ident,
    country: str = Query(pattern=r"^[A-Za-z]{2}$", description="Destination country (ISO 3166-1 alpha-2).",
                         examples=["US"]),
    postal_code: str = Query(default="", max_length=16, pattern=r"^[A-Za-z0-9 -]*$", examples=["94107"]),
    _key: Any = Depends(optional_storefront_key),
    svc: StorefrontService = Depends(storefront),
) -> Response:
    """A product page: name, price, availability for the destination (`in_stock`, `limited` with a count band,
    `backorder`, `unavailable`), the delivery promise, and in-stock alternatives when the product is at sell-out
    risk. When the promise or the alternatives miss their time budget the page comes without them and lists what
    is missing in `degraded`."""
    return _answer(request, svc.product_page(sku, country, postal_code))


@router.get("/v1/products", responses={
    200: {"description": "One page of matches, in SKU order; pass `next_cursor` back as `cursor` for the next.",
          "content": {"application/json": {"example": {
              "items": [{"sku": "22423", "name": "Regency Cakestand 3 Tier", "category": "kitchen", "price": 1275,
                         "currency": "GBP"},
                        {"sku": "SCARCE-001", "name": "Hand-Thrown Cake Stand", "category": "kitchen",
                         "price": 3499, "currency": "GBP"}],
              "next_cursor": "U0NBUkNFLTAwMQ"}}}},
    304: {"description": "Not modified."},
    **error_responses({401: "A key was sent and is not valid.",
                       422: "A query parameter is invalid (the message names it)."}),
})
def search_products(
    request: Request,
    q: str | None = Query(default=None, max_length=200, description="Words to find in name or category "
                                                                     "(each a prefix; all must match)."),
    category: str | None = Query(default=None, min_length=1, max_length=120),
    cursor: str | None = Query(default=None, min_length=1, max_length=120),
    limit: int = Query(default=20, ge=1, le=100),
    _key: Any = Depends(optional_storefront_key),
    svc: StorefrontService = Depends(storefront),
) -> Response:
    """Search and category listings (SQLite FTS5 or PostgreSQL full-text search) with cursor pagination."""
    return _answer(request, svc.search(q, category, cursor, limit))
