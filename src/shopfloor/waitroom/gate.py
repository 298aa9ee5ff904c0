"""The checkout's gate for flash sales: rate limits per key and address, the waiting room of a guarded product,
the per-product limit, and the bot-pattern watch, in that order (a guarded product already sold out is answered
first). Routes turn its verdict into an answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Protocol, Sequence

from ..domain.errors import DomainError
from .room import ADMITTED, SOLD_OUT, WAITING, Decision, WaitingRoom

GO = "go"
QUEUED = "queued"
SOLD = "sold_out"
RATE_LIMITED = "rate_limited"
UNAVAILABLE = "unavailable"


class CheckoutLimits(Protocol):
    async def checkout(self, key_id: str | None, address: str | None) -> Any: ...

    async def products(self, skus: Sequence[str]) -> Any: ...


class AttemptWatch(Protocol):
    async def observe(self, address: str | None, card: str | None, skus: Iterable[str], refused: bool) -> None: ...


@dataclass(frozen=True)
class Verdict:
    kind: str  # GO, QUEUED, SOLD, RATE_LIMITED, UNAVAILABLE
    decision: Decision | None = None  # the waiting room's, when the order holds a guarded product
    refusal: Any = None  # the rate limit's (limit, retry_after_s), when RATE_LIMITED
    sku: str | None = None


class CheckoutGate:
    def __init__(self, room: WaitingRoom | None = None, limits: CheckoutLimits | None = None,
                 watch: AttemptWatch | None = None) -> None:
        self.room = room
        self.limits = limits
        self.watch = watch

    async def enter(self, skus: Sequence[str], key_id: str | None, address: str | None, queue_token: str | None,
                    idempotency_key: str, card: str | None) -> Verdict:
        """GO (then call :meth:`leave` with the answer) or why not. Raises the room's token errors."""
        try:
            verdict = await self._verdict(skus, key_id, address, queue_token, idempotency_key)
        except DomainError as exc:
            if self.watch is not None:
                await self.watch.observe(address, card, skus, refused=exc.code == "queue_token_invalid")
            raise
        if self.watch is not None:
            await self.watch.observe(address, card, skus, refused=verdict.kind == RATE_LIMITED)
        return verdict

    async def _verdict(self, skus: Sequence[str], key_id: str | None, address: str | None,
                       queue_token: str | None, idempotency_key: str) -> Verdict:
        sku = None if self.room is None else self.room.guarded_sku(skus)
        early = None  # the room's decision when it was asked before the limits
        if sku is not None:
            # most of a crowd arrives after the sell-out: its answer costs no bucket (in Redis: no round trip)
            sold_out = self.room.sold_out_now(sku)
            if sold_out is not None:
                if queue_token is None:
                    return Verdict(SOLD, decision=sold_out, sku=sku)
                # a shopper who held a place (a bot retrying, an admitted shopper too late) hears sold_out at this
                # try, not after the address bucket refilled: the room decides (a purchase already under way with
                # the place still goes on to the buy path)
                try:
                    early = await self.room.admit(sku, queue_token, idempotency_key)
                except DomainError:
                    raise
                except Exception:  # noqa: BLE001 - the queue store is unreachable: the limits and the room below
                    early = None
                if early is not None and early.state == SOLD_OUT:
                    return Verdict(SOLD, decision=early, sku=sku)
        if self.limits is not None:
            refusal = await self.limits.checkout(key_id, address)
            if refusal is not None:
                return Verdict(RATE_LIMITED, refusal=refusal)
        decision = None
        if sku is not None:
            try:
                decision = early if early is not None else await self.room.admit(sku, queue_token,
                                                                                 idempotency_key)
            except DomainError:
                raise
            except Exception:  # noqa: BLE001 - the queue store is unreachable: fail closed, the product waits
                return Verdict(UNAVAILABLE, sku=sku)
            if decision.state == WAITING:
                return Verdict(QUEUED, decision=decision, sku=sku)
            if decision.state == SOLD_OUT:
                return Verdict(SOLD, decision=decision, sku=sku)
        if self.limits is not None:
            refusal = await self.limits.products(skus)
            if refusal is not None:  # an admitted place is kept: the shopper retries with the same token
                return Verdict(RATE_LIMITED, refusal=refusal)
        return Verdict(GO, decision=decision, sku=sku)

    async def leave(self, verdict: Verdict, status: int) -> None:
        """The checkout behind a GO ended with ``status``. An admitted place stops counting against the room, unless
        the answer asks for a retry (5xx, 429), which keeps it."""
        decision = verdict.decision
        if self.room is None or decision is None or decision.state != ADMITTED:
            return
        if status < 500 and status != 429:
            await self.room.finish(decision, succeeded=status in (200, 201))
