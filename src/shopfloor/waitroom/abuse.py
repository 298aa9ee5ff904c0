"""Bot patterns at a flash sale: many client addresses behind one card, or many addresses refused on one product.

A farm spreads its requests over thousands of addresses, so per-address limits never see it; what gives it away
is what the addresses share. Two patterns, each over a sliding window:

* ``one_card``: one payment card (its token, hashed) used from at least ``card_addresses`` addresses;
* ``one_product``: at least ``product_addresses`` addresses refused (rate-limited, or a forged queue token) on
  checkouts of one product -- ordinary shoppers who follow ``Retry-After`` are not refused.

Each pattern is reported once per ``cooldown_s`` and key. Memory is bounded (``max_keys`` cards/products, each
holding at most a few times its threshold of addresses).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class BotPattern:
    kind: str  # "one_card" | "one_product"
    key: str  # the card's hash, or the SKU
    addresses: int
    window_s: float

    def message(self) -> str:
        what = f"card {self.key}" if self.kind == "one_card" else f"product {self.key}"
        verb = "used from" if self.kind == "one_card" else "refused for"
        return f"bot pattern: {what} {verb} {self.addresses} client addresses in {self.window_s:.0f} s"


def card_fingerprint(token: str) -> str:
    """A card's stable, non-reversible name for alerts and logs (never the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


class _Distinct:
    """Distinct addresses per key over a sliding window."""

    def __init__(self, window_s: float, cap: int, max_keys: int) -> None:
        self.window_s = window_s
        self.cap = cap
        self.max_keys = max_keys
        self.keys: OrderedDict[str, OrderedDict[str, float]] = OrderedDict()

    def add(self, key: str, address: str, now_s: float) -> int:
        seen = self.keys.get(key)
        if seen is None:
            if len(self.keys) >= self.max_keys:
                self.keys.popitem(last=False)
            seen = self.keys[key] = OrderedDict()
        else:
            self.keys.move_to_end(key)
        seen[address] = now_s
        seen.move_to_end(address)
        while seen and (next(iter(seen.values())) <= now_s - self.window_s or len(seen) > self.cap):
            seen.popitem(last=False)
        return len(seen)


class BotPatternDetector:
    def __init__(self, *, window_s: float = 60.0, card_addresses: int = 20, product_addresses: int = 50,
                 cooldown_s: float = 300.0, max_keys: int = 50_000) -> None:
        if window_s <= 0 or card_addresses < 2 or product_addresses < 2:
            raise ValueError("window_s must be > 0 and the address thresholds >= 2")
        self.window_s = window_s
        self.card_addresses = card_addresses
        self.product_addresses = product_addresses
        self.cooldown_s = cooldown_s
        self._cards = _Distinct(window_s, 4 * card_addresses, max_keys)
        self._products = _Distinct(window_s, 4 * product_addresses, max_keys)
        self._reported: dict[tuple[str, str], float] = {}

    def observe(self, now_s: float, address: str | None, card: str | None, skus: Iterable[str],
                refused: bool) -> list[BotPattern]:
        """Record one checkout attempt; the patterns it completes (each once per cooldown)."""
        if not address:
            return []
        found = []
        if card:
            fp = card_fingerprint(card)
            n = self._cards.add(fp, address, now_s)
            if n >= self.card_addresses:
                found.append(BotPattern("one_card", fp, n, self.window_s))
        if refused:
            for sku in dict.fromkeys(skus):
                n = self._products.add(sku, address, now_s)
                if n >= self.product_addresses:
                    found.append(BotPattern("one_product", sku, n, self.window_s))
        return [p for p in found if self._first_in_cooldown(p, now_s)]

    def _first_in_cooldown(self, pattern: BotPattern, now_s: float) -> bool:
        key = (pattern.kind, pattern.key)
        last = self._reported.get(key)
        if last is not None and now_s - last < self.cooldown_s:
            return False
        if len(self._reported) > 10_000:
            self._reported.clear()
        self._reported[key] = now_s
        return True
