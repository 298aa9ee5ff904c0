"""The storefront's cache semantics and time budget, with in-memory fakes (no I/O)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date

import pytest

from shopfloor.domain.errors import InvalidInput, NotFound
from shopfloor.domain.promise import PromiseStatus
from shopfloor.storefront import (
    CachePolicy,
    ProductRecord,
    StorefrontConfig,
    StorefrontService,
    decode_cursor,
    encode_cursor,
    etag_for,
    etag_matches,
    search_terms,
)


def _max_age(header: str) -> int:
    return int(header.split("max-age=")[1].split(",")[0])


def test_well_stocked_products_are_cached_for_minutes_and_near_sell_out_for_seconds():
    policy = CachePolicy()
    assert _max_age(policy.product_cache_control("in_stock", 500)) == 300
    assert _max_age(policy.product_cache_control("in_stock", 12)) == 30
    assert _max_age(policy.product_cache_control("limited", 3)) == 5


def test_every_cacheable_page_allows_stale_while_revalidate_and_stale_if_error():
    header = CachePolicy().product_cache_control("in_stock", 500)
    assert header.startswith("public, ")
    assert "stale-while-revalidate=60" in header and "stale-if-error=86400" in header


def test_a_degraded_page_is_cached_only_briefly():
    assert _max_age(CachePolicy().product_cache_control("in_stock", 500, degraded=True)) == 5


def test_etag_is_stable_for_the_same_body_and_changes_with_it():
    assert etag_for({"a": 1, "b": 2}) == etag_for({"b": 2, "a": 1})
    assert etag_for({"a": 1}) != etag_for({"a": 2})


@pytest.mark.parametrize("header, matches", [('"x"', True), ('W/"x"', True), ('"y", "x"', True), ("*", True),
                                             ('"y"', False), (None, False), ("", False)])
def test_if_none_match_follows_weak_comparison(header, matches):
    assert etag_matches(header, '"x"') is matches


def test_cursor_round_trips_and_a_forged_cursor_names_the_field():
    assert decode_cursor(encode_cursor("SKU-00042")) == "SKU-00042"
    with pytest.raises(InvalidInput) as err:
        decode_cursor("not*a*cursor")
    assert err.value.details == [{"field": "cursor"}]


def test_search_terms_keep_only_words():
    assert search_terms('mug" OR 1=1; --') == ["mug", "or", "1", "1"]
    assert search_terms(None) == []


@dataclass
class _Promise:
    status: PromiseStatus
    ship_by: date = date(2026, 12, 4)
    deliver_by: date = date(2026, 12, 8)
    provisional: bool = False
    reasons: tuple = ()
    confidence: float = 0.9
    warehouse: str = "w1"


class _Catalog:
    def __init__(self, products: dict[str, ProductRecord]) -> None:
        self.products = products

    def product(self, sku):
        return self.products.get(sku)

    def search(self, terms, category, after, limit):
        rows = sorted(self.products.values(), key=lambda p: p.sku)
        return [p for p in rows if after is None or p.sku > after][:limit]

    def in_stock_alternatives(self, sku, category, min_available, limit):
        return [p for p in self.products.values()
                if p.sku != sku and p.category == category and p.available >= min_available][:limit]


class _Promises:
    def __init__(self, status: PromiseStatus, block: threading.Event | None = None) -> None:
        self.status, self.block = status, block

    def promise_for(self, sku, qty, country, postal_code):
        if self.block is not None:
            self.block.wait(5)
        return _Promise(self.status)


CATALOG = {
    "MUG": ProductRecord("MUG", "Mug", "kitchen", 1299, "USD", 3),
    "CUP": ProductRecord("CUP", "Cup", "kitchen", 999, "USD", 400),
    "PAN": ProductRecord("PAN", "Pan", "kitchen", 2999, "USD", 1000),
}


@pytest.fixture
def pool():
    with ThreadPoolExecutor(4) as executor:
        yield executor


def test_a_product_near_sell_out_lists_in_stock_alternatives(pool):
    svc = StorefrontService(_Catalog(CATALOG), _Promises(PromiseStatus.LIMITED), pool)
    page = svc.product_page("MUG", "us", "94107")
    assert page.body["availability"] == "limited"
    assert page.body["stock_band"] == {"min": 1, "max": 3}
    assert {a["sku"] for a in page.body["alternatives"]} == {"CUP", "PAN"}
    assert page.body["promise"]["deliver_by"] == "2026-12-08"
    assert _max_age(page.cache_control) == 5


def test_a_well_stocked_product_has_no_alternatives_and_a_long_ttl(pool):
    svc = StorefrontService(_Catalog(CATALOG), _Promises(PromiseStatus.IN_STOCK), pool)
    page = svc.product_page("PAN", "US", "94107")
    assert page.body["alternatives"] == [] and page.body["degraded"] == []
    assert _max_age(page.cache_control) == 300


def test_a_slow_promise_is_left_out_past_the_budget_and_the_page_says_so(pool):
    release = threading.Event()
    svc = StorefrontService(_Catalog(CATALOG), _Promises(PromiseStatus.IN_STOCK, block=release), pool,
                            StorefrontConfig(budget_s=0.05))
    try:
        page = svc.product_page("PAN", "US", "94107")
    finally:
        release.set()
    assert page.body["promise"] is None
    assert page.body["degraded"] == ["promise_timeout"]
    assert page.body["availability"] == "in_stock"  # from the stock count, without the destination's promise
    assert _max_age(page.cache_control) == 5


def test_an_unknown_sku_is_not_found(pool):
    svc = StorefrontService(_Catalog(CATALOG), _Promises(PromiseStatus.IN_STOCK), pool)
    with pytest.raises(NotFound):
        svc.product_page("NOPE", "US", "")


def test_search_pages_through_the_catalog_with_a_cursor(pool):
    svc = StorefrontService(_Catalog(CATALOG), _Promises(PromiseStatus.IN_STOCK), pool)
    first = svc.search(None, None, None, 2)
    assert [i["sku"] for i in first.body["items"]] == ["CUP", "MUG"]
    second = svc.search(None, None, first.body["next_cursor"], 2)
    assert [i["sku"] for i in second.body["items"]] == ["PAN"] and second.body["next_cursor"] is None
