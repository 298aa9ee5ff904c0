"""Throttles: token-bucket rate limits for checkout and the open reads, and failed-login throttling for the
browser dashboard.

Rate limits (:class:`RateLimits`) are token buckets per API key, per client address and per product, kept in a
:class:`BucketStore`: Redis (:mod:`shopfloor.store.ratelimit_redis`) shares them across server processes and
regions; :class:`InProcessBuckets` is exact for a single process. Several buckets are taken all or nothing, so a
refused request spends none of them.

Failed-login throttling (per client address, sliding window, in-process):

API keys are long random secrets, so guessing one is hopeless anyway; the throttle keeps a scripted guesser from
using the login form as a free oracle and keeps such traffic out of the key look-ups. After ``max_failures``
refused logins within ``window_s`` seconds, a client gets ``429`` with ``Retry-After`` until its oldest counted
failure leaves the window; a successful login clears its record. State is per process (several server workers
each count on their own), which bounds the rate rather than pinning it exactly.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence


class FailedLoginThrottle:
    def __init__(self, max_failures: int = 10, window_s: float = 300.0, *, max_clients: int = 10_000,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if max_failures < 1 or window_s <= 0:
            raise ValueError("max_failures must be >= 1 and window_s > 0")
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_clients = max_clients
        self._now = monotonic
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float] | None:
        q = self._failures.get(client)
        if q is None:
            return None
        while q and now - q[0] >= self.window_s:
            q.popleft()
        if not q:
            del self._failures[client]
            return None
        return q

    def retry_after(self, client: str) -> int | None:
        """Whole seconds until ``client`` may try again, or None when it may try now."""
        with self._lock:
            now = self._now()
            q = self._recent(client, now)
            if q is None or len(q) < self.max_failures:
                return None
            return max(1, math.ceil(q[-self.max_failures] + self.window_s - now))

    def failed(self, client: str) -> None:
        with self._lock:
            now = self._now()
            q = self._recent(client, now)
            if q is None:
                if len(self._failures) >= self.max_clients:  # bounded memory: forget the oldest clients
                    for stale in list(self._failures)[: self.max_clients // 10 or 1]:
                        del self._failures[stale]
                q = self._failures[client] = deque(maxlen=self.max_failures)
            q.append(now)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


_log = logging.getLogger(__name__)


# --- token buckets ------------------------------------------------------------------------------------------------

Bucket = tuple[str, float, int]  # (key, rate per second, burst)


class BucketStore(Protocol):
    async def take(self, buckets: Sequence[Bucket]) -> tuple[int, float] | None:
        """Take one token from every bucket, or from none: None when taken, else (index of the emptiest refusing
        bucket, seconds until it holds a token)."""


class InProcessBuckets:
    """Token buckets in this process's memory (bounded: the stalest buckets are forgotten first)."""

    def __init__(self, *, max_buckets: int = 100_000, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._max = max_buckets
        self._now = monotonic
        self._lock = threading.Lock()

    async def take(self, buckets: Sequence[Bucket]) -> tuple[int, float] | None:
        return self.take_now(buckets)

    def take_now(self, buckets: Sequence[Bucket]) -> tuple[int, float] | None:
        """:meth:`take` without waiting (these buckets are in memory): the crowd's answers in the HTTP protocol
        take their tokens from a protocol callback, where nothing can be awaited."""
        with self._lock:
            now = self._now()
            levels = []
            refusal: tuple[int, float] | None = None
            for i, (key, rate, burst) in enumerate(buckets):
                tokens, at = self._buckets.get(key, (float(burst), now))
                tokens = min(float(burst), tokens + max(0.0, now - at) * rate)
                levels.append(tokens)
                if tokens < 1.0:
                    wait = (1.0 - tokens) / rate
                    if refusal is None or wait > refusal[1]:
                        refusal = (i, wait)
            if refusal is not None:
                return refusal
            if len(self._buckets) + len(buckets) > self._max:
                for stale in list(self._buckets)[: self._max // 10 or 1]:
                    del self._buckets[stale]
            for (key, _rate, _burst), tokens in zip(buckets, levels):
                self._buckets.pop(key, None)  # re-inserted last: dict order is least recently used first
                self._buckets[key] = (tokens - 1.0, now)
            return None


@dataclass(frozen=True)
class Limit:
    rate_per_s: float
    burst: int


@dataclass(frozen=True)
class RateRefusal:
    """Which limit refused (``checkout_per_key``, ``checkout_per_address``, ``checkout_per_product``,
    ``reads_per_address``) and the whole seconds to wait."""

    limit: str
    retry_after_s: int

    def details(self) -> list[dict]:
        return [{"limit": self.limit, "retry_after_s": self.retry_after_s}]


class RateLimits:
    """The API's token buckets. A limit left as None is not enforced (and costs nothing)."""

    def __init__(self, store: BucketStore, *, checkout_per_key: Limit | None = None,
                 checkout_per_address: Limit | None = None, checkout_per_product: Limit | None = None,
                 reads_per_address: Limit | None = None, read_paths: Sequence[str] = (),
                 observer: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.checkout_per_key = checkout_per_key
        self.checkout_per_address = checkout_per_address
        self.checkout_per_product = checkout_per_product
        self.reads_per_address = reads_per_address
        self.read_paths = tuple(read_paths)
        self._observe = observer or (lambda _limit: None)

    @property
    def active(self) -> bool:
        return any((self.checkout_per_key, self.checkout_per_address, self.checkout_per_product,
                    self.reads_per_address))

    async def _take(self, named: list[tuple[str, str, Limit]]) -> RateRefusal | None:
        if not named:
            return None
        try:
            refused = await self.store.take([(key, lim.rate_per_s, lim.burst) for _name, key, lim in named])
        except Exception:  # noqa: BLE001 - the bucket store (Redis) is unreachable: limits fail open, logged
            _log.exception("rate-limit store unavailable; request let through")
            return None
        return self._refusal(named, refused)

    def _refusal(self, named: list[tuple[str, str, Limit]], refused: tuple[int, float] | None) -> RateRefusal | None:
        if refused is None:
            return None
        name = named[refused[0]][0]
        self._observe(name)
        return RateRefusal(name, max(1, math.ceil(refused[1])))

    async def checkout(self, key_id: str | None, address: str | None) -> RateRefusal | None:
        return await self._take(self._checkout_buckets(key_id, address))

    @property
    def immediate(self) -> bool:
        """Whether the buckets answer without waiting (in this process's memory; not Redis)."""
        return callable(getattr(self.store, "take_now", None))

    def checkout_now(self, key_id: str | None, address: str | None) -> RateRefusal | None:
        """:meth:`checkout` without waiting; only when :attr:`immediate` (the buckets are in this process)."""
        named = self._checkout_buckets(key_id, address)
        if not named:
            return None
        refused = self.store.take_now([(key, lim.rate_per_s, lim.burst) for _name, key, lim in named])
        return self._refusal(named, refused)

    def _checkout_buckets(self, key_id: str | None, address: str | None) -> list[tuple[str, str, Limit]]:
        named = []
        if self.checkout_per_key is not None and key_id:
            named.append(("checkout_per_key", f"rl:ck:k:{key_id}", self.checkout_per_key))
        if self.checkout_per_address is not None and address:
            named.append(("checkout_per_address", f"rl:ck:a:{address}", self.checkout_per_address))
        return named

    async def products(self, skus: Sequence[str]) -> RateRefusal | None:
        """One checkout of each of ``skus`` (all of an order's products, or none, are counted)."""
        if self.checkout_per_product is None:
            return None
        return await self._take([("checkout_per_product", f"rl:ck:p:{sku}", self.checkout_per_product)
                                 for sku in dict.fromkeys(skus)])

    def is_read(self, method: str, path: str) -> bool:
        return (self.reads_per_address is not None and method in ("GET", "HEAD")
                and path.startswith(self.read_paths))

    async def read(self, address: str | None) -> RateRefusal | None:
        if self.reads_per_address is None or not address:
            return None
        return await self._take([("reads_per_address", f"rl:rd:a:{address}", self.reads_per_address)])

    def read_now(self, address: str | None) -> RateRefusal | None:
        """:meth:`read` without waiting; only when :attr:`immediate` (the buckets are in this process)."""
        if self.reads_per_address is None or not address:
            return None
        named = [("reads_per_address", f"rl:rd:a:{address}", self.reads_per_address)]
        return self._refusal(named, self.store.take_now([(key, lim.rate_per_s, lim.burst) for _n, key, lim in named]))
