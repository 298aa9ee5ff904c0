"""The queue in this process's memory: for a single server process (the SQLite demo, tests).

Several server processes need one shared queue (Redis, :mod:`shopfloor.store.queue_redis`); this store would give
each process its own line. It is the default on SQLite because a SQLite store is served by one writer process
anyway, and keeping every queue poll off the database keeps it off SQLite's single write lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from .policy import admit_upto
from .room import ADMITTED, CLAIMED, EXPIRED, UNUSED, WAITING, Entry, Opening, Place
from .tokens import AFTER_OPEN, PRE_OPEN


@dataclass
class _Sale:
    pre_seq: int = 0
    post_seq: int = 0
    opening: Opening | None = None
    upto: int = 0
    in_flight: dict[int, int] = field(default_factory=dict)  # rank -> expires (ms)
    claims: dict[int, str] = field(default_factory=dict)  # rank -> the Idempotency-Key that used the place


class InProcessQueueStore:
    def __init__(self) -> None:
        self._sales: dict[str, _Sale] = {}
        self._lock = threading.Lock()

    def _sale(self, sale: str) -> _Sale:
        s = self._sales.get(sale)
        if s is None:
            s = self._sales[sale] = _Sale()
        return s

    def _open_if_due(self, s: _Sale, now_ms: int, opens_at_ms: int, seed: int) -> None:
        if s.opening is None and now_ms >= opens_at_ms:
            s.opening = Opening(s.pre_seq, seed)

    def _advance(self, s: _Sale, now_ms: int, room: int, admit_ttl_ms: int) -> None:
        for rank in [r for r, until in s.in_flight.items() if until <= now_ms]:
            del s.in_flight[rank]
        arrivals = s.opening.pre_open_count + s.post_seq
        new = admit_upto(s.upto, arrivals, len(s.in_flight), room)
        for rank in range(s.upto, new):
            s.in_flight[rank] = now_ms + admit_ttl_ms
        s.upto = new

    def _next_admitted(self, s: _Sale, now_ms: int, room: int, admit_ttl_ms: int) -> bool:
        """Whether the next arrival of an open sale would be admitted at once. Moves the bound on as at ``now_ms``
        with the arrivals so far, which is what :meth:`_advance` with that arrival counted does first (the bound
        then moves past the arrival exactly when everyone before it is reached and a place is free)."""
        self._advance(s, now_ms, room, admit_ttl_ms)
        return s.upto >= s.opening.pre_open_count + s.post_seq and room - len(s.in_flight) >= 1

    async def enter(self, sale: str, now_ms: int, opens_at_ms: int, room: int, admit_ttl_ms: int, seed: int,
                    claim: str) -> Entry:
        return self.enter_now(sale, now_ms, opens_at_ms, room, admit_ttl_ms, seed, claim)

    def arrival_waits_now(self, sale: str, now_ms: int, opens_at_ms: int, room: int, admit_ttl_ms: int,
                          seed: int) -> bool:
        """Whether a new arrival entering now would wait (not be admitted at once); nobody enters. Answers at
        once (the room may ask from an HTTP protocol callback)."""
        with self._lock:
            s = self._sale(sale)
            self._open_if_due(s, now_ms, opens_at_ms, seed)
            if s.opening is None:
                return True
            return not self._next_admitted(s, now_ms, room, admit_ttl_ms)

    def enter_now(self, sale: str, now_ms: int, opens_at_ms: int, room: int, admit_ttl_ms: int, seed: int,
                  claim: str, *, only_waiting: bool = False) -> Entry | None:
        """:meth:`enter` without waiting; with ``only_waiting`` None (and nobody enters) when the arrival would be
        admitted at once."""
        with self._lock:
            s = self._sale(sale)
            self._open_if_due(s, now_ms, opens_at_ms, seed)
            if s.opening is None:
                s.pre_seq += 1
                return Entry(PRE_OPEN, s.pre_seq - 1, None, 0, False)
            if only_waiting and self._next_admitted(s, now_ms, room, admit_ttl_ms):
                return None
            number = s.post_seq
            s.post_seq += 1
            rank = s.opening.pre_open_count + number
            self._advance(s, now_ms, room, admit_ttl_ms)
            admitted = rank < s.upto
            if admitted:
                s.claims[rank] = claim
            return Entry(AFTER_OPEN, number, s.opening, s.upto, admitted)

    async def opening(self, sale: str, now_ms: int, opens_at_ms: int, seed: int) -> tuple[Opening | None, int]:
        return self.opening_now(sale, now_ms, opens_at_ms, seed)

    def opening_now(self, sale: str, now_ms: int, opens_at_ms: int, seed: int) -> tuple[Opening | None, int]:
        """:meth:`opening` without waiting."""
        with self._lock:
            s = self._sale(sale)
            self._open_if_due(s, now_ms, opens_at_ms, seed)
            return s.opening, s.pre_seq if s.opening is None else s.opening.pre_open_count

    async def poll(self, sale: str, rank: int, now_ms: int, room: int, admit_ttl_ms: int,
                   claim: str | None, take: bool = True) -> Place:
        return self.poll_now(sale, rank, now_ms, room, admit_ttl_ms, claim, take)

    def poll_now(self, sale: str, rank: int, now_ms: int, room: int, admit_ttl_ms: int,
                 claim: str | None, take: bool = True) -> Place:
        """:meth:`poll` without waiting (the room may ask from an HTTP protocol callback)."""
        with self._lock:
            s = self._sale(sale)
            if s.opening is None:
                return Place(WAITING, 0)
            self._advance(s, now_ms, room, admit_ttl_ms)
            if rank >= s.upto:
                return Place(WAITING, s.upto)
            holder = s.claims.get(rank)
            if rank in s.in_flight:
                if claim is None or holder == claim:
                    return Place(ADMITTED, s.upto)
                if holder is None:
                    if not take:
                        return Place(UNUSED, s.upto)
                    s.claims[rank] = claim
                    return Place(ADMITTED, s.upto)
                return Place(CLAIMED, s.upto)
            if holder is not None:  # used by a purchase that succeeded: its retries replay
                return Place(ADMITTED if claim is None or claim == holder else CLAIMED, s.upto)
            return Place(EXPIRED, s.upto)

    def waiting_upto_now(self, sale: str, rank: int, now_ms: int, room: int, admit_ttl_ms: int) -> int | None:
        """What :meth:`poll` reads for ``rank`` when the place is still WAITING (the admission bound), decided at
        once; None when it would read anything else (admitted, claimed, expired, or the sale not open). A waiting
        place is never taken, so this is :meth:`poll` for every ``claim``."""
        with self._lock:
            s = self._sale(sale)
            if s.opening is None:
                return None
            self._advance(s, now_ms, room, admit_ttl_ms)
            return s.upto if rank >= s.upto else None

    def sold_out_place_now(self, sale: str, rank: int, now_ms: int, admit_ttl_ms: int, claim: str | None) -> bool:
        """Once the product sold out: whether a checkout with place ``rank`` is answered ``sold_out`` -- the place
        was not reached, or was admitted and no purchase has used it (what :meth:`poll` with ``take=False`` reads as
        WAITING or UNUSED). Answers at once (no waiting: the room may ask from an HTTP protocol callback)."""
        with self._lock:
            s = self._sale(sale)
            if s.opening is None:
                return False
            self._advance(s, now_ms, 0, admit_ttl_ms)
            if rank >= s.upto:
                return True
            return rank in s.in_flight and s.claims.get(rank) is None

    async def finish(self, sale: str, rank: int, succeeded: bool) -> None:
        with self._lock:
            s = self._sale(sale)
            s.in_flight.pop(rank, None)
            if not succeeded:
                s.claims.pop(rank, None)

    async def stats(self, sale: str, now_ms: int) -> dict[str, int]:
        with self._lock:
            s = self._sale(sale)
            pre = s.pre_seq if s.opening is None else s.opening.pre_open_count
            live = sum(1 for until in s.in_flight.values() if until > now_ms)
            return {"arrivals": pre + s.post_seq, "admitted": s.upto, "in_flight": live}
