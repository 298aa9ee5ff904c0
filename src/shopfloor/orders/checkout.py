"""Checkout: whole-order-or-nothing reservation, order + outbox event in one transaction, idempotent replays.

Concurrent checkouts are applied by one writer thread per process in small batches: one transaction per batch
and a savepoint per checkout (group commit). On SQLite that turns N fsyncs into one; on PostgreSQL it saves round
trips. A response is only released after its batch has committed, so a 201 is durable.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable

import orjson
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, InternalError, OperationalError

from ..domain.catalog import Warehouse
from ..domain.clock import Clock
from ..domain.errors import (
    ReadOnlyRegion,
    DomainError,
    IdempotencyKeyReused,
    InvalidInput,
    OutOfStock,
    ServiceUnavailable,
    UnknownSku,
)
from ..domain.orders import ORDER_PLACED, OrderStatus
from ..domain.stock import (
    Allocation,
    OrderLineRequest,
    StockLevel,
    home_warehouse,
    merge_lines,
    plan_allocation,
)
from ..runtime import name_os_thread
from ..store import orders_repo as repo
from ..store.engine import is_read_only
from ..store.raw import begin_savepoint
from .stages import StageLog

log = logging.getLogger(__name__)

#: How often a checkout re-plans when a concurrent writer (another process) took the stock it planned on.
_MAX_REPLANS = 4


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    """Command: place an order for ``lines`` shipped to ``ship_to``, paid with ``payment``."""

    api_key_id: str
    idempotency_key: str
    request_hash: str
    lines: tuple[OrderLineRequest, ...]
    country: str
    postal_code: str
    payment: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)  # shipping quote, promise: computed before the write


@dataclass(frozen=True, slots=True)
class CheckoutResult:
    status_code: int
    body: dict[str, Any]
    replayed: bool = False
    created: bool = False  # True exactly once per order: the request that made it


def request_fingerprint(body: bytes | dict) -> str:
    """Stable hash of a request body for idempotency comparison (key order does not matter)."""
    if isinstance(body, (bytes, bytearray)):
        body = orjson.loads(body)
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def error_body(exc: DomainError) -> dict[str, Any]:
    return {"error": {"code": exc.code, "message": exc.message, "details": exc.details}}


@dataclass(frozen=True, slots=True)
class _Failed:
    exc: BaseException


@dataclass(frozen=True, slots=True)
class _Work:
    fn: Callable[[Connection], Any]


@dataclass(frozen=True, slots=True)
class _Batched:
    """One item for a handler that applies all of a batch's items at once: ``handler(conn, items) -> results``."""

    handler: Callable[[Connection, list[Any]], list[Any]]
    item: Any


class _LoopWaiter:
    """The asyncio side of a queued command: a future of ``loop``, resolved on that loop's thread. The writer hands
    a whole batch's outcomes to each loop in one ``call_soon_threadsafe`` instead of one wake-up (and one
    concurrent-future hand-over) per command."""

    __slots__ = ("loop", "future", "queued_at")

    def __init__(self, loop: asyncio.AbstractEventLoop, queued_at: float = 0.0) -> None:
        self.loop = loop
        self.future: asyncio.Future = loop.create_future()
        self.queued_at = queued_at


def _settle_on_loop(outcomes: list[tuple[asyncio.Future, Any]]) -> None:
    """Runs on the loop: resolve each future with its result (or ``_Failed`` exception) unless it was cancelled."""
    for fut, res in outcomes:
        if fut.done():  # the request went away (client disconnect, timeout) while its batch committed
            continue
        if isinstance(res, _Failed):
            fut.set_exception(res.exc)
        else:
            fut.set_result(res)


class _WarehouseCache:
    """Warehouses change rarely; re-read them at most every ``ttl`` seconds."""

    def __init__(self, ttl: float = 2.0) -> None:
        self.ttl = ttl
        self._at = 0.0
        self._value: dict[str, Warehouse] = {}

    def get(self, conn: Connection) -> dict[str, Warehouse]:
        now = time.monotonic()
        if now - self._at > self.ttl:
            self._value = repo.load_warehouses(conn)
            self._at = now
        return self._value


class CheckoutService:
    """Places orders. ``place_order`` is thread-safe and blocks until the order is durable (or refused)."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        *,
        reservation_ttl_s: int = 900,
        batch_max_size: int = 64,
        batch_max_wait_ms: float = 1.0,
        on_committed: Callable[[list[CheckoutResult]], None] | None = None,
        after_place: Callable[[Connection, list[tuple[PlaceOrder, dict]], datetime], None] | None = None,
        stages: StageLog | None = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.reservation_ttl = timedelta(seconds=reservation_ttl_s)
        self.batch_max_size = batch_max_size
        self.batch_max_wait = batch_max_wait_ms / 1000.0
        self.on_committed = on_committed
        # Bookkeeping that must commit with the orders it describes but may never fail them (the promise shown
        # at checkout, for calibration): called once per batch, in a savepoint, with the orders just placed.
        self.after_place = after_place
        # Benchmarks only: per-batch wall and CPU time and the items' queue wait (see orders/stages.py).
        self.stages = stages
        self._queue: queue.SimpleQueue[tuple[PlaceOrder, Future] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._warehouses = _WarehouseCache()
        self.batches = 0
        self.batched_commands = 0
        # SKUs whose units left are published after each commit that reserved some (see :meth:`watch_stock`)
        self._watched: frozenset[str] = frozenset()
        self._on_stock: Callable[[str, int], None] | None = None

    def watch_stock(self, skus: Iterable[str], on_stock: Callable[[str, int], None]) -> None:
        """After each commit that placed an order for one of ``skus``, call ``on_stock(sku, units_left)`` (on the
        writer thread, so it must be thread-safe) with the units left as this transaction saw them: a waiting room
        learns its product sold out when the last unit is reserved, not when the purchase that took it ends."""
        self._watched = frozenset(skus)
        self._on_stock = on_stock

    # --- public API ----------------------------------------------------------------------------------------

    def submit(self, cmd: PlaceOrder) -> Future:
        """Queue a command for the writer; the future resolves to a CheckoutResult after commit."""
        self._ensure_thread()
        fut: Future = Future()
        self._queue.put((cmd, fut))
        return fut

    def submit_work(self, work: Callable[[Connection], Any]) -> Future:
        """Run ``work(conn)`` inside the next group-commit transaction (in its own savepoint). The future resolves to
        its return value, or to the exception it raised, after the commit. Used for small follow-up writes on the
        hot path (payment settlement), which would otherwise each pay for their own commit and fsync."""
        self._ensure_thread()
        fut: Future = Future()
        self._queue.put((_Work(work), fut))
        return fut

    def submit_batched(self, handler: Callable[[Connection, list[Any]], list[Any]], item: Any) -> Future:
        """Like :meth:`submit_work`, for follow-up writes that can share statements: every item queued for the same
        ``handler`` in one batch is applied by one ``handler(conn, items)`` call (in a savepoint), which returns
        one result per item. The future resolves to this item's result after the commit."""
        self._ensure_thread()
        fut: Future = Future()
        self._queue.put((_Batched(handler, item), fut))
        return fut

    async def place(self, cmd: PlaceOrder) -> CheckoutResult:
        """Async :meth:`submit`: await the command's result on the running loop (woken once per batch)."""
        return await self._enqueue_async(cmd)

    async def run_batched(self, handler: Callable[[Connection, list[Any]], list[Any]], item: Any) -> Any:
        """Async :meth:`submit_batched`."""
        return await self._enqueue_async(_Batched(handler, item))

    def _enqueue_async(self, item: Any) -> asyncio.Future:
        self._ensure_thread()
        waiter = _LoopWaiter(asyncio.get_running_loop(), time.perf_counter() if self.stages is not None else 0.0)
        self._queue.put((item, waiter))
        return waiter.future

    def place_order(self, cmd: PlaceOrder, timeout: float = 30.0) -> CheckoutResult:
        return self.submit(cmd).result(timeout=timeout)

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None

    # --- writer --------------------------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    t = threading.Thread(target=self._run, name="checkout-writer", daemon=True)
                    t.start()
                    self._thread = t

    def _run(self) -> None:
        name_os_thread()
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            deadline = time.monotonic() + self.batch_max_wait
            while len(batch) < self.batch_max_size:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        nxt = self._queue.get(timeout=remaining)
                    except queue.Empty:
                        break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            self._apply_batch(batch)

    def _apply_batch(self, batch: list[tuple[PlaceOrder, Future]]) -> None:
        stages = self.stages
        if stages is None:
            self._apply_batch_inner(batch)
            return
        t0, c0 = time.perf_counter(), time.thread_time()
        waits = [t0 - w.queued_at for _, w in batch if isinstance(w, _LoopWaiter)] or [0.0]
        self._apply_batch_inner(batch)
        stages.batch([round(time.time(), 3), len(batch), sum(isinstance(c, PlaceOrder) for c, _ in batch),
                      round(sum(waits) / len(waits) * 1e3, 3), round(max(waits) * 1e3, 3),
                      round((time.perf_counter() - t0) * 1e3, 3), round((time.thread_time() - c0) * 1e3, 3)])

    def _apply_batch_inner(self, batch: list[tuple[PlaceOrder, Future]]) -> None:
        results = None
        for attempt in range(5):
            try:
                results = self._apply_batch_once([cmd for cmd, _ in batch])
                break
            except (OperationalError, IntegrityError, InternalError) as exc:
                if is_read_only(exc):  # a standby: retrying cannot help, say so
                    err = ReadOnlyRegion("this region's database is a standby: it takes no orders until a failover "
                                         "promotes it; send the checkout to the primary region")
                    self._resolve(batch, [_Failed(err) if isinstance(cmd, (_Work, _Batched))
                                          else CheckoutResult(err.status, error_body(err)) for cmd, _ in batch])
                    return
                if isinstance(exc, InternalError):
                    log.exception("checkout batch failed")
                    break
                # Lock timeouts, serialization failures, lost connections, or another process committing one of
                # our idempotency keys first: the whole batch rolled back, so re-run it (replays are detected).
                log.warning("checkout batch failed (attempt %d): %s", attempt + 1, exc.__class__.__name__)
                time.sleep(0.01 * (attempt + 1))
            except Exception:  # pragma: no cover - unexpected; fail the batch rather than hang callers
                log.exception("checkout batch failed")
                break
        if results is None:
            err = ServiceUnavailable("the order store is temporarily unavailable; retry with the same key")
            self._resolve(batch, [_Failed(err) if isinstance(cmd, (_Work, _Batched))
                                  else CheckoutResult(err.status, error_body(err)) for cmd, _ in batch])
            return
        self.batches += 1
        self.batched_commands += len(batch)
        if self.on_committed is not None:
            try:
                self.on_committed([r for r in results if isinstance(r, CheckoutResult)])
            except Exception:  # pragma: no cover
                log.exception("on_committed hook failed")
        self._resolve(batch, results)

    @staticmethod
    def _resolve(batch: list[tuple[Any, Any]], results: list[Any]) -> None:
        """Hand each command its outcome: concurrent futures directly, loop futures in one call per loop."""
        per_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Any]]] = {}
        for (_, waiter), res in zip(batch, results):
            if isinstance(waiter, _LoopWaiter):
                per_loop.setdefault(waiter.loop, []).append((waiter.future, res))
            elif waiter.done():
                continue
            elif isinstance(res, _Failed):
                waiter.set_exception(res.exc)
            else:
                waiter.set_result(res)
        for loop, outcomes in per_loop.items():
            try:
                loop.call_soon_threadsafe(_settle_on_loop, outcomes)
            except RuntimeError:  # pragma: no cover - the loop closed while its requests were in the batch
                log.warning("event loop closed before %d checkout results could be delivered", len(outcomes))

    def _apply_batch_once(self, cmds: list[PlaceOrder]) -> list[CheckoutResult]:
        """One transaction for the whole batch: reads are batched, each reservation is a guarded UPDATE, and the
        order/line/reservation/outbox/idempotency rows are written with one executemany per table."""
        now = self.clock.now()
        results: list[Any] = []
        batched: dict[Any, list[int]] = {}
        placed: list[tuple[PlaceOrder, dict]] = []
        with self.engine.begin() as conn:
            for i, cmd in enumerate(cmds):
                if isinstance(cmd, _Batched):
                    batched.setdefault(cmd.handler, []).append(i)
            results = [None] * len(cmds)
            # Follow-up writes on existing orders (payment settlements) go first: they lock order rows and then,
            # for a decline, stock rows, the order every other writer (sweeper, worker) takes. Reserving this
            # batch's stock first and then locking an order the sweeper holds could deadlock on PostgreSQL.
            for handler, idx in batched.items():
                for i, out in zip(idx, self._apply_batched(conn, handler, [cmds[i].item for i in idx])):
                    results[i] = out
            scope_keys = [(f"{c.api_key_id}:checkout", c.idempotency_key) if isinstance(c, PlaceOrder) else None
                          for c in cmds]
            prior = repo.get_idempotency_records(conn, [k for k in scope_keys if k is not None])
            all_skus = sorted({l.sku for c in cmds if isinstance(c, PlaceOrder) for l in c.lines})
            prices = repo.load_prices(conn, all_skus)
            levels: dict[tuple[str, str], StockLevel] = {
                (lvl.sku, lvl.warehouse): lvl for lvl in repo.load_levels(conn, all_skus)
            }
            warehouses = self._warehouses.get(conn)
            pending = repo.PendingWrites()
            expires_at = now + self.reservation_ttl  # one object for the batch: its rows bind it once
            settled: dict[tuple[str, str], tuple[str, int, dict]] = {}
            for i, (cmd, sk) in enumerate(zip(cmds, scope_keys)):
                if isinstance(cmd, _Batched):
                    continue
                if isinstance(cmd, _Work):
                    results[i] = self._apply_work(conn, cmd)
                    continue
                res = self._apply_one(conn, cmd, sk, now, prior, settled, prices, levels, warehouses, pending,
                                      expires_at)
                if res.created:
                    placed.append((cmd, res.body))
                results[i] = res
            pending.flush(conn)
            if placed and self.after_place is not None:
                self._after_place(conn, placed, now)
            left = self._units_left(placed, levels) if self._watched else None
        if left:  # committed: publish what this batch left of the watched products
            for sku, units in left.items():
                try:
                    self._on_stock(sku, units)
                except Exception:  # noqa: BLE001 - a listener never fails the orders it is told about
                    log.warning("stock listener failed for %s", sku, exc_info=True)
        return results

    def _units_left(self, placed: list[tuple[PlaceOrder, dict]],
                    levels: dict[tuple[str, str], StockLevel]) -> dict[str, int]:
        skus = {l.sku for cmd, _body in placed for l in cmd.lines} & self._watched
        left = dict.fromkeys(skus, 0)
        for (sku, _wh), lvl in levels.items():
            if sku in left:
                left[sku] += lvl.available
        return {sku: max(0, units) for sku, units in left.items()}

    @staticmethod
    def _apply_batched(conn: Connection, handler: Callable, items: list[Any]) -> list[Any]:
        sp = begin_savepoint(conn)
        try:
            outs = handler(conn, items)
        except (OperationalError, IntegrityError):
            sp.rollback()
            raise
        except Exception as exc:  # noqa: BLE001 - handed back to every submitter of this handler
            sp.rollback()
            return [_Failed(exc)] * len(items)
        sp.commit()
        return list(outs)

    def _after_place(self, conn: Connection, placed: list[tuple[PlaceOrder, dict]], now: datetime) -> None:
        sp = begin_savepoint(conn)
        try:
            self.after_place(conn, placed, now)
        except OperationalError:  # lock timeout, lost connection: the whole batch is retried
            sp.rollback()
            raise
        except Exception:  # noqa: BLE001 - bookkeeping never fails the orders it describes
            sp.rollback()
            log.warning("after-place bookkeeping failed for %d orders", len(placed), exc_info=True)
            return
        sp.commit()

    @staticmethod
    def _apply_work(conn: Connection, work: _Work) -> Any:
        sp = begin_savepoint(conn)
        try:
            out = work.fn(conn)
        except (OperationalError, IntegrityError):
            sp.rollback()
            raise
        except Exception as exc:  # noqa: BLE001 - handed back to the submitter
            sp.rollback()
            return _Failed(exc)
        sp.commit()
        return out

    def _apply_one(self, conn, cmd, sk, now, prior, settled, prices, levels, warehouses, pending,
                   expires_at: datetime) -> CheckoutResult:
        seen = settled.get(sk)
        if seen is None and sk in prior:
            r = prior[sk]
            seen = (r.request_hash, r.status_code, orjson.loads(r.response))
        if seen is not None:
            if seen[0] != cmd.request_hash:
                exc = IdempotencyKeyReused(cmd.idempotency_key[:16])
                return CheckoutResult(exc.status, error_body(exc))
            return CheckoutResult(seen[1], seen[2], replayed=True)
        created = False
        try:
            body = self._place(conn, cmd, now, prices, levels, warehouses, pending, expires_at)
            status_code, created = 201, True
        except DomainError as exc:
            status_code, body = exc.status, error_body(exc)
            if isinstance(exc, OutOfStock):
                pending.add_refusals(exc.details, home_warehouse(warehouses, cmd.country, cmd.postal_code), now)
        settled[sk] = (cmd.request_hash, status_code, body)
        if status_code != 422:
            # A refusal of the request itself (an unknown SKU) is not a result: as with Stripe's keys, nothing is
            # kept, so the same key works once the catalog has the SKU. Orders, declines and sell-outs are kept.
            pending.add_idempotency(sk[0], sk[1], cmd.request_hash, status_code, orjson.dumps(body).decode(), now)
        return CheckoutResult(status_code, body, created=created)

    def _reserve(self, conn: Connection, allocations: list[Allocation]) -> bool:
        """Apply the guarded updates; a multi-row reservation runs in a savepoint so a late miss undoes it."""
        if len(allocations) == 1:
            return repo.try_reserve(conn, allocations) is None
        sp = begin_savepoint(conn)
        if repo.try_reserve(conn, allocations) is None:
            sp.commit()
            return True
        sp.rollback()
        return False

    def _place(self, conn, cmd: PlaceOrder, now: datetime, prices, levels, warehouses, pending,
               expires_at: datetime) -> dict[str, Any]:
        lines = merge_lines(cmd.lines)
        sku_ids = [l.sku for l in lines]
        missing = [s for s in sku_ids if s not in prices]
        if missing:
            raise UnknownSku(missing)
        currencies = {prices[s][1] for s in sku_ids}
        if len(currencies) > 1:
            raise InvalidInput(
                "all lines of one order must share a currency",
                [{"field": "lines", "currencies": sorted(currencies)}],
            )
        wanted = set(sku_ids)
        for attempt in range(_MAX_REPLANS):
            current = [lvl for key, lvl in levels.items() if key[0] in wanted]
            allocations = plan_allocation(lines, current, warehouses, cmd.country, cmd.postal_code)
            if self._reserve(conn, allocations):
                for a in allocations:
                    lvl = levels[(a.sku, a.warehouse)]
                    levels[(a.sku, a.warehouse)] = StockLevel(a.sku, a.warehouse, lvl.on_hand, lvl.reserved + a.qty)
                break
            # Another process changed these rows since we read them: refresh and plan again.
            for lvl in repo.load_levels(conn, sku_ids):
                levels[(lvl.sku, lvl.warehouse)] = lvl
        else:
            avail: dict[str, int] = {}
            for key, lvl in levels.items():
                if key[0] in wanted:
                    avail[lvl.sku] = avail.get(lvl.sku, 0) + max(lvl.available, 0)
            raise OutOfStock(
                [{"sku": l.sku, "requested": l.qty, "available": avail.get(l.sku, 0)} for l in lines]
            )
        unit_prices = {s: prices[s][0] for s in sku_ids}
        total = sum(a.qty * unit_prices[a.sku] for a in allocations)
        currency = currencies.pop()
        order_id = repo.new_id("ord")
        split = len({a.warehouse for a in allocations}) > 1
        ship_to = {"country": cmd.country, "postal_code": cmd.postal_code}
        token = str(cmd.payment.get("token", ""))
        # Never the raw token: a fingerprint is enough for fraud velocity rules and support look-ups.
        payment = {"token": "fp_" + hashlib.sha256(token.encode()).hexdigest()[:20], "token_last4": token[-4:],
                   "state": "pending", "attempt_key": cmd.extra.get("payment_attempt_key")}
        for extra_field in ("customer_id", "billing_country"):
            if cmd.payment.get(extra_field):
                payment[extra_field] = cmd.payment[extra_field]
        if cmd.extra.get("email"):
            ship_to["email"] = cmd.extra["email"]
        pending.add_order(
            order_id=order_id, status=OrderStatus.PAYMENT_PENDING.value, api_key_id=cmd.api_key_id,
            idempotency_key=cmd.idempotency_key, ship_to=ship_to, payment=payment, total=total,
            currency=currency, split=split, allocations=allocations, unit_prices=unit_prices,
            expires_at=expires_at, now=now, shipping=cmd.extra.get("shipping"), promise=cmd.extra.get("promise"),
        )
        body = {
            "order_id": order_id,
            "status": OrderStatus.PAYMENT_PENDING.value,
            "lines": [{"sku": a.sku, "qty": a.qty, "warehouse": a.warehouse} for a in allocations],
            "total": total,
            "currency": currency,
            "split_shipment": split,
            "reservation_expires_at": expires_at.isoformat(),
            "created_at": now.isoformat(),
        }
        if cmd.extra.get("shipping") is not None:
            body["shipping"] = cmd.extra["shipping"]
        if cmd.extra.get("promise") is not None:
            body["promise"] = cmd.extra["promise"]
        pending.add_event(
            ORDER_PLACED, order_id,
            {"order_id": order_id, "total": total, "currency": currency, "payment_token": cmd.payment.get("token"),
             "lines": body["lines"], "ship_to": ship_to, "api_key_id": cmd.api_key_id},
            now,
        )
        return body
