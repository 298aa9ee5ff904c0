"""The waiting room in front of a hot product's checkout.

A checkout for a guarded product either goes ahead (the shopper holds an admitted place) or is answered with a
signed queue token and a position. Places are admitted in order (arrivals before the opening shuffled once), and
only as many at once as the remaining units can plausibly serve (``k`` x remaining, see :class:`AdmissionPolicy`).
When the product has no units left, every waiting shopper hears ``sold_out`` on the next poll, without a queue
store call. The queue lives behind :class:`QueueStore` (Redis for several processes, in-process for one).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import secrets
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

from ..domain.errors import DomainError
from .policy import AdmissionPolicy, rank_of
from .tokens import PRE_OPEN, QueueTicket, QueueTokenCodec

ADMITTED = "admitted"
WAITING = "waiting"
SOLD_OUT = "sold_out"
EXPIRED = "expired"
CLAIMED = "claimed"  # admitted, but the place is already used by another purchase (another Idempotency-Key)
UNUSED = "unused"  # admitted, and no purchase has used the place yet (only from a poll with take=False)


_SOLD_OUT_STATUS = {"state": SOLD_OUT, "position": None, "eta_s": None}


class QueueTokenExpired(DomainError):
    code = "queue_token_expired"
    status = 403


class QueueTokenUsed(DomainError):
    code = "queue_token_used"
    status = 409


@dataclass(frozen=True)
class Opening:
    pre_open_count: int
    seed: int


@dataclass(frozen=True)
class Entry:
    """A new arrival: its ticket, and whether it was admitted at once (then its place is claimed for the caller)."""

    phase: str
    number: int
    opening: Opening | None
    upto: int
    admitted: bool


@dataclass(frozen=True)
class Place:
    """Where a ticket stands: ADMITTED, WAITING, EXPIRED (admitted, then not used in time) or CLAIMED."""

    state: str
    upto: int


class QueueStore(Protocol):
    """One product sale's queue. Every method is atomic with respect to every other caller of the same store."""

    async def enter(self, sale: str, now_ms: int, opens_at_ms: int, room: int, admit_ttl_ms: int, seed: int,
                    claim: str) -> Entry: ...

    async def opening(self, sale: str, now_ms: int, opens_at_ms: int, seed: int) -> tuple[Opening | None, int]:
        """The sale's opening (None before it opens) and the number of arrivals before the opening so far."""

    async def poll(self, sale: str, rank: int, now_ms: int, room: int, admit_ttl_ms: int,
                   claim: str | None, take: bool = True) -> Place:
        """Where ``rank`` stands. An admitted place no purchase has used yet is taken for ``claim``; with
        ``take=False`` it is left alone and read UNUSED (the product sold out: nobody should start a purchase)."""

    async def finish(self, sale: str, rank: int, succeeded: bool) -> None: ...

    async def stats(self, sale: str, now_ms: int) -> dict[str, int]:
        """{"arrivals", "admitted", "in_flight"} for metrics."""


class StockLevels(Protocol):
    def available(self, sku: str) -> int:
        """Units of ``sku`` that can still be reserved (on hand minus reserved, over all warehouses)."""


@dataclass(frozen=True)
class Decision:
    state: str  # ADMITTED, WAITING, SOLD_OUT
    sku: str
    sale: str
    rank: int | None = None
    token: str | None = None
    position: int | None = None
    eta_s: float | None = None
    retry_after_s: int = 1


@dataclass(frozen=True)
class HeldAnswer:
    """A status request's answer, and when to ask again (None: at once, as the state says)."""

    status: dict
    retry_after_s: int | None = None


class Hold:
    """A status request held by :meth:`WaitingRoom.hold_now` (no task, no ASGI cycle): ``on_answer`` gets its
    HeldAnswer once, from a loop callback, when the shopper is admitted, the product sells out, or ``wait_s``
    passes (None if the room could not read the state then). :meth:`cancel` (the client went away) drops it;
    :meth:`answer_now` answers it at once instead of calling ``on_answer``."""

    __slots__ = ("room", "token", "future", "timer", "on_answer", "_released")

    def __init__(self, room: "WaitingRoom", token: str, future: asyncio.Future, wait_s: float,
                 on_answer: Callable[["HeldAnswer | None"], None]) -> None:
        self.room = room
        self.token = token
        self.future = future
        self.on_answer: Callable[[HeldAnswer | None], None] | None = on_answer
        self._released = False
        self.timer = future.get_loop().call_later(wait_s, self._expire)
        future.add_done_callback(self._done)

    def _expire(self) -> None:
        if not self.future.done():
            self.future.set_result(None)

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self.timer.cancel()
            self.room.held -= 1

    def _done(self, future: asyncio.Future) -> None:
        self._release()
        on_answer, self.on_answer = self.on_answer, None
        if on_answer is None or future.cancelled():
            return
        try:
            answer = self._answer(future.result())
        except Exception:  # noqa: BLE001 - the stock read failed: the shopper asks again (503)
            answer = None
        on_answer(answer)

    def _answer(self, woken: dict | None) -> HeldAnswer:
        if woken is not None:  # sold out: the same answer for every held shopper, nothing to read again
            return HeldAnswer(dict(woken))
        return HeldAnswer(self.room._status_now(self.token)[0])

    def cancel(self) -> None:
        self.on_answer = None
        self.future.cancel()
        self._release()

    def answer_now(self) -> HeldAnswer:
        """Stop holding and answer with the state as it is now (``on_answer`` is not called)."""
        self.on_answer = None
        future = self.future
        woken = future.result() if future.done() and not future.cancelled() else None
        future.cancel()
        self._release()
        return self._answer(woken)


@dataclass(frozen=True)
class GuardedProduct:
    sku: str
    opens_at_s: float | None = None  # unix seconds; None: open now

    @property
    def sale(self) -> str:
        return self.sku if self.opens_at_s is None else f"{self.sku}@{int(self.opens_at_s)}"


class WaitingRoom:
    def __init__(self, store: QueueStore, codec: QueueTokenCodec, policy: AdmissionPolicy, stock: StockLevels,
                 products: Iterable[GuardedProduct], *, stock_cache_s: float = 0.2,
                 now_s: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic,
                 observer: Callable[[str, str], None] | None = None, max_held: int | None = None,
                 wake_per_turn: int = 256) -> None:
        self.store = store
        self.codec = codec
        self.policy = policy
        self.stock = stock
        self.products = {p.sku: p for p in products}
        self.stock_cache_s = stock_cache_s
        self._now_s = now_s
        self._mono = monotonic
        self._stock: dict[str, tuple[float, int]] = {}
        self._openings: dict[str, Opening] = {}
        self._observe = observer or (lambda _sku, _outcome: None)
        self.tick_s = 0.1
        # held status requests this process keeps at most (each is an open connection and a future); past it a
        # status request is answered at once, with a Retry-After (see :meth:`hold`). None: no cap
        self.max_held = max_held
        self.held = 0
        # held shoppers answered per event-loop turn when many are answered at once (sold out); 0: all at once
        self.wake_per_turn = wake_per_turn
        # sale -> heap of (rank, n, future, ticket); rank -1: held before the opening, ranked at the opening
        self._waiters: dict[str, list[tuple[int, int, asyncio.Future, QueueTicket]]] = {}
        self._counter = itertools.count()
        self._ticker: asyncio.Task | None = None
        # when this process first read a product as sold out (unix s), and how many held shoppers it then told at
        # once: with the shoppers' own clocks, the sold-out notice splits into noticing it and telling them
        self.sold_out_seen_at: dict[str, float] = {}
        self.held_told_sold_out: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop that serves this room (held requests)

    # --- what is guarded --------------------------------------------------------------------------------------
    def guarded_sku(self, skus: Iterable[str]) -> str | None:
        """The first guarded product among a checkout's lines, or None when the room does not apply."""
        for sku in skus:
            if sku in self.products:
                return sku
        return None

    def remaining(self, sku: str) -> int:
        """Units left, read at most every ``stock_cache_s`` per process (the sold-out notice waits at most that)."""
        now = self._mono()
        cached = self._stock.get(sku)
        if cached is not None and now - cached[0] < self.stock_cache_s:
            return cached[1]
        units = max(0, int(self.stock.available(sku)))
        self._stock[sku] = (now, units)
        if units == 0:
            self.sold_out_seen_at.setdefault(sku, self._now_s())
        else:
            self.sold_out_seen_at.pop(sku, None)
        return units

    def stock_committed(self, sku: str, units: int) -> None:
        """The order writer committed reservations of ``sku`` and ``units`` are left (any thread). The room takes
        it as its stock reading at once; at 0 every held shopper of the product hears ``sold_out`` now, not after
        the purchase that took the last unit has gone through payment, nor at the next stock read."""
        if sku not in self.products:
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            self._stock.pop(sku, None)  # nobody held yet: the next read goes to the store
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._stock_now(sku, units)
        else:
            try:
                loop.call_soon_threadsafe(self._stock_now, sku, units)
            except RuntimeError:  # the loop closed meanwhile
                pass

    def _stock_now(self, sku: str, units: int) -> None:
        units = max(0, int(units))
        self._stock[sku] = (self._mono(), units)
        if units:
            self.sold_out_seen_at.pop(sku, None)
            return
        self.sold_out_seen_at.setdefault(sku, self._now_s())
        sale = self.products[sku].sale
        if self._waiters.get(sale):
            self._wake_all(sale, _SOLD_OUT_STATUS)

    # --- the checkout's gate ----------------------------------------------------------------------------------
    def sold_out_now(self, sku: str) -> Decision | None:
        """SOLD_OUT when guarded ``sku`` reads sold out in this process (no queue store call), else None: the gate
        answers such a checkout before anything else (its rate limits included: nothing is left to protect)."""
        if self.remaining(sku) != 0:
            return None
        return self._decided(Decision(SOLD_OUT, sku, self.products[sku].sale), "sold_out")

    def sold_out_for_token_now(self, sku: str, token: str, claim: str) -> Decision | None:
        """SOLD_OUT for a checkout with ``Queue-Token`` of guarded ``sku`` read sold out, decided without waiting,
        when :meth:`admit` would decide the same (the place was not reached, or was admitted and no purchase used
        it); None whenever anything else could be the answer (a purchase under way with the place, a token that
        is expired, forged or for another product, the sale not open in this process) or the queue store cannot
        answer at once (Redis). Only the in-process store answers at once."""
        peek = getattr(self.store, "sold_out_place_now", None)
        if peek is None or self.remaining(sku) != 0:
            return None
        product = self.products[sku]
        opening = self._openings.get(product.sale)
        if opening is None:
            return None
        try:
            ticket = self.codec.read_for(token, sku)
        except DomainError:
            return None
        now_s = self._now_s()
        if ticket.expired(now_s):
            return None
        rank = rank_of(ticket, opening.pre_open_count, opening.seed)
        if not peek(product.sale, rank, int(now_s * 1000), self._ttl_ms(), claim):
            return None
        return self._decided(Decision(SOLD_OUT, sku, product.sale, rank=rank), "sold_out")

    def waiting_now(self, sku: str, token: str | None, claim: str) -> Callable[[], Decision | None] | None:
        """For a checkout of guarded ``sku`` with units left that :meth:`admit` would answer WAITING right now: the
        function that makes that decision (enters a new arrival in line, or reads a waiting place), to be called in
        the same event-loop turn after the rate limits, as the gate does; None whenever anything else could be the
        answer (admitted at once, a place reached, a token expired, forged or for another product) or the queue
        store cannot answer at once (Redis). Only the in-process store answers at once: this is how the crowd's
        queued checkouts are answered from an HTTP protocol callback, where nothing can be awaited."""
        store = self.store
        waits = getattr(store, "arrival_waits_now", None)
        if waits is None:
            return None
        product = self.products[sku]
        remaining = self.remaining(sku)
        if remaining == 0:
            return None
        if self._loop is None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:  # asked outside the server's loop (tests)
                pass
        now_s = self._now_s()
        now_ms = int(now_s * 1000)
        room, ttl_ms, opens_ms = self.policy.room_for(remaining), self._ttl_ms(), self._opens_ms(product)
        sale = product.sale
        if token is None:
            seed = secrets.randbits(62)
            if not waits(sale, now_ms, opens_ms, room, ttl_ms, seed):
                return None

            def enter() -> Decision | None:
                entry = store.enter_now(sale, now_ms, opens_ms, room, ttl_ms, seed, claim, only_waiting=True)
                if entry is None:
                    return None
                if entry.opening is not None:
                    self._openings[sale] = entry.opening
                issued = self.codec.issue(sku, entry.phase, entry.number, now_s)
                if entry.phase == PRE_OPEN:
                    return self._decided(self._pre_open(product, issued, entry.number + 1, now_s), "queued")
                rank = rank_of(QueueTicket(sku, entry.phase, entry.number, 0), entry.opening.pre_open_count,
                               entry.opening.seed)
                return self._decided(self._waiting(product, issued, rank, entry.upto, remaining), "queued")

            return enter
        try:
            ticket = self.codec.read_for(token, sku)
        except DomainError:
            return None
        if ticket.expired(now_s):
            return None
        opening = self._openings.get(sale)
        pre_arrivals = 0 if opening is None else opening.pre_open_count
        if opening is None:
            opening, pre_arrivals = store.opening_now(sale, now_ms, opens_ms, secrets.randbits(62))
            if opening is not None:
                self._openings[sale] = opening
        if opening is None:
            return lambda: self._decided(self._pre_open(product, token, pre_arrivals, now_s), "queued")
        rank = rank_of(ticket, opening.pre_open_count, opening.seed)
        upto = store.waiting_upto_now(sale, rank, now_ms, room, ttl_ms)
        if upto is None:
            return None
        return lambda: self._decided(self._waiting(product, token, rank, upto, remaining), "queued")

    async def admit(self, sku: str, token: str | None, claim: str) -> Decision:
        """Decide a checkout of guarded ``sku``: ADMITTED (go ahead; call :meth:`finish` after), WAITING (answer
        429 with the token) or SOLD_OUT. ``claim`` (the Idempotency-Key) ties an admitted place to one purchase:
        retries of that purchase pass again, another purchase with the same token is refused."""
        product = self.products[sku]
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        now_s = self._now_s()
        remaining = self.remaining(sku)
        if token is None:
            if remaining == 0:
                return self._decided(Decision(SOLD_OUT, sku, product.sale), "sold_out")
            entry = await self.store.enter(product.sale, int(now_s * 1000), self._opens_ms(product),
                                           self.policy.room_for(remaining), self._ttl_ms(), secrets.randbits(62),
                                           claim)
            if entry.opening is not None:
                self._openings[product.sale] = entry.opening
            ticket = QueueTicket(sku, entry.phase, entry.number, 0)
            if entry.admitted:
                rank = rank_of(ticket, entry.opening.pre_open_count, entry.opening.seed)
                return self._decided(Decision(ADMITTED, sku, product.sale, rank=rank), "admitted")
            issued = self.codec.issue(sku, entry.phase, entry.number, now_s)
            if entry.phase == PRE_OPEN:
                return self._decided(self._pre_open(product, issued, entry.number + 1, now_s), "queued")
            rank = rank_of(ticket, entry.opening.pre_open_count, entry.opening.seed)
            return self._decided(self._waiting(product, issued, rank, entry.upto, remaining), "queued")
        ticket = self._ticket(token, sku, now_s)
        opening, pre_arrivals = await self._opening(product, now_s)
        if opening is None:
            return self._decided(self._pre_open(product, token, pre_arrivals, now_s), "queued")
        rank = rank_of(ticket, opening.pre_open_count, opening.seed)
        # sold out: an admitted place nobody has used yet is not taken, and its shopper hears sold_out now rather
        # than from the buy path (where the checkout would queue behind the crowd's purchases, only to fail); a
        # purchase already under way with this place (a retry, a replay) still goes on to the buy path
        place = await self.store.poll(product.sale, rank, int(now_s * 1000), self.policy.room_for(remaining),
                                      self._ttl_ms(), claim, take=remaining > 0)
        if place.state == UNUSED:
            return self._decided(Decision(SOLD_OUT, sku, product.sale, rank=rank), "sold_out")
        if place.state == ADMITTED:
            return self._decided(Decision(ADMITTED, sku, product.sale, rank=rank), "admitted")
        if place.state == CLAIMED:
            self._observe(sku, "token_used")
            raise QueueTokenUsed("Queue-Token: this place was already used for another purchase "
                                 "(another Idempotency-Key)", [{"field": "Queue-Token"}])
        if place.state == EXPIRED:
            self._observe(sku, "token_expired")
            raise QueueTokenExpired("Queue-Token: the admitted place was not used in time; check out without the "
                                    "header to queue again", [{"field": "Queue-Token"}])
        if remaining == 0:
            return self._decided(Decision(SOLD_OUT, sku, product.sale, rank=rank), "sold_out")
        return self._decided(self._waiting(product, token, rank, place.upto, remaining), "queued")

    async def finish(self, decision: Decision, succeeded: bool) -> None:
        """An admitted checkout ended: its place stops counting against the room; a failed purchase gives the place
        up (the token then reads ``expired``), a successful one keeps it claimed for replays."""
        if decision.state == ADMITTED and decision.rank is not None:
            await self.store.finish(decision.sale, decision.rank, succeeded)
            self._stock.pop(decision.sku, None)  # the next read sees the units this checkout took
            if succeeded and self._waiters.get(decision.sale) and self.remaining(decision.sku) == 0:
                # this purchase took the last unit: every held shopper hears it now, not at the next tick
                self._wake_all(decision.sale, _SOLD_OUT_STATUS)

    # --- GET /v1/queue/{token} --------------------------------------------------------------------------------
    async def status(self, token: str, wait_s: float = 0.0) -> dict:
        """``{"state", "position", "eta_s"}`` for a token; QueueTokenInvalid when it is not ours. With ``wait_s`` a
        waiting shopper's answer is held until its state changes (admitted, sold out, expired) or ``wait_s`` passes:
        one held request per shopper instead of a poll every second, and the sold-out notice goes out at once."""
        return (await self.hold(token, wait_s)).status

    async def hold(self, token: str, wait_s: float = 0.0) -> "HeldAnswer":
        """:meth:`status`, with when to ask again: ``retry_after_s`` is set when a held request was answered at
        once because this process already holds ``max_held`` of them (then the shopper asks again after it)."""
        status, rank, product = await self._status(token)
        if status["state"] != WAITING or wait_s <= 0 or rank is None:
            return HeldAnswer(status)
        over = self._over_cap(status, rank, product)
        if over is not None:
            return over
        future = self._park(product, rank, token)
        try:
            answer = await asyncio.wait_for(future, wait_s)
        except asyncio.TimeoutError:
            answer = None
        finally:
            self.held -= 1
        if answer is not None:  # sold out: the same answer for every held shopper, nothing to read again
            return HeldAnswer(dict(answer))
        return HeldAnswer((await self._status(token))[0])

    def hold_now(self, token: str, wait_s: float,
                 on_answer: Callable[["HeldAnswer | None"], None]) -> "HeldAnswer | Hold | None":
        """:meth:`hold` without a task, for an HTTP protocol callback: the answer now (a HeldAnswer), or a
        :class:`Hold` whose ``on_answer`` is called once, from the loop, when the state changes or ``wait_s``
        passes -- the same answers :meth:`hold` gives. None when the queue store cannot answer at once (Redis).
        Raises DomainError for a token that is not ours, as :meth:`hold` does."""
        if not callable(getattr(self.store, "poll_now", None)) or not callable(
                getattr(self.store, "opening_now", None)):
            return None
        status, rank, product = self._status_now(token)
        if status["state"] != WAITING or wait_s <= 0 or rank is None:
            return HeldAnswer(status)
        over = self._over_cap(status, rank, product)
        if over is not None:
            return over
        return Hold(self, token, self._park(product, rank, token), wait_s, on_answer)

    def _over_cap(self, status: dict, rank: int, product: "GuardedProduct") -> "HeldAnswer | None":
        """The answer at once, with when to ask again, when this process already holds ``max_held`` requests."""
        if self.max_held is None or self.held < self.max_held:
            return None
        self._observe(product.sku, "hold_over_cap")
        position = status["position"] or 1
        retry = (self.policy.retry_after_s(position, self.remaining(product.sku)) if rank >= 0
                 else max(1, min(self.policy.max_poll_s, int(status["eta_s"] or 0) + 1)))
        return HeldAnswer(status, retry_after_s=retry)

    def _park(self, product: "GuardedProduct", rank: int, token: str) -> asyncio.Future:
        """A held shopper's future, woken by the ticker (admitted: None) or the sell-out (the sold-out answer);
        counts one held request (the caller gives it back when the future is done)."""
        self._loop = asyncio.get_running_loop()
        future = self._loop.create_future()
        heapq.heappush(self._waiters.setdefault(product.sale, []),
                       (rank, next(self._counter), future, self.codec.read(token)))
        if self._ticker is None or self._ticker.done():
            self._ticker = self._loop.create_task(self._tick())
        self.held += 1
        return future

    def _status_now(self, token: str) -> tuple[dict, int | None, "GuardedProduct | None"]:
        """:meth:`_status` without waiting; only with a queue store that answers at once (in this process)."""
        now_s = self._now_s()
        known, ticket, product = self._status_start(token, now_s)
        if known is not None:
            return known, None, None
        opening, pre_arrivals = self._openings.get(product.sale), 0
        if opening is None:
            opening, pre_arrivals = self.store.opening_now(product.sale, int(now_s * 1000), self._opens_ms(product),
                                                           secrets.randbits(62))
            if opening is not None:
                self._openings[product.sale] = opening
        if opening is None:
            return self._pre_open_status(product, pre_arrivals, now_s)
        rank = rank_of(ticket, opening.pre_open_count, opening.seed)
        return self._place_status(self.store.poll_now(*self._poll_args(product, rank, now_s)), rank, product)

    async def _status(self, token: str) -> tuple[dict, int | None, GuardedProduct | None]:
        now_s = self._now_s()
        known, ticket, product = self._status_start(token, now_s)
        if known is not None:
            return known, None, None
        opening, pre_arrivals = await self._opening(product, now_s)
        if opening is None:
            return self._pre_open_status(product, pre_arrivals, now_s)
        rank = rank_of(ticket, opening.pre_open_count, opening.seed)
        return self._place_status(await self.store.poll(*self._poll_args(product, rank, now_s)), rank, product)

    def _status_start(self, token: str, now_s: float) -> tuple[dict | None, QueueTicket, "GuardedProduct | None"]:
        """A status that needs no queue store (expired, sold out), else None with the token's ticket and product."""
        ticket = self.codec.read(token)
        product = self.products.get(ticket.sku)
        if ticket.expired(now_s) or product is None:
            return {"state": EXPIRED, "position": None, "eta_s": None}, ticket, None
        if self.remaining(ticket.sku) == 0:
            return dict(_SOLD_OUT_STATUS), ticket, None
        return None, ticket, product

    @staticmethod
    def _pre_open_status(product: "GuardedProduct", pre_arrivals: int,
                         now_s: float) -> tuple[dict, int, "GuardedProduct"]:
        # before the opening nobody has a rank yet: a held request wakes at the opening (rank 0 sorts first)
        until_open = round(max(0.0, product.opens_at_s - now_s), 1)
        return {"state": WAITING, "position": pre_arrivals, "eta_s": until_open}, -1, product

    def _poll_args(self, product: "GuardedProduct", rank: int, now_s: float) -> tuple:
        """What a status request asks the queue store's ``poll`` (no claim: it reads, never takes a place)."""
        return (product.sale, rank, int(now_s * 1000), self.policy.room_for(self.remaining(product.sku)),
                self._ttl_ms(), None)

    def _place_status(self, place: "Place", rank: int,
                      product: "GuardedProduct") -> tuple[dict, int | None, "GuardedProduct | None"]:
        if place.state in (ADMITTED, CLAIMED):
            return {"state": ADMITTED, "position": 0, "eta_s": 0.0}, None, None
        if place.state == EXPIRED:
            return {"state": EXPIRED, "position": None, "eta_s": None}, None, None
        position = rank - place.upto + 1
        return {"state": WAITING, "position": position, "eta_s": self.policy.eta_s(position)}, rank, product

    async def _tick(self) -> None:
        """While shoppers are held: every ``tick_s``, move each sale's admission bound (admission follows time and
        free room, not who happens to poll) and answer the held shoppers it reached, or all of them at sell-out."""
        while any(self._waiters.values()):
            await asyncio.sleep(self.tick_s)
            for sale, heap in list(self._waiters.items()):
                while heap and heap[0][2].done():  # answered by a timeout
                    heapq.heappop(heap)
                if not heap:
                    self._waiters.pop(sale, None)
                    continue
                product = next(p for p in self.products.values() if p.sale == sale)
                try:
                    if self.remaining(product.sku) == 0:
                        self._wake_all(sale, _SOLD_OUT_STATUS)
                        continue
                    upto = await self._admission_bound(product)
                except Exception:  # noqa: BLE001 - the store is unreachable: the held requests time out instead
                    continue
                while heap and (upto is None or heap[0][0] < upto):
                    _rank, _n, future, _ticket = heapq.heappop(heap)
                    if not future.done():
                        future.set_result(None)

    def _wake_all(self, sale: str, answer: dict | None) -> None:
        """Answer every shopper held on ``sale`` (with ``answer``, or None: each reads its place again), at most
        ``wake_per_turn`` per event-loop turn: thousands of answers in one turn would hold up every other request's
        next step (an ordinary checkout's, a purchase's) for as long as writing them all takes."""
        heap = self._waiters.pop(sale, [])
        if answer is _SOLD_OUT_STATUS:
            sku = next((p.sku for p in self.products.values() if p.sale == sale), sale)
            told = sum(1 for entry in heap if not entry[2].done())
            self.held_told_sold_out[sku] = self.held_told_sold_out.get(sku, 0) + told
        self._wake_some([entry[2] for entry in heap], answer)

    def _wake_some(self, futures: list[asyncio.Future], answer: dict | None, start: int = 0) -> None:
        end = start + self.wake_per_turn if self.wake_per_turn else len(futures)
        for future in futures[start:end]:
            if not future.done():
                future.set_result(answer)
        if end < len(futures):
            futures[0].get_loop().call_soon(self._wake_some, futures, answer, end)

    async def _admission_bound(self, product: GuardedProduct) -> int | None:
        """The sale's admission bound after moving it on (-1 before the opening, when nobody is reached); None when
        every held shopper must be answered now (sold out)."""
        now_s = self._now_s()
        remaining = self.remaining(product.sku)
        if remaining == 0:
            return None
        opening, _ = await self._opening(product, now_s)
        if opening is None:
            return -1  # nobody is reached before the opening
        heap = self._waiters.get(product.sale, [])
        if heap and heap[0][0] == -1:
            # held before the opening: each now gets its place (the shuffle is fixed) and stays held until it is
            # admitted or the product sells out; answering them all now would bring every one of them back at
            # once with a new request, at the moment the first admitted shoppers check out
            ranked = [(rank_of(t, opening.pre_open_count, opening.seed) if r == -1 else r, n, f, t)
                      for r, n, f, t in heap if not f.done()]
            heap[:] = ranked
            heapq.heapify(heap)
        place = await self.store.poll(product.sale, 2**62, int(now_s * 1000), self.policy.room_for(remaining),
                                      self._ttl_ms(), None)
        return place.upto

    async def stats(self) -> dict[str, dict[str, int]]:
        now_ms = int(self._now_s() * 1000)
        return {sku: await self.store.stats(p.sale, now_ms) for sku, p in self.products.items()}

    # --- helpers ----------------------------------------------------------------------------------------------
    def _ticket(self, token: str, sku: str, now_s: float) -> QueueTicket:
        ticket = self.codec.read_for(token, sku)
        if ticket.expired(now_s):
            self._observe(sku, "token_expired")
            raise QueueTokenExpired("Queue-Token: the token has expired; check out without the header to queue "
                                    "again", [{"field": "Queue-Token"}])
        return ticket

    async def _opening(self, product: GuardedProduct, now_s: float) -> tuple[Opening | None, int]:
        known = self._openings.get(product.sale)
        if known is not None:
            return known, known.pre_open_count
        opening, pre = await self.store.opening(product.sale, int(now_s * 1000), self._opens_ms(product),
                                                secrets.randbits(62))
        if opening is not None:
            self._openings[product.sale] = opening  # fixed once the sale opens
        return opening, pre

    def _waiting(self, product: GuardedProduct, token: str, rank: int, upto: int, remaining: int) -> Decision:
        position = max(1, rank - upto + 1)
        return Decision(WAITING, product.sku, product.sale, rank=rank, token=token, position=position,
                        eta_s=self.policy.eta_s(position),
                        retry_after_s=self.policy.retry_after_s(position, remaining))

    def _pre_open(self, product: GuardedProduct, token: str, arrivals: int, now_s: float) -> Decision:
        until_open = max(0.0, (product.opens_at_s or now_s) - now_s)
        return Decision(WAITING, product.sku, product.sale, token=token, position=arrivals,
                        eta_s=round(until_open, 1),
                        retry_after_s=max(1, min(self.policy.max_poll_s, int(until_open) + 1)))

    def _opens_ms(self, product: GuardedProduct) -> int:
        return 0 if product.opens_at_s is None else int(product.opens_at_s * 1000)

    def _ttl_ms(self) -> int:
        return int(self.policy.admit_ttl_s * 1000)

    def _decided(self, decision: Decision, outcome: str) -> Decision:
        self._observe(decision.sku, outcome)
        return decision

