"""Shipping quotes: live rates, provisional fallbacks with reasons, breaker, reconciliation."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from shopfloor.domain.clock import FixedClock
from shopfloor.orders.shipping import (
    ProvisionalRateTable,
    QuoteUnavailable,
    RateQuote,
    RateServiceError,
    ShippingQuoter,
)
from shopfloor.payments import BreakerPolicy

CLOCK = FixedClock(datetime(2026, 11, 27, 12, tzinfo=timezone.utc))
TABLE = ProvisionalRateTable.from_settings(
    {"US": {"amount": 899, "currency": "USD", "days": 5}, "*": {"amount": 1999, "currency": "USD", "days": 10}}
)


class FakeRates:
    def __init__(self, mode="ok"):
        self.mode = mode
        self.calls = 0

    def quote(self, country, postal_code, weight_g, *, timeout_s):
        self.calls += 1
        if self.mode == "error":
            raise RateServiceError("error", "503")
        if self.mode == "blackhole":  # ignores its timeout entirely
            time.sleep(2.0)
        return RateQuote(700 + weight_g // 1000 * 100, "USD", 3, "simcarrier", "ground")


def quoter(rates, **kw):
    return ShippingQuoter(rates, TABLE, clock=CLOCK, timeout_s=0.05, reconcile_timeout_s=0.05,
                          breaker_policy=BreakerPolicy(min_calls=3, failure_pct=50, open_s=30), **kw)


def test_a_live_quote_is_not_provisional():
    q = quoter(FakeRates()).quote_for_checkout("US", "10001", 2000)
    assert q["provisional"] is False and q["amount"] == 900 and q["source"] == "rate_service"


def test_an_error_falls_back_to_the_table_with_the_reason():
    q = quoter(FakeRates("error")).quote_for_checkout("US")
    assert q == {**q, "provisional": True, "reason": "error", "amount": 899, "currency": "USD", "days": 5}


def test_a_blackholed_service_is_cut_off_at_the_timeout_even_if_the_adapter_ignores_it():
    q = quoter(FakeRates("blackhole"))
    started = time.monotonic()
    result = q.quote_for_checkout("BR")
    assert time.monotonic() - started < 1.0  # the adapter would hold it 2 s; 1 s leaves room for a loaded CI box
    assert result["provisional"] and result["reason"] == "timeout" and result["amount"] == 1999
    q.close()


def test_an_open_breaker_answers_provisionally_without_calling_the_service():
    rates = FakeRates("error")
    q = quoter(rates)
    for _ in range(3):
        q.quote_for_checkout("US")
    result = q.quote_for_checkout("US")
    assert rates.calls == 3 and result["reason"] == "rate_service_circuit_open"


def test_reconcile_keeps_the_estimate_next_to_the_live_rate():
    rates = FakeRates("error")
    q = quoter(rates)
    provisional = q.quote_for_checkout("US", weight_g=1000)
    with pytest.raises(QuoteUnavailable):
        q.reconcile(provisional, "US", weight_g=1000)
    rates.mode = "ok"
    final = q.reconcile(provisional, "US", weight_g=1000)
    assert final["provisional"] is False and final["amount"] == 800
    assert final["provisional_estimate"]["amount"] == 899 and final["difference"] == -99
    assert q.reconcile(final, "US") is None


def test_the_provisional_table_needs_a_catch_all_row_and_valid_values():
    with pytest.raises(ValueError, match=r"\*"):
        ProvisionalRateTable.from_settings({"US": {"amount": 1, "currency": "USD", "days": 1}})
    with pytest.raises(ValueError, match="US"):
        ProvisionalRateTable.from_settings({"US": {"amount": "x"}, "*": {"amount": 1, "currency": "USD", "days": 1}})


def test_a_service_that_enforces_its_own_timeout_is_called_in_the_callers_thread():
    import threading

    seen: list[int] = []

    class Inline(FakeRates):
        honours_timeout = True

        def quote(self, *a, **kw):
            seen.append(threading.get_ident())
            return super().quote(*a, **kw)

    q = quoter(Inline())
    assert q.quote_for_checkout("US", "94107")["provisional"] is False
    assert seen == [threading.get_ident()]
    failing = quoter(type("Down", (Inline,), {})("error"))
    assert failing.quote_for_checkout("US", "94107")["provisional"] is True


def test_reconcile_fails_fast_while_the_breaker_is_open_and_probes_again_later():
    now = [0.0]
    rates = FakeRates("error")
    q = ShippingQuoter(rates, TABLE, clock=CLOCK, timeout_s=0.05, reconcile_timeout_s=0.05,
                       breaker_policy=BreakerPolicy(min_calls=3, failure_pct=50, open_s=30),
                       monotonic=lambda: now[0])
    provisional = q.quote_for_checkout("US")
    for _ in range(2):
        with pytest.raises(QuoteUnavailable):
            q.reconcile(provisional, "US")
    assert rates.calls == 3
    with pytest.raises(QuoteUnavailable, match="circuit_open"):
        q.reconcile(provisional, "US")
    assert rates.calls == 3  # not called while open
    rates.mode = "ok"
    now[0] = 31.0  # the breaker half-opens: the next reconciliation is the probe
    assert q.reconcile(provisional, "US")["provisional"] is False and rates.calls == 4


class Ticker:
    """A monotonic clock the test moves by hand."""

    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_a_live_quote_is_reused_for_the_same_destination_until_its_ttl_runs_out():
    rates, tick = FakeRates(), Ticker()
    q = quoter(rates, cache_ttl_s=2.0, monotonic=tick)
    first = q.quote_for_checkout("us", "10001", 2000)
    again = q.quote_for_checkout("US", "10001", 2000)
    assert rates.calls == 1 and again == first and again is not first
    q.quote_for_checkout("US", "94107", 2000)  # another destination asks the service
    assert rates.calls == 2
    tick.t += 2.5
    q.quote_for_checkout("US", "10001", 2000)
    assert rates.calls == 3


def test_a_provisional_quote_is_never_cached():
    rates, tick = FakeRates("error"), Ticker()
    q = quoter(rates, cache_ttl_s=60.0, monotonic=tick)
    assert q.quote_for_checkout("US", "10001")["provisional"] is True
    rates.mode = "ok"
    assert q.quote_for_checkout("US", "10001")["provisional"] is False
    assert rates.calls == 2


def test_without_a_ttl_every_checkout_asks_the_rate_service():
    rates = FakeRates()
    q = quoter(rates)
    q.quote_for_checkout("US", "10001")
    q.quote_for_checkout("US", "10001")
    assert rates.calls == 2


class AsyncRates(FakeRates):
    """A rate service client with the HTTP adapter's async face."""

    honours_timeout = True

    def __init__(self, mode="ok"):
        super().__init__(mode)
        self.async_calls = 0

    async def quote_async(self, country, postal_code, weight_g, *, timeout_s):
        self.async_calls += 1
        return self.quote(country, postal_code, weight_g, timeout_s=timeout_s)


def test_the_checkout_awaits_a_client_with_an_async_face_on_the_loop_and_reuses_its_quote():
    import asyncio

    rates, tick = AsyncRates(), Ticker()
    q = quoter(rates, cache_ttl_s=2.0, monotonic=tick)
    first = asyncio.run(q.quote_for_checkout_async("US", "10001", 2000))
    again = asyncio.run(q.quote_for_checkout_async("us", "10001", 2000))
    assert first["provisional"] is False and again == first
    assert rates.async_calls == 1 and rates.calls == 1


def test_on_the_loop_a_failing_or_blackholed_service_still_gives_a_provisional_quote_within_the_timeout():
    import asyncio

    failing = quoter(AsyncRates("error"))
    doc = asyncio.run(failing.quote_for_checkout_async("US"))
    assert doc["provisional"] is True and doc["reason"] == "error"
    blackholed = quoter(FakeRates("blackhole"))  # no async face, ignores its timeout: a thread under a deadline
    t0 = time.perf_counter()
    doc = asyncio.run(blackholed.quote_for_checkout_async("US"))
    assert doc["provisional"] is True and doc["reason"] == "timeout" and time.perf_counter() - t0 < 1.0


class SlowAsyncRates(AsyncRates):
    """An async face that takes ``delay`` seconds of loop time per call."""

    def __init__(self, mode="ok", delay=0.02):
        super().__init__(mode)
        self.delay = delay

    async def quote_async(self, country, postal_code, weight_g, *, timeout_s):
        import asyncio

        self.async_calls += 1
        await asyncio.sleep(self.delay)
        if self.mode == "error":
            raise RateServiceError("error", "503")
        return RateQuote(700, "USD", 3, "simcarrier", "ground")


def test_concurrent_misses_for_one_destination_share_one_call_and_each_gets_its_own_copy():
    import asyncio

    rates = SlowAsyncRates()
    q = quoter(rates, cache_ttl_s=2.0, monotonic=Ticker())

    async def many():
        return await asyncio.gather(*(q.quote_for_checkout_async("US", "10001") for _ in range(10)),
                                    q.quote_for_checkout_async("US", "94107"))

    docs = asyncio.run(many())
    assert rates.async_calls == 2  # one per destination
    assert all(d["provisional"] is False and d == docs[0] for d in docs[:10])
    assert len({id(d) for d in docs}) == len(docs)


def test_a_shared_failed_call_gives_every_waiter_a_provisional_quote_and_nothing_is_cached():
    import asyncio

    rates = SlowAsyncRates("error")
    q = quoter(rates, cache_ttl_s=2.0, monotonic=Ticker())

    async def many():
        return await asyncio.gather(*(q.quote_for_checkout_async("US", "10001") for _ in range(5)))

    docs = asyncio.run(many())
    assert rates.async_calls == 1 and all(d["provisional"] is True and d["reason"] == "error" for d in docs)
    rates.mode = "ok"
    assert asyncio.run(q.quote_for_checkout_async("US", "10001"))["provisional"] is False
    assert rates.async_calls == 2


def test_a_quote_near_its_expiry_is_served_at_once_and_refreshed_in_the_background():
    import asyncio

    rates, tick = SlowAsyncRates(), Ticker()
    q = quoter(rates, cache_ttl_s=2.0, monotonic=tick)

    async def scenario():
        await q.quote_for_checkout_async("US", "10001")
        tick.t += 1.0  # half the TTL left: a plain hit
        await q.quote_for_checkout_async("US", "10001")
        assert rates.async_calls == 1
        tick.t += 0.7  # 0.3 s left, under a quarter of the TTL: served from the cache, one refresh starts
        t0 = time.perf_counter()
        docs = [await q.quote_for_checkout_async("US", "10001") for _ in range(5)]
        assert time.perf_counter() - t0 < rates.delay  # nobody waited for the refresh
        assert all(d["provisional"] is False for d in docs)
        await asyncio.sleep(0)  # the background call starts
        assert rates.async_calls == 2  # one refresh for the five hits
        await asyncio.sleep(rates.delay * 3)
        tick.t += 1.0  # past the first quote's expiry, within the refreshed one's
        await q.quote_for_checkout_async("US", "10001")
        assert rates.async_calls == 2

    asyncio.run(scenario())


def test_a_quote_past_its_ttl_is_never_served_while_a_refresh_is_out():
    import asyncio

    rates, tick = SlowAsyncRates(), Ticker()
    q = quoter(rates, cache_ttl_s=2.0, monotonic=tick)

    async def scenario():
        await q.quote_for_checkout_async("US", "10001")
        rates.mode = "error"
        tick.t += 2.5  # expired: the checkout waits for the call, and its failure gives a provisional quote
        doc = await q.quote_for_checkout_async("US", "10001")
        assert doc["provisional"] is True and rates.async_calls == 2

    asyncio.run(scenario())


def test_a_failed_background_refresh_caches_nothing_and_the_next_miss_calls_again():
    import asyncio

    class Broken(SlowAsyncRates):
        async def quote_async(self, country, postal_code, weight_g, *, timeout_s):
            self.async_calls += 1
            if self.async_calls > 1:
                raise ValueError("adapter bug")
            return RateQuote(700, "USD", 3, "simcarrier", "ground")

    rates, tick = Broken(), Ticker()
    q = quoter(rates, cache_ttl_s=2.0, monotonic=tick)

    async def scenario():
        await q.quote_for_checkout_async("US", "10001")
        tick.t += 1.8
        assert (await q.quote_for_checkout_async("US", "10001"))["provisional"] is False  # served, refresh starts
        await asyncio.sleep(0.01)
        assert rates.async_calls == 2 and not q._flights
        tick.t += 1.0  # expired: a foreground call, whose transport error gives a provisional quote
        doc = await q.quote_for_checkout_async("US", "10001")
        assert doc["provisional"] is True and rates.async_calls == 3

    asyncio.run(scenario())
