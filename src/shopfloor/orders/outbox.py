"""Outbox worker: delivers events at least once, with retries, backoff and a dead-letter state.

Handlers are idempotent: each (handler, event_id) that completed is recorded in ``processed_events`` and skipped
on redelivery. Events are claimed with a lease (``locked_until``); on PostgreSQL the claim uses
``FOR UPDATE SKIP LOCKED`` so several workers share the queue without blocking each other.

A worker renews the leases of the events it is still working on (every third of the lease), so a slow handler
never lets a second worker claim the same event, and records each event's outcome as soon as that event is done
(not at the end of its batch). The lease's expiry doubles as a fencing token: renewals and outcomes only apply
while the row still carries the expiry this worker last wrote, so a worker that lost its lease (it stalled past
it) cannot overwrite the state written by the worker that took the event over.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, Protocol

from sqlalchemy import Engine, and_, or_, select, update

from ..domain.clock import Clock
from ..store.engine import dialect_insert
from ..store.tables import outbox, processed_events

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    id: int
    event_id: str
    type: str
    aggregate_id: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


class RetryLater(Exception):
    """A handler asks for a retry after ``delay_s`` without counting it as a failure (e.g. payment pending)."""

    def __init__(self, reason: str, delay_s: float | None = None) -> None:
        super().__init__(reason)
        self.delay_s = delay_s


class EventHandler(Protocol):
    name: str
    event_types: frozenset[str]

    def handle(self, event: OutboxEvent) -> None: ...


@dataclass
class FunctionHandler:
    name: str
    event_types: frozenset[str]
    fn: Callable[[OutboxEvent], None]

    def handle(self, event: OutboxEvent) -> None:
        self.fn(event)


def processed_lookup(handlers: list[str], event_ids: list[str]):
    """Completed (handler, event_id) pairs among ``handlers`` x ``event_ids``. Both columns of the primary key are
    constrained, so it is an index search per pair: with ``event_id IN (...)`` alone, every batch the worker
    claimed scanned every event ever processed."""
    return select(processed_events.c.handler, processed_events.c.event_id).where(
        processed_events.c.handler.in_(handlers), processed_events.c.event_id.in_(event_ids))


class OutboxWorker:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        handlers: Iterable[EventHandler] = (),
        *,
        batch_size: int = 50,
        lease_s: float = 30.0,
        max_attempts: int = 8,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 60.0,
        concurrency: int = 1,
        lease_renew_every_s: float | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        self.engine = engine
        self.clock = clock
        self.handlers: list[EventHandler] = list(handlers)
        self.batch_size = batch_size
        self.lease = timedelta(seconds=lease_s)
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._is_pg = engine.dialect.name == "postgresql"
        # Handlers mostly wait on other systems (processor, rate service, mail, webhooks): a batch's events run on
        # up to ``concurrency`` threads, one aggregate (order) per thread at a time, so one order's events keep
        # their order while different orders overlap their waits.
        self.concurrency = concurrency
        self.slow_event_s = 2.0
        self._executor: ThreadPoolExecutor | None = None
        # event row id -> the lease expiry this worker last wrote (its fencing token), for events still in hand.
        self._leases: dict[int, datetime] = {}
        self._lease_lock = threading.Lock()
        self.lease_renew_every_s = lease_renew_every_s if lease_renew_every_s is not None else lease_s / 3
        self.leases_lost = 0

    def add_handler(self, handler: EventHandler) -> None:
        self.handlers.append(handler)

    def backoff(self, attempts: int) -> float:
        return min(self.backoff_max_s, self.backoff_base_s * (2 ** max(attempts - 1, 0)))

    # --- claiming --------------------------------------------------------------------------------------

    def claim(self) -> list[OutboxEvent]:
        now = self.clock.now()
        ready = and_(
            outbox.c.status == "pending",
            outbox.c.available_at <= now,
            or_(outbox.c.locked_until.is_(None), outbox.c.locked_until < now),
        )
        q = select(outbox).where(ready).order_by(outbox.c.id).limit(self.batch_size)
        if self._is_pg:
            q = q.with_for_update(skip_locked=True)
        with self.engine.begin() as conn:
            rows = conn.execute(q).all()
            if not rows:
                return []
            ids = [r.id for r in rows]
            until = now + self.lease
            conn.execute(update(outbox).where(outbox.c.id.in_(ids)).values(locked_until=until))
        with self._lease_lock:
            for i in ids:
                self._leases[i] = until
        return [
            OutboxEvent(r.id, r.event_id, r.type, r.aggregate_id, r.payload, r.attempts, r.created_at)
            for r in rows
        ]

    # --- processing ------------------------------------------------------------------------------------

    def _processed(self, event_ids: list[str]) -> dict[str, set[str]]:
        """Which handlers already completed, for a whole batch of events in one read."""
        done: dict[str, set[str]] = {e: set() for e in event_ids}
        if not event_ids:
            return done
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            for handler, event_id in conn.execute(processed_lookup(sorted({h.name for h in self.handlers}), event_ids)):
                done[event_id].add(handler)
        return done

    def process(self, event: OutboxEvent, done: set[str] | None = None) -> tuple[list[str], BaseException | None]:
        """Run every subscribed handler that has not completed yet. Returns (handlers completed now, error)."""
        done = done if done is not None else self._processed([event.event_id])[event.event_id]
        completed: list[str] = []
        for handler in self.handlers:
            if event.type not in handler.event_types or handler.name in done:
                continue
            try:
                handler.handle(event)
            except Exception as exc:  # noqa: BLE001 - recorded on the event, retried with backoff
                if not isinstance(exc, RetryLater):
                    log.warning("handler %s failed for %s %s: %s", handler.name, event.type, event.event_id, exc)
                return completed, exc
            completed.append(handler.name)
        return completed, None

    def _insert_ignore(self):
        return dialect_insert(self.engine, processed_events).on_conflict_do_nothing()

    # --- leases ----------------------------------------------------------------------------------------

    def renew_leases(self) -> int:
        """Extend the lease of every event this worker still holds. Returns how many were renewed; an event whose
        row no longer carries our expiry was taken over (our lease had run out) and is given up."""
        with self._lease_lock:
            if not self._leases:
                return 0
            until = self.clock.now() + self.lease
            renewed, lost = [], []
            with self.engine.begin() as conn:
                for event_id, token in sorted(self._leases.items()):
                    res = conn.execute(update(outbox).where(
                        outbox.c.id == event_id, outbox.c.status == "pending", outbox.c.locked_until == token,
                    ).values(locked_until=until))
                    (renewed if res.rowcount == 1 else lost).append(event_id)
            for event_id in renewed:
                self._leases[event_id] = until
            for event_id in lost:
                del self._leases[event_id]
            self.leases_lost += len(lost)
        for event_id in lost:
            log.warning("outbox event row %s: lease lost (another worker took it over)", event_id)
        return len(renewed)

    def _release_lease(self, event: OutboxEvent) -> datetime | None:
        """Stop renewing ``event``; returns its fencing token (``None`` when the lease was already lost)."""
        with self._lease_lock:  # waits for a renewal in progress, so the token is the one in the row
            return self._leases.pop(event.id, None)

    def _keep_leases(self, stop: threading.Event) -> None:
        while not stop.wait(self.lease_renew_every_s):
            try:
                self.renew_leases()
            except Exception as exc:  # noqa: BLE001 - a missed renewal is retried; the lease has slack
                log.warning("outbox lease renewal failed: %s", exc)

    # --- outcomes ----------------------------------------------------------------------------------------

    def _finish_event(self, event: OutboxEvent, completed: list[str], error: BaseException | None) -> None:
        """Record the handlers that completed and the event's fate, as soon as the event is done.

        A crash before this commit re-runs handlers that had completed; they are idempotent, so that is safe."""
        token = self._release_lease(event)
        now = self.clock.now()
        with self.engine.begin() as conn:
            if completed:
                conn.execute(self._insert_ignore(), [
                    {"handler": h, "event_id": event.event_id, "processed_at": now} for h in completed])
            if token is None:
                log.warning("outbox event %s (%s) finished after its lease was lost; its outcome is left to the "
                            "worker that took it over", event.event_id, event.type)
                return
            if error is None:
                res = conn.execute(update(outbox).where(outbox.c.id == event.id, outbox.c.locked_until == token)
                                   .values(status="delivered", delivered_at=now, locked_until=None, last_error=None))
                if res.rowcount != 1:
                    log.warning("outbox event %s (%s): lease lost before it was recorded as delivered",
                                event.event_id, event.type)
            else:
                self._record_failure(conn, event, error, now, token)

    def _record_failure(self, conn, event: OutboxEvent, error: BaseException, now: datetime,
                        token: datetime | None = None) -> None:
        mine = outbox.c.id == event.id
        if token is not None:
            mine = and_(mine, outbox.c.locked_until == token)
        if isinstance(error, RetryLater):
            # An expected wait (dependency down, payment pending): back off, but never dead-letter.
            delay = error.delay_s if error.delay_s is not None else self.backoff(event.attempts + 1)
            conn.execute(
                update(outbox).where(mine).values(
                    available_at=now + timedelta(seconds=delay), locked_until=None,
                    attempts=event.attempts + (0 if error.delay_s is not None else 1),
                    last_error=f"retry: {error}"[:2000],
                )
            )
            return
        attempts = event.attempts + 1
        message = f"{type(error).__name__}: {error}"[:2000]
        if attempts >= self.max_attempts:
            conn.execute(
                update(outbox).where(mine).values(
                    status="dead", attempts=attempts, locked_until=None, last_error=message
                )
            )
            log.error("outbox event %s (%s) dead-lettered after %d attempts: %s",
                      event.event_id, event.type, attempts, message)
        else:
            conn.execute(
                update(outbox).where(mine).values(
                    attempts=attempts, locked_until=None, last_error=message,
                    available_at=now + timedelta(seconds=self.backoff(attempts)),
                )
            )

    def run_once(self) -> int:
        """Claim and process one batch. Returns how many events were handled (successfully or not)."""
        events = self.claim()
        if not events:
            return 0
        stop = threading.Event()
        keeper = threading.Thread(target=self._keep_leases, args=(stop,), name="outbox-lease", daemon=True)
        keeper.start()
        try:
            done = self._processed([e.event_id for e in events])
            chains: dict[str, list[OutboxEvent]] = {}
            for event in events:  # claimed in id order, so each chain is in the order its events were written
                chains.setdefault(event.aggregate_id or event.event_id, []).append(event)
            if self.concurrency == 1 or len(chains) == 1:
                self._run_chain(events, done)
            else:
                list(self._pool().map(lambda c: self._run_chain(c, done), chains.values()))
        finally:
            stop.set()
            keeper.join()
            with self._lease_lock:  # anything left (an error before its outcome): let the lease run out
                for event in events:
                    self._leases.pop(event.id, None)
        return len(events)

    def _run_chain(self, chain: list[OutboxEvent], done: dict[str, set[str]]) -> None:
        for event in chain:
            started = time.monotonic()
            completed, error = self.process(event, done[event.event_id])
            took = time.monotonic() - started
            if took >= self.slow_event_s:
                log.warning("outbox event %s (%s) took %.1f s (handlers done: %s; error: %s)", event.event_id,
                            event.type, took, ",".join(completed) or "-",
                            type(error).__name__ if error is not None else "-")
            self._finish_event(event, completed, error)

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            from ..runtime import name_os_thread

            self._executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="outbox",
                                                initializer=name_os_thread)
        return self._executor

    def close(self) -> None:
        """Stop the handler threads (after the batch in progress)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def drain(self, max_rounds: int = 1000) -> int:
        """Process until nothing is ready (tests, demo)."""
        total = 0
        for _ in range(max_rounds):
            n = self.run_once()
            total += n
            if n == 0:
                break
        return total

    def run_forever(self, poll_interval_s: float, stop: Callable[[], bool] = lambda: False,
                    tick: Callable[[], None] | None = None) -> None:
        while not stop():
            n = self.run_once()
            if tick is not None:
                tick()
            if n == 0:
                time.sleep(poll_interval_s)


def requeue_dead(engine: Engine, clock: Clock) -> int:
    """Put dead-lettered events back in the queue (after the cause was fixed)."""
    with engine.begin() as conn:
        res = conn.execute(
            update(outbox).where(outbox.c.status == "dead").values(
                status="pending", attempts=0, available_at=clock.now(), locked_until=None
            )
        )
    return res.rowcount


def outbox_status(engine: Engine) -> dict[str, Any]:
    from sqlalchemy import func

    with engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
        counts = {r[0]: int(r[1]) for r in conn.execute(
            select(outbox.c.status, func.count()).group_by(outbox.c.status))}
        by_type = [
            {"type": r[0], "status": r[1], "count": int(r[2])}
            for r in conn.execute(
                select(outbox.c.type, outbox.c.status, func.count()).group_by(outbox.c.type, outbox.c.status)
            )
        ]
        oldest = conn.execute(
            select(func.min(outbox.c.created_at)).where(outbox.c.status == "pending")
        ).scalar()
        dead = [
            {"event_id": r.event_id, "type": r.type, "aggregate_id": r.aggregate_id, "attempts": r.attempts,
             "last_error": r.last_error}
            for r in conn.execute(
                select(outbox).where(outbox.c.status == "dead").order_by(outbox.c.id.desc()).limit(20)
            )
        ]
    return {
        "pending": counts.get("pending", 0),
        "delivered": counts.get("delivered", 0),
        "dead": counts.get("dead", 0),
        "oldest_pending_at": oldest.isoformat() if oldest else None,
        "by_type": by_type,
        "dead_letters": dead,
    }
