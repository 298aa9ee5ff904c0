"""Token-bucket rate limits in one process: bursts, refill, all-or-nothing, the limit that refused."""

from __future__ import annotations

import asyncio

from shopfloor.api.throttle import InProcessBuckets, Limit, RateLimits


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def run(coro):
    return asyncio.run(coro)


def test_a_bucket_allows_its_burst_then_refuses_until_it_refills():
    clock = Clock()
    buckets = InProcessBuckets(monotonic=clock)
    results = [run(buckets.take([("k", 2.0, 3)])) for _ in range(4)]
    assert results[:3] == [None, None, None]
    index, wait = results[3]
    assert index == 0 and abs(wait - 0.5) < 1e-9
    clock.t += 0.5
    assert run(buckets.take([("k", 2.0, 3)])) is None


def test_a_refused_request_spends_no_token_from_any_of_its_buckets():
    clock = Clock()
    buckets = InProcessBuckets(monotonic=clock)
    assert run(buckets.take([("empty", 1.0, 1)])) is None
    assert run(buckets.take([("full", 1.0, 1), ("empty", 1.0, 1)])) == (1, 1.0)
    assert run(buckets.take([("full", 1.0, 1)])) is None  # still had its token


def test_checkout_limits_name_the_limit_that_refused_and_round_the_wait_up():
    clock = Clock()
    limits = RateLimits(InProcessBuckets(monotonic=clock), checkout_per_key=Limit(10, 100),
                        checkout_per_address=Limit(0.25, 2), checkout_per_product=Limit(1, 1))
    assert run(limits.checkout("key1", "10.0.0.1")) is None
    assert run(limits.checkout("key1", "10.0.0.1")) is None
    refusal = run(limits.checkout("key1", "10.0.0.1"))
    assert (refusal.limit, refusal.retry_after_s) == ("checkout_per_address", 4)
    assert refusal.details() == [{"limit": "checkout_per_address", "retry_after_s": 4}]
    assert run(limits.checkout("key1", "10.0.0.2")) is None  # another address has its own bucket
    assert run(limits.products(["HOT", "HOT"])) is None  # one order counts once per product
    assert run(limits.products(["HOT"])).limit == "checkout_per_product"


def test_limits_left_unset_cost_nothing_and_refuse_nothing():
    limits = RateLimits(InProcessBuckets())
    assert not limits.active
    assert run(limits.checkout("k", "a")) is None and run(limits.products(["X"])) is None
    assert not limits.is_read("GET", "/v1/stock/A1")


def test_read_limits_apply_to_the_open_read_paths_only():
    limits = RateLimits(InProcessBuckets(), reads_per_address=Limit(1, 1), read_paths=["/v1/stock/"])
    assert limits.is_read("GET", "/v1/stock/A1")
    assert not limits.is_read("POST", "/v1/stock/A1") and not limits.is_read("GET", "/v1/orders/o1")


def test_limits_let_requests_through_when_the_bucket_store_is_unreachable():
    class Down:
        async def take(self, buckets):
            raise ConnectionError("redis down")

    limits = RateLimits(Down(), checkout_per_key=Limit(1, 1))
    assert run(limits.checkout("k", "a")) is None
