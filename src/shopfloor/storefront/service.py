"""The shoppers' read path: a product page for a destination (availability band, delivery promise, in-stock
alternatives when the product is at sell-out risk) and catalog search with cursor pagination.

Promise and alternatives share a time budget: past it the page is served without them, says which part is
missing (``degraded``) and is cached only briefly, rather than making the shopper wait."""

from __future__ import annotations

import base64
import binascii
import re
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from ..domain.errors import InvalidInput, NotFound
from ..domain.promise import PromiseStatus, availability_status
from .cache import CachePolicy, etag_for


@dataclass(frozen=True)
class ProductRecord:
    sku: str
    name: str
    category: str
    price: int
    currency: str
    available: int  # units on hand minus reserved, over every warehouse


class CatalogReader(Protocol):
    """Product reads (on the read replica when one is configured)."""

    def product(self, sku: str) -> ProductRecord | None: ...

    def search(self, terms: Sequence[str], category: str | None, after: str | None,
               limit: int) -> list[ProductRecord]: ...

    def in_stock_alternatives(self, sku: str, category: str, min_available: int,
                              limit: int) -> list[ProductRecord]: ...


class PromiseSource(Protocol):
    def promise_for(self, sku: str, qty: int, country: str, postal_code: str) -> Any: ...


@dataclass(frozen=True)
class StorefrontConfig:
    cache: CachePolicy = field(default_factory=CachePolicy)
    budget_s: float = 0.15
    max_alternatives: int = 3
    limited_threshold: int = 5
    #: At sell-out risk: not ``in_stock``, or fewer units than this left.
    risk_units: int = 20


@dataclass(frozen=True)
class Page:
    """A response body with its cache headers."""

    body: dict[str, Any]
    cache_control: str
    etag: str


_TERM = re.compile(r"\w+", re.UNICODE)
MAX_QUERY_TERMS = 8


def search_terms(q: str | None) -> list[str]:
    """Words of a free-text query (letters and digits only: nothing of the query reaches SQL unbound or unquoted)."""
    return [t.lower() for t in _TERM.findall(q or "")][:MAX_QUERY_TERMS]


def encode_cursor(sku: str) -> str:
    return base64.urlsafe_b64encode(sku.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    if not raw or not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", raw):
        raise InvalidInput("cursor: not a cursor this API returned (pass next_cursor back unchanged)",
                           [{"field": "cursor"}])
    return raw


def stock_band(availability: str, available: int, limited_threshold: int) -> dict[str, int] | None:
    """The count band a ``limited`` page shows (never the exact count)."""
    if availability != "limited":
        return None
    return {"min": 1, "max": max(1, min(available, limited_threshold))}


class StorefrontService:
    def __init__(self, catalog: CatalogReader, promises: PromiseSource, executor: Executor,
                 config: StorefrontConfig | None = None) -> None:
        self.catalog = catalog
        self.promises = promises
        self.executor = executor
        self.config = config or StorefrontConfig()

    def product_page(self, sku: str, country: str, postal_code: str) -> Page:
        cfg = self.config
        product = self.catalog.product(sku)
        if product is None:
            raise NotFound(f"unknown sku {sku}", [{"field": "sku", "sku": sku}])
        country = country.upper()
        promise_f: Future = self.executor.submit(self.promises.promise_for, sku, 1, country, postal_code)
        fallback = str(availability_status(product.available, 1, cfg.limited_threshold, False)) \
            if product.available > 0 else str(PromiseStatus.UNAVAILABLE)
        alt_f: Future | None = None
        if fallback != "in_stock" or product.available < cfg.risk_units:
            alt_f = self.executor.submit(self.catalog.in_stock_alternatives, sku, product.category,
                                         cfg.risk_units, cfg.max_alternatives)
        pending = [f for f in (promise_f, alt_f) if f is not None]
        wait(pending, timeout=cfg.budget_s)
        degraded: list[str] = []
        promise = _result(promise_f)
        if promise is None:
            degraded.append("promise_timeout" if not promise_f.done() else "promise_failed")
            availability = fallback
            promise_body = None
        else:
            availability = str(promise.status)
            promise_body = {"ship_by": _iso(promise.ship_by), "deliver_by": _iso(promise.deliver_by),
                            "provisional": bool(promise.provisional), "reasons": list(promise.reasons),
                            "confidence": promise.confidence, "warehouse": promise.warehouse}
        at_risk = availability != "in_stock" or product.available < cfg.risk_units
        alternatives: list[dict[str, Any]] = []
        if at_risk and alt_f is None:  # the promise saw risk the raw count did not (a far destination)
            alt_f = self.executor.submit(self.catalog.in_stock_alternatives, sku, product.category,
                                         cfg.risk_units, cfg.max_alternatives)
            wait([alt_f], timeout=max(0.0, cfg.budget_s / 2))
        if at_risk and alt_f is not None:
            found = _result(alt_f)
            if found is None:
                degraded.append("alternatives_timeout" if not alt_f.done() else "alternatives_failed")
            else:
                alternatives = [{"sku": a.sku, "name": a.name, "price": a.price, "currency": a.currency,
                                 "availability": "in_stock"} for a in found]
        body = {
            "sku": product.sku, "name": product.name, "category": product.category, "price": product.price,
            "currency": product.currency, "availability": availability,
            "stock_band": stock_band(availability, product.available, cfg.limited_threshold),
            "destination": {"country": country, "postal_code": postal_code},
            "promise": promise_body, "alternatives": alternatives, "degraded": degraded,
        }
        cache = cfg.cache.product_cache_control(availability, product.available, degraded=bool(degraded))
        return Page(body, cache, etag_for(body))

    def search(self, q: str | None, category: str | None, cursor: str | None, limit: int) -> Page:
        after = decode_cursor(cursor) if cursor else None
        rows = self.catalog.search(search_terms(q), category, after, limit + 1)
        items = [{"sku": r.sku, "name": r.name, "category": r.category, "price": r.price, "currency": r.currency}
                 for r in rows[:limit]]
        next_cursor = encode_cursor(rows[limit - 1].sku) if len(rows) > limit else None
        body = {"items": items, "next_cursor": next_cursor}
        return Page(body, self.config.cache.listing_cache_control(), etag_for(body))


def _result(future: Future | None) -> Any:
    if future is None or not future.done() or future.cancelled() or future.exception() is not None:
        return None
    return future.result()


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
