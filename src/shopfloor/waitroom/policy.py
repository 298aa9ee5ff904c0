"""Admission arithmetic shared by every queue store (the Redis script mirrors :func:`admit_upto`)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from functools import lru_cache

from .tokens import PRE_OPEN, QueueTicket


@dataclass(frozen=True)
class AdmissionPolicy:
    """``units_factor`` (k): at most k x remaining units may be admitted and still checking out at once.
    ``admit_ttl_s``: how long an admitted shopper has to check out before the place goes to the next one.
    ``serve_rate_per_s``: checkouts per second the product's queue is expected to drain at (for the wait estimate).
    ``max_poll_s``: the longest Retry-After a waiting shopper is given, which bounds how late they hear "sold out".
    ``max_in_flight``: at most this many admitted shoppers checking out at once, whatever the units left (None: k x
    remaining only). It paces the opening: with 200 units and k = 2, 400 purchases would otherwise start within
    the same 0.1 s and queue in the buy path (the order writer, the processor) in front of every other checkout.
    """

    units_factor: float = 2.0
    admit_ttl_s: float = 30.0
    serve_rate_per_s: float = 50.0
    max_poll_s: int = 2
    max_in_flight: int | None = None

    def __post_init__(self) -> None:
        if self.units_factor <= 0 or self.admit_ttl_s <= 0 or self.serve_rate_per_s <= 0 or self.max_poll_s < 1:
            raise ValueError("units_factor, admit_ttl_s and serve_rate_per_s must be > 0, max_poll_s >= 1")
        if self.max_in_flight is not None and self.max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1 (None: no cap)")

    def room_for(self, remaining_units: int) -> int:
        """How many admitted shoppers may be checking out at once with ``remaining_units`` left."""
        room = math.floor(self.units_factor * max(0, remaining_units))
        return room if self.max_in_flight is None else min(room, self.max_in_flight)

    def eta_s(self, position: int) -> float:
        return round(max(0, position) / self.serve_rate_per_s, 1)

    def retry_after_s(self, position: int, remaining_units: int | None = None) -> int:
        """Seconds until a waiting shopper should ask again: the estimated wait, at most ``max_poll_s``; 1 near the
        front, and 1 whenever the units left could all be sold before a longer wait ends (remaining units <=
        serve rate x ``max_poll_s``), so that a shopper who polls rather than holding the status request hears
        ``sold_out`` within about a second of it."""
        if remaining_units is not None and remaining_units <= self.serve_rate_per_s * self.max_poll_s:
            return 1
        return max(1, min(self.max_poll_s, math.ceil(self.eta_s(position))))


def admit_upto(upto: int, arrivals: int, in_flight: int, room: int) -> int:
    """The new admission bound: ranks below it are admitted. FIFO: the bound only moves forward, by at most the
    free room (``room`` minus those admitted and still checking out), never past the last arrival."""
    free = room - in_flight
    if free <= 0 or upto >= arrivals:
        return upto
    return min(arrivals, upto + free)


@lru_cache(maxsize=8)
def _pre_open_order(seed: int, count: int) -> tuple[int, ...]:
    order = list(range(count))
    random.Random(seed).shuffle(order)
    return tuple(order)


def rank_of(ticket: QueueTicket, pre_open_count: int, seed: int) -> int:
    """A ticket's place in line from 0: the arrivals before the opening, shuffled once with the sale's seed (every
    process derives the same order from it), then everyone else in order of arrival."""
    if ticket.phase == PRE_OPEN:
        if ticket.number >= pre_open_count:  # only a token from an earlier sale of the same product
            return pre_open_count + ticket.number
        return _pre_open_order(seed, pre_open_count)[ticket.number]
    return pre_open_count + ticket.number
