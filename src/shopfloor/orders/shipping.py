"""Shipping quotes that never hold checkout hostage: a live carrier rate when it answers in time, otherwise a
provisional estimate from a configured table, flagged and reconciled later by the worker."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from ..domain.clock import Clock
from ..payments import BreakerPolicy, CircuitBreaker

log = logging.getLogger(__name__)

DEFAULT_WEIGHT_G = 1000
#: Destinations the live-quote cache holds at most before it starts over.
_CACHE_MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class RateQuote:
    amount: int  # minor units
    currency: str
    days: int
    carrier: str
    service: str


class RateServiceError(Exception):
    """The rate service failed; ``reason`` is ``timeout``, ``error`` or ``unavailable``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class RateQuoter(Protocol):
    """A carrier-rate service. Raises :class:`RateServiceError` on failure; must respect ``timeout_s``.

    ``honours_timeout = True`` (optional) declares that ``quote`` itself returns or raises within ``timeout_s``;
    :class:`ShippingQuoter` then calls it in the caller's thread instead of through its pool under a hard deadline.
    """

    def quote(self, country: str, postal_code: str | None, weight_g: int, *, timeout_s: float) -> RateQuote: ...

    # Optional: ``async def quote_async(...)`` with the same arguments, awaited by the checkout on its event loop
    # (``ShippingQuoter.quote_for_checkout_async``) when the adapter also ``honours_timeout``.


class ProvisionalRateTable:
    """Configured fallback estimates per destination country; ``"*"`` covers every other country."""

    def __init__(self, rows: Mapping[str, tuple[int, str, int]]) -> None:
        if "*" not in rows:
            raise ValueError("the provisional rate table needs a '*' row for other countries")
        self._rows = {k.upper(): v for k, v in rows.items()}

    @classmethod
    def from_settings(cls, table: Mapping[str, Mapping[str, Any]]) -> ProvisionalRateTable:
        rows: dict[str, tuple[int, str, int]] = {}
        for country, row in table.items():
            try:
                amount, currency, days = int(row["amount"]), str(row["currency"]).upper(), int(row["days"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(
                    f"shipping_provisional_rates[{country!r}] needs integer amount, currency and days"
                ) from exc
            if amount < 0 or days < 0 or len(currency) != 3:
                raise ValueError(f"shipping_provisional_rates[{country!r}] has a negative value or bad currency")
            rows[country] = (amount, currency, days)
        return cls(rows)

    def estimate(self, country: str) -> tuple[int, str, int]:
        return self._rows.get(country.upper(), self._rows["*"])


class QuoteUnavailable(Exception):
    """Reconciliation could not get a live quote yet (the outbox retries)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"live shipping quote unavailable: {reason}")
        self.reason = reason


class ShippingQuoter:
    """Quotes for checkout (bounded by ``timeout_s``, a breaker skips a dead service) and reconciliation."""

    def __init__(
        self,
        quoter: RateQuoter,
        table: ProvisionalRateTable,
        *,
        clock: Clock,
        timeout_s: float = 0.25,
        reconcile_timeout_s: float = 2.0,
        breaker_policy: BreakerPolicy | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        threads: int = 16,
        cache_ttl_s: float = 0.0,
    ) -> None:
        self._quoter = quoter
        self._table = table
        self._clock = clock
        self.timeout_s = timeout_s
        self.reconcile_timeout_s = reconcile_timeout_s
        self.breaker = CircuitBreaker("rates", breaker_policy or BreakerPolicy(), monotonic=monotonic)
        self._threads = threads
        self._executor: cf.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        # Live quotes by destination, reused for ``cache_ttl_s`` seconds (0: every checkout asks the service).
        # Only live quotes are kept: a provisional answer is never served from here, so ``provisional`` still
        # says "the rate service gave no live rate for this destination within the last ``cache_ttl_s``".
        self.cache_ttl_s = cache_ttl_s
        self._monotonic = monotonic
        self._cache: dict[tuple[str, str | None, int], tuple[float, dict[str, Any]]] = {}
        # The async path's calls in flight, by destination: checkouts that miss the cache while a call for the same
        # destination is out await that call instead of making their own (one call per destination at a time),
        # and a hit in the last quarter of its TTL starts that call in the background, so that with a warm cache
        # no checkout waits for the rate service (the quote it gets is still within ``cache_ttl_s``).
        self._flights: dict[tuple[str, str | None, int], asyncio.Future] = {}

    @property
    def quoter(self) -> RateQuoter:
        """The rate service client this quoter calls (diagnostics and benchmarks wrap or inspect it)."""
        return self._quoter

    def quote_for_checkout(
        self, country: str, postal_code: str | None = None, weight_g: int = DEFAULT_WEIGHT_G
    ) -> dict[str, Any]:
        """A live quote, or a provisional one ``{"provisional": true, "reason": ...}``. Never raises for the
        rate service's trouble and never takes much longer than ``timeout_s``. A live quote for the same
        destination and weight from the last ``cache_ttl_s`` seconds is reused (a copy)."""
        key, ready = self._before_call(country, postal_code, weight_g)
        if ready is not None:
            return ready
        try:
            quote = self._bounded(country, postal_code, weight_g, self.timeout_s)
        except RateServiceError as exc:
            self.breaker.record_failure()
            return self.provisional(country, exc.reason)
        return self._after_call(key, quote)

    async def quote_for_checkout_async(
        self, country: str, postal_code: str | None = None, weight_g: int = DEFAULT_WEIGHT_G
    ) -> dict[str, Any]:
        """:meth:`quote_for_checkout` on the running event loop: a cached quote without any await; a rate service
        client with ``quote_async`` (the HTTP one) awaited on the loop, any other in a thread. Concurrent misses
        for one destination share one call; a cached quote close to its expiry is refreshed in the background."""
        key = (country.upper(), (postal_code or "").strip().upper() or None, weight_g)
        if self.cache_ttl_s > 0:
            hit = self._cache.get(key)
            now = self._monotonic()
            if hit is not None and hit[0] > now:
                if hit[0] - now < self.cache_ttl_s / 4 and key not in self._flights and self.breaker.allow():
                    self._fly(key, country, postal_code, weight_g)  # refresh ahead, in the background
                return dict(hit[1])
            flight = self._flights.get(key)
            if flight is not None:  # another checkout's call for this destination is out: share its answer
                return dict(await asyncio.shield(flight))
        if not self.breaker.allow():
            return self.provisional(country, "rate_service_circuit_open")
        if self.cache_ttl_s <= 0:
            return await self._call_async(key, country, postal_code, weight_g)
        return dict(await asyncio.shield(self._fly(key, country, postal_code, weight_g)))

    def _fly(self, key: tuple[str, str | None, int], country: str, postal_code: str | None, weight_g: int
             ) -> asyncio.Future:
        task = asyncio.get_running_loop().create_task(self._call_async(key, country, postal_code, weight_g))
        self._flights[key] = task
        task.add_done_callback(partial(self._landed, key))
        return task

    def _landed(self, key: tuple[str, str | None, int], task: asyncio.Future) -> None:
        if self._flights.get(key) is task:
            del self._flights[key]
        if not task.cancelled() and task.exception() is not None:
            # Its waiters got the error; a background refresh has none, and the next miss calls again.
            log.warning("rate quote for %s failed: %r", key, task.exception())

    async def _call_async(self, key: tuple[str, str | None, int], country: str, postal_code: str | None,
                          weight_g: int) -> dict[str, Any]:
        native = getattr(self._quoter, "quote_async", None)
        try:
            if native is not None and getattr(self._quoter, "honours_timeout", False) is True:
                try:
                    quote = await native(country, postal_code, weight_g, timeout_s=self.timeout_s)
                except RateServiceError:
                    raise
                except Exception as exc:  # a transport error of a real adapter
                    raise RateServiceError("error", f"{type(exc).__name__}: {exc}") from exc
            else:
                quote = await asyncio.to_thread(self._bounded, country, postal_code, weight_g, self.timeout_s)
        except RateServiceError as exc:
            self.breaker.record_failure()
            return self.provisional(country, exc.reason)
        return self._after_call(key, quote)

    def _before_call(self, country: str, postal_code: str | None, weight_g: int
                     ) -> tuple[tuple[str, str | None, int], dict[str, Any] | None]:
        """(cache key, an answer that needs no call: a cached live quote, or provisional while the breaker is
        open)."""
        key = (country.upper(), (postal_code or "").strip().upper() or None, weight_g)
        if self.cache_ttl_s > 0:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > self._monotonic():
                return key, dict(hit[1])
        if not self.breaker.allow():
            return key, self.provisional(country, "rate_service_circuit_open")
        return key, None

    def _after_call(self, key: tuple[str, str | None, int], quote: RateQuote) -> dict[str, Any]:
        self.breaker.record_success()
        doc = self._live(quote)
        if self.cache_ttl_s > 0:
            if len(self._cache) >= _CACHE_MAX_ENTRIES:
                self._cache.clear()  # many destinations: start over rather than keep an unbounded dict
            self._cache[key] = (self._monotonic() + self.cache_ttl_s, doc)
            return dict(doc)
        return doc

    def provisional(self, country: str, reason: str) -> dict[str, Any]:
        amount, currency, days = self._table.estimate(country)
        return {
            "provisional": True,
            "reason": reason,
            "amount": amount,
            "currency": currency,
            "days": days,
            "source": "provisional_table",
            "quoted_at": self._clock.now().isoformat(),
        }

    def reconcile(
        self,
        shipping: Mapping[str, Any],
        country: str,
        postal_code: str | None = None,
        weight_g: int = DEFAULT_WEIGHT_G,
    ) -> dict[str, Any] | None:
        """For the worker: replace a provisional quote by a live one, keeping the estimate alongside.

        Returns the new ``shipping`` document, or ``None`` when there is nothing to reconcile. Raises
        :class:`QuoteUnavailable` while the rate service still fails, so the outbox retries with backoff.
        """
        if not shipping.get("provisional"):
            return None
        if not self.breaker.allow():
            # Fail fast while the breaker is open: each reconciliation used to wait out its whole timeout
            # (2 s), and the outbox records a batch's outcomes together, so one of them held up the batch.
            raise QuoteUnavailable("rate_service_circuit_open")
        try:
            quote = self._bounded(country, postal_code, weight_g, self.reconcile_timeout_s)
        except RateServiceError as exc:
            self.breaker.record_failure()
            raise QuoteUnavailable(exc.reason) from exc
        self.breaker.record_success()
        estimate = {k: v for k, v in shipping.items() if k != "provisional_estimate"}
        live = self._live(quote)
        live["provisional_estimate"] = estimate
        live["reconciled_at"] = self._clock.now().isoformat()
        if estimate.get("currency") == quote.currency and "amount" in estimate:
            live["difference"] = quote.amount - int(estimate["amount"])
        return live

    def _live(self, quote: RateQuote) -> dict[str, Any]:
        return {
            "provisional": False,
            "amount": quote.amount,
            "currency": quote.currency,
            "days": quote.days,
            "carrier": quote.carrier,
            "service": quote.service,
            "source": "rate_service",
            "quoted_at": self._clock.now().isoformat(),
        }

    def _bounded(self, country: str, postal_code: str | None, weight_g: int, timeout_s: float) -> RateQuote:
        """Call the quoter with a hard deadline, whether or not the adapter honours ``timeout_s`` itself."""
        if getattr(self._quoter, "honours_timeout", False) is True:
            try:
                return self._quoter.quote(country, postal_code, weight_g, timeout_s=timeout_s)
            except RateServiceError:
                raise
            except Exception as exc:  # a transport error of a real adapter
                raise RateServiceError("error", f"{type(exc).__name__}: {exc}") from exc
        with self._lock:
            if self._executor is None:
                self._executor = cf.ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="rates")
            pool = self._executor
        future = pool.submit(self._quoter.quote, country, postal_code, weight_g, timeout_s=timeout_s)
        try:
            return future.result(timeout=timeout_s)
        except cf.TimeoutError:
            future.cancel()
            raise RateServiceError("timeout", f"no rate within {timeout_s:.3f}s") from None
        except RateServiceError:
            raise
        except Exception as exc:  # a transport error of a real adapter
            raise RateServiceError("error", f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None
