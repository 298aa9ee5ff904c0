"""The buy path facade used by the API: shipping quote, durable order, inline payment authorization."""

from __future__ import annotations

import asyncio
import itertools
from concurrent.futures import ThreadPoolExecutor
import os
import time
from datetime import datetime
from collections.abc import Sequence
from typing import Any, Callable

from ..payments import PaymentAttempt
from .checkout import CheckoutResult, PlaceOrder
from .payment_flow import PaymentSettlement, Settle
from .stages import StageLog
from .ports import CheckoutObserver, InlinePayments, LinePromise, OrderPromises, OrderWriter

_STATUS_RANK = {"in_stock": 0, "limited": 1, "backorder": 2, "unavailable": 3}


def combine_promises(promises: list) -> dict[str, Any] | None:
    """One promise for a whole order: the latest dates and the worst status of its lines, every reason kept."""
    if not promises:
        return None
    if len(promises) == 1:  # the common single-line order: the same document without the folds over lines
        d = promises[0].to_dict()
        deliver_by = d.get("deliver_by")
        reasons = d.get("reasons")
        return {
            "status": d["status"],
            "ship_by": (d.get("ship_by") or None) if deliver_by else None,
            "deliver_by": deliver_by or None,
            "provisional": bool(d.get("provisional")),
            "reasons": sorted(set(reasons)) if reasons else [],
            "lines": [d],
        }
    docs = [p.to_dict() for p in promises]
    dated = [d for d in docs if d.get("deliver_by")]
    worst = max(docs, key=lambda d: _STATUS_RANK.get(d["status"], 9))
    reasons = sorted({r for d in docs for r in (d.get("reasons") or [])})
    return {
        "status": worst["status"],
        "ship_by": max((d["ship_by"] for d in dated if d.get("ship_by")), default=None),
        "deliver_by": max((d["deliver_by"] for d in dated), default=None),
        "provisional": any(d.get("provisional") for d in docs),
        "reasons": reasons,
        "lines": docs,
    }


def promise_bookkeeping(record_in: Callable[[Any, list[tuple[str, Any]], datetime], None]) -> Callable:
    """A :class:`CheckoutService` ``after_place`` hook that records the promise shown for each new order (its slowest
    line, put in ``extra["promise_window"]`` by :class:`BuyPath`) in the orders' own group commit, through
    ``record_in(conn, [(order_id, window)], now)``. That feeds the promise engine's online calibration without a
    transaction (and an fsync) of its own per order."""

    def hook(conn: Any, placed: list[tuple[PlaceOrder, dict]], now: datetime) -> None:
        items = [(body["order_id"], cmd.extra["promise_window"]) for cmd, body in placed
                 if cmd.extra.get("promise_window") is not None]
        if items:
            record_in(conn, items, now)

    return hook


class _AttemptKeys:
    """Unique payment attempt keys without a system call per checkout (``uuid4`` reads ``os.urandom`` each time,
    and every call that lets go of the GIL on the event loop can leave it waiting for the writer thread): a random
    64-bit prefix per process, drawn again after a fork, and a counter. Same shape as before: ``pay_`` + 32 hex."""

    def __init__(self) -> None:
        self._pid = -1
        self._prefix = ""
        self._counter = itertools.count()

    def next(self) -> str:
        if self._pid != os.getpid():
            self._pid, self._prefix, self._counter = os.getpid(), os.urandom(8).hex(), itertools.count()
        return f"pay_{self._prefix}{next(self._counter):016x}"


_attempt_keys = _AttemptKeys()


class BuyPath:
    """Checkout orchestration. The order is durable before any processor is called; the processors and the rate
    service are other systems, so they are never called inside a database transaction."""

    def __init__(self, checkout: OrderWriter, payments: InlinePayments | None = None,
                 settlement: PaymentSettlement | None = None, promise: OrderPromises | None = None,
                 observer: CheckoutObserver | None = None, *, promise_inline: bool = False,
                 promise_threads: int = 4, stages: StageLog | None = None) -> None:
        self.checkout_service = checkout
        self.payments = payments
        self.settlement = settlement
        self.promise = promise
        self.observer = observer
        # The promise reads stock from the database: on the event loop itself when that is a local SQLite read on
        # a kept connection (``promise_inline``: a thread hop measured about 200 us of CPU per checkout, more than
        # the read), otherwise on a few threads of its own (named ``promise`` in the per-thread CPU split), so
        # that a read across the network never holds up the loop.
        self.promise_inline = promise_inline
        self._promise_threads = promise_threads
        self._promise_pool: ThreadPoolExecutor | None = None
        # Benchmarks only: the wall time of each stage of each checkout (see orders/stages.py).
        self.stages = stages

    async def checkout(self, cmd: PlaceOrder) -> CheckoutResult:
        started = time.perf_counter()
        result, payment = await self._checkout(cmd)
        if self.observer is not None and not result.replayed:
            self.observer.checkout_finished(result.status_code, time.perf_counter() - started, result.body,
                                            payment, self.promise is not None)
        return result

    async def _checkout(self, cmd: PlaceOrder) -> tuple[CheckoutResult, dict | None]:
        extra = dict(cmd.extra)
        st = self.stages
        t0 = time.perf_counter() if st is not None else 0.0
        # The remote calls (the rate quote, the authorization) are awaited on the event loop: no thread waits on
        # another system per in-flight checkout. The promise is local work (see ``promise_inline``).
        promises = None
        if self.promise is not None:
            promises = (self._line_promises(cmd) if self.promise_inline else
                        await asyncio.get_running_loop().run_in_executor(self._pool(), self._line_promises, cmd))
        t1 = time.perf_counter() if st is not None else 0.0
        if self.payments is not None:
            extra["shipping"] = await self.payments.shipping.quote_for_checkout_async(cmd.country, cmd.postal_code)
            extra["payment_attempt_key"] = _attempt_keys.next()
        if promises is not None:
            extra["promise"] = combine_promises(promises)
            dated = [p for p in promises if p.deliver_by is not None]
            if dated:
                # The order's promise is its slowest line. The checkout writer's ``after_place`` hook (see
                # :func:`promise_bookkeeping`) records it with the order, for the engine's online calibration.
                extra["promise_window"] = max(dated, key=lambda p: p.deliver_by).window
        # A new command with the filled-in extras (``dataclasses.replace`` re-reads the fields on every call).
        cmd = PlaceOrder(cmd.api_key_id, cmd.idempotency_key, cmd.request_hash, cmd.lines, cmd.country,
                         cmd.postal_code, cmd.payment, extra)
        t2 = time.perf_counter() if st is not None else 0.0
        result = await self.checkout_service.place(cmd)
        t3 = time.perf_counter() if st is not None else 0.0
        if not result.created or self.payments is None:
            return result, None
        order_id = result.body["order_id"]
        attempt = PaymentAttempt(extra["payment_attempt_key"], order_id, int(result.body["total"]),
                                 result.body["currency"], str(cmd.payment.get("token", "")), frozenset())
        auth = await self.payments.authorize_inline_async(attempt)
        t4 = time.perf_counter() if st is not None else 0.0
        scope = (f"{cmd.api_key_id}:checkout", cmd.idempotency_key)
        # Settlement rides the next group commit instead of paying for its own transaction and fsync.
        status, body = await self.checkout_service.run_batched(
            self.settlement.apply_many, Settle(order_id, auth, 1, scope, result.body))
        if st is not None:
            t5 = time.perf_counter()
            st.checkout([round(time.time() - (t5 - t0), 3)] + [round((b - a) * 1e3, 3) for a, b in (
                (t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t0, t5))])
        payment = {"processor": auth.processor, "outcome": str(auth.outcome)}
        if body is None:
            return result, payment
        return CheckoutResult(status, body, created=True), payment

    def _line_promises(self, cmd: PlaceOrder) -> Sequence[LinePromise]:
        # Each line is promised from the warehouse the order's allocation will ship it from.
        return self.promise.promise_for_order([(l.sku, l.qty) for l in cmd.lines], cmd.country, cmd.postal_code)

    def _pool(self) -> ThreadPoolExecutor:
        if self._promise_pool is None:
            from ..runtime import name_os_thread

            self._promise_pool = ThreadPoolExecutor(max_workers=self._promise_threads, thread_name_prefix="promise",
                                                    initializer=name_os_thread)
        return self._promise_pool

    def close(self) -> None:
        if self._promise_pool is not None:
            self._promise_pool.shutdown(wait=False, cancel_futures=True)
        self.checkout_service.close()
        if self.payments is not None:
            self.payments.close()


__all__ = ["BuyPath", "promise_bookkeeping"]
