"""Cache semantics of the storefront's public pages: inventory-aware TTLs (RFC 9111 ``max-age`` plus RFC 5861
``stale-while-revalidate`` / ``stale-if-error``), strong ETags and ``If-None-Match`` matching. Pure: no I/O."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

#: What an authenticated, checkout or order response says to every cache.
NO_STORE = "no-store"
#: Request headers a cached product page varies on (the destination is in the query string, so it is in the key).
VARY = "Accept-Encoding"


@dataclass(frozen=True)
class CachePolicy:
    """TTL bands. A product with ``plenty_units`` or more available is cached for ``plenty_max_age_s``; fewer
    units shorten it to ``low_max_age_s``; a ``limited`` product (a handful left) to ``limited_max_age_s``, so that
    even a missed purge cannot keep a page near sell-out stale for long. ``stale-while-revalidate`` is the band's
    own max-age (capped by ``swr_cap_s``); ``stale-if-error`` lets the edge keep serving the last copy while the
    origin is down."""

    plenty_units: int = 50
    plenty_max_age_s: int = 300
    low_max_age_s: int = 30
    limited_max_age_s: int = 5
    unavailable_max_age_s: int = 30
    degraded_max_age_s: int = 5
    listing_max_age_s: int = 60
    swr_cap_s: int = 60
    stale_if_error_s: int = 86_400

    def product_max_age(self, availability: str, available: int, degraded: bool = False) -> int:
        if availability == "limited":
            ttl = self.limited_max_age_s
        elif availability == "in_stock":
            ttl = self.plenty_max_age_s if available >= self.plenty_units else self.low_max_age_s
        else:
            ttl = self.unavailable_max_age_s
        return min(ttl, self.degraded_max_age_s) if degraded else ttl

    def cache_control(self, max_age: int) -> str:
        swr = min(max_age, self.swr_cap_s)
        return (f"public, max-age={max_age}, stale-while-revalidate={swr}, "
                f"stale-if-error={self.stale_if_error_s}")

    def product_cache_control(self, availability: str, available: int, degraded: bool = False) -> str:
        return self.cache_control(self.product_max_age(availability, available, degraded))

    def listing_cache_control(self) -> str:
        return self.cache_control(self.listing_max_age_s)


def etag_for(body: Any) -> str:
    """A strong ETag over the canonical JSON of ``body`` (the same body always gives the same tag)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
    return '"' + hashlib.sha256(canonical).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 ``If-None-Match``: ``*`` or a list of tags compared weakly (a ``W/`` prefix is ignored)."""
    if not if_none_match:
        return False
    value = if_none_match.strip()
    if value == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in value.split(","))
