"""The shoppers' read path: product pages, search and their cache semantics. Public entry point."""

from .cache import NO_STORE, VARY, CachePolicy, etag_for, etag_matches
from .service import (
    CatalogReader,
    Page,
    ProductRecord,
    PromiseSource,
    StorefrontConfig,
    StorefrontService,
    decode_cursor,
    encode_cursor,
    search_terms,
)

__all__ = ["NO_STORE", "VARY", "CachePolicy", "CatalogReader", "Page", "ProductRecord", "PromiseSource",
           "StorefrontConfig", "StorefrontService", "decode_cursor", "encode_cursor", "etag_for", "etag_matches",
           "search_terms"]
