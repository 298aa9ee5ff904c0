"""Outbound webhooks: subscriptions, fan-out of outbox events into deliveries, and the dispatcher that sends them.

An internal event (``OrderPlaced``, ``PaymentCaptured`` ...) is written to the transactional outbox with the state
change that caused it. The outbox worker's :class:`WebhookFanout` handler turns it into one delivery row per
subscribed endpoint (idempotent: one row per endpoint and message id), which takes a few milliseconds whatever the
subscribers do. The :class:`WebhookDispatcher` then sends deliveries on its own threads, at most
``endpoint_concurrency`` at a time per endpoint (counted across processes from the delivery leases), so a slow or
dead subscriber never holds up the others or the order pipeline.

Deliveries are signed by :func:`shopfloor.orders.webhooks.signed_headers` (Standard Webhooks): ``webhook-id`` is
the message id, the same on every retry and on a manual redelivery.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import secrets as secrets_lib
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, Sequence

from sqlalchemy import Engine, func, or_, select, update

from ..domain.clock import Clock
from ..domain.errors import Conflict, InvalidInput, NotFound
from ..orders.outbox import OutboxEvent
from ..orders.webhooks import signed_headers
from ..store.engine import dialect_insert
from ..store.integrations_tables import webhook_attempts, webhook_deliveries, webhook_endpoints
from .policy import EVENT_TYPES, INTERNAL_TO_PUBLIC, AttemptResult, Verdict, judge, public_event
from .ssrf import TargetGuard, TargetRefused

log = logging.getLogger(__name__)


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets_lib.token_bytes(24)).decode()


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class AlertSink(Protocol):
    """Where the dispatcher raises an alert (the control tower's alert list)."""

    def add_alert(self, *, at: datetime, source: str, metric: str, kind: str, message: str = "", **kw: Any) -> int: ...


class WebhookSender(Protocol):
    """Sends one signed body; never raises for an HTTP or network failure (it is in the result)."""

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult: ...


class HttpxSender:
    """The real sender: no redirects followed (a redirect could lead past the SSRF guard), a total timeout."""

    def __init__(self, timeout_s: float, max_connections: int = 64) -> None:
        import httpx

        self._httpx = httpx
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=False,
                                    limits=httpx.Limits(max_connections=max_connections))

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult:
        started = time.monotonic()
        try:
            resp = self._client.post(url, content=body, headers=headers)
        except self._httpx.HTTPError as exc:
            return AttemptResult(None, None, f"{type(exc).__name__}: {exc}"[:500],
                                 int((time.monotonic() - started) * 1000))
        return AttemptResult(resp.status_code, resp.headers.get("retry-after"), None,
                             int((time.monotonic() - started) * 1000))

    def close(self) -> None:
        self._client.close()


def _endpoint_view(row, *, with_secret: bool = False) -> dict[str, Any]:
    out = {"id": row.id, "url": row.url, "events": list(row.events), "description": row.description,
           "status": row.status, "disabled_reason": row.disabled_reason,
           "failing_since": row.failing_since.isoformat() if row.failing_since else None,
           "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat()}
    if with_secret:
        out["secret"] = row.secrets[0]
    return out


def _delivery_view(row, attempts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out = {"id": row.id, "endpoint_id": row.endpoint_id, "message_id": row.message_id,
           "event_type": row.event_type, "status": row.status, "attempts": int(row.attempts),
           "next_attempt_at": row.next_attempt_at.isoformat() if row.status == "pending" else None,
           "last_status_code": row.last_status_code, "last_error": row.last_error,
           "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat()}
    if attempts is not None:
        out["attempt_log"] = attempts
    return out


class WebhookSubscriptions:
    """Admin operations on subscriber endpoints and their delivery log."""

    def __init__(self, engine: Engine, clock: Clock, guard: TargetGuard) -> None:
        self.engine = engine
        self.clock = clock
        self.guard = guard

    def create(self, url: str, events: Sequence[str], description: str | None = None) -> dict[str, Any]:
        unknown = sorted(set(events) - set(EVENT_TYPES))
        if not events or unknown:
            raise InvalidInput(
                f"events: unknown event type(s) {', '.join(unknown)}; choose from {', '.join(EVENT_TYPES)}"
                if unknown else "events: subscribe to at least one event type",
                [{"field": "events", "unknown": unknown, "allowed": list(EVENT_TYPES)}])
        try:
            self.guard.check(url)
        except TargetRefused as exc:
            raise InvalidInput(f"url: {exc}", [{"field": "url", "message": str(exc)}]) from None
        now = self.clock.now()
        row = {"id": _new_id("we"), "url": url, "events": sorted(set(events)), "secrets": [new_secret()],
               "description": description, "status": "active", "disabled_reason": None, "failing_since": None,
               "created_at": now, "updated_at": now}
        with self.engine.begin() as conn:
            conn.execute(webhook_endpoints.insert().values(**row))
            created = conn.execute(select(webhook_endpoints).where(webhook_endpoints.c.id == row["id"])).one()
        return _endpoint_view(created, with_secret=True)

    def _get_row(self, conn, endpoint_id: str):
        row = conn.execute(select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)).first()
        if row is None:
            raise NotFound(f"no webhook endpoint {endpoint_id}", [{"field": "endpoint_id", "id": endpoint_id}])
        return row

    def get(self, endpoint_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return _endpoint_view(self._get_row(conn, endpoint_id))

    def list(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(webhook_endpoints).order_by(webhook_endpoints.c.created_at)).all()
        return [_endpoint_view(r) for r in rows]

    def set_status(self, endpoint_id: str, active: bool, reason: str | None = None) -> dict[str, Any]:
        now = self.clock.now()
        with self.engine.begin() as conn:
            self._get_row(conn, endpoint_id)
            conn.execute(update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id).values(
                status="active" if active else "disabled", updated_at=now, failing_since=None,
                disabled_reason=None if active else (reason or "disabled by an administrator")))
            return _endpoint_view(self._get_row(conn, endpoint_id))

    def rotate_secret(self, endpoint_id: str) -> dict[str, Any]:
        """A new signing secret. Deliveries carry a signature with the new and one with the previous secret (two
        ``v1,`` entries in ``webhook-signature``) until the next rotation, so receivers can switch without a gap."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            row = self._get_row(conn, endpoint_id)
            conn.execute(update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id).values(
                secrets=[new_secret(), row.secrets[0]], updated_at=now))
            return _endpoint_view(self._get_row(conn, endpoint_id), with_secret=True)

    def deliveries(self, endpoint_id: str, *, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            self._get_row(conn, endpoint_id)
            q = select(webhook_deliveries).where(webhook_deliveries.c.endpoint_id == endpoint_id)
            if status:
                q = q.where(webhook_deliveries.c.status == status)
            rows = conn.execute(q.order_by(webhook_deliveries.c.created_at.desc(), webhook_deliveries.c.id)
                                .limit(limit)).all()
            ids = [r.id for r in rows]
            log_rows = conn.execute(select(webhook_attempts).where(webhook_attempts.c.delivery_id.in_(ids))
                                    .order_by(webhook_attempts.c.attempt)).all() if ids else []
        by_delivery: dict[str, list[dict[str, Any]]] = {}
        for a in log_rows:
            by_delivery.setdefault(a.delivery_id, []).append(
                {"attempt": a.attempt, "at": a.at.isoformat(), "status_code": a.status_code, "error": a.error,
                 "duration_ms": a.duration_ms})
        return [_delivery_view(r, by_delivery.get(r.id, [])) for r in rows]

    def redeliver(self, endpoint_id: str, delivery_id: str) -> dict[str, Any]:
        """Send a delivery again now, with the same message id (a fresh retry schedule)."""
        now = self.clock.now()
        with self.engine.begin() as conn:
            endpoint = self._get_row(conn, endpoint_id)
            if endpoint.status != "active":
                raise Conflict(f"endpoint {endpoint_id} is disabled; enable it before redelivering",
                               [{"field": "endpoint_id", "status": endpoint.status}])
            res = conn.execute(update(webhook_deliveries).where(
                webhook_deliveries.c.id == delivery_id, webhook_deliveries.c.endpoint_id == endpoint_id,
                or_(webhook_deliveries.c.status != "pending", webhook_deliveries.c.locked_until.is_(None),
                    webhook_deliveries.c.locked_until < now),
            ).values(status="pending", attempts=0, next_attempt_at=now, locked_until=None, updated_at=now))
            row = conn.execute(select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id,
                                                                 webhook_deliveries.c.endpoint_id == endpoint_id)).first()
            if row is None:
                raise NotFound(f"no delivery {delivery_id} for endpoint {endpoint_id}",
                               [{"field": "delivery_id", "id": delivery_id}])
            if res.rowcount != 1:
                raise Conflict(f"delivery {delivery_id} is being sent right now", [{"field": "delivery_id"}])
        return _delivery_view(row)


class WebhookFanout:
    """Outbox handler: one delivery row per active endpoint subscribed to the event's public type."""

    name = "webhook_fanout"
    event_types = frozenset(INTERNAL_TO_PUBLIC)

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock
        self._insert = dialect_insert(engine, webhook_deliveries).on_conflict_do_nothing()

    def handle(self, event: OutboxEvent) -> None:
        body = public_event(event.type, event.payload, event.created_at)
        if body is None:
            return
        now = self.clock.now()
        # Read first without the write lock: most events have no subscriber, and on SQLite a write transaction
        # would queue behind (and hold up) the checkout writer for nothing.
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            endpoints = conn.execute(select(webhook_endpoints.c.id, webhook_endpoints.c.events)
                                     .where(webhook_endpoints.c.status == "active")).all()
        rows = [{"id": _new_id("wd"), "endpoint_id": e.id, "message_id": f"msg_{event.event_id}",
                 "event_type": body["type"], "payload": body, "status": "pending", "attempts": 0,
                 "next_attempt_at": now, "created_at": now, "updated_at": now}
                for e in endpoints if body["type"] in e.events]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(self._insert, rows)


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: str
    endpoint_id: str
    url: str
    secrets: list[str]
    message_id: str
    payload: dict[str, Any]
    attempts: int
    token: datetime


class WebhookDispatcher:
    """Sends due deliveries on a thread pool with a per-endpoint concurrency limit.

    ``pump()`` claims what may start now and returns at once (the worker calls it on every tick); ``drain()``
    waits until nothing is due or in flight (tests, ``worker --once``)."""

    def __init__(self, engine: Engine, clock: Clock, sender: WebhookSender, guard: TargetGuard, *,
                 alerts: AlertSink | None = None, endpoint_concurrency: int = 2, threads: int = 16,
                 timeout_s: float = 15.0, max_client_error_attempts: int = 3, disable_after_s: float = 5 * 86_400,
                 max_retry_after_s: float = 36_000, rng: random.Random | None = None) -> None:
        self.engine = engine
        self.clock = clock
        self.sender = sender
        self.guard = guard
        self.alerts = alerts
        self.endpoint_concurrency = endpoint_concurrency
        self.threads = threads
        self.lease = timedelta(seconds=timeout_s + 30)
        self.max_client_error_attempts = max_client_error_attempts
        self.disable_after = timedelta(seconds=disable_after_s)
        self.max_retry_after_s = max_retry_after_s
        self.rng = rng or random.Random()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="webhooks")
        self._in_flight = 0
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._is_pg = engine.dialect.name == "postgresql"
        self._loop: threading.Thread | None = None
        self._stopping = threading.Event()

    # --- claiming --------------------------------------------------------------------------------------------

    def pump(self) -> int:
        """Start every delivery that is due and allowed to start; returns how many were started."""
        with self._lock:
            free = self.threads - self._in_flight
        if free <= 0:
            return 0
        claimed = self._claim(free)
        for item in claimed:
            with self._lock:
                self._in_flight += 1
            self._pool.submit(self._run, item)
        return len(claimed)

    def _claim(self, limit: int) -> list[_Claimed]:
        now = self.clock.now()
        until = now + self.lease
        if self._is_pg:
            with self.engine.begin() as conn:  # row locks (SKIP LOCKED) keep other workers off these rows
                picked = self._candidates(conn, now, until, limit, lock=True)
                if picked:
                    d = webhook_deliveries
                    conn.execute(update(d).where(d.c.id.in_([p.id for p in picked])).values(locked_until=until))
            return picked
        # SQLite: look without the write lock (every tick, mostly finding nothing), then take each row with a
        # compare-and-set on its lease, so two workers never both send it.
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            candidates = self._candidates(conn, now, until, limit, lock=False)
        if not candidates:
            return []
        d = webhook_deliveries
        claimed: list[_Claimed] = []
        with self.engine.begin() as conn:
            for c in candidates:
                res = conn.execute(update(d).where(
                    d.c.id == c.id, d.c.status == "pending",
                    or_(d.c.locked_until.is_(None), d.c.locked_until < now)).values(locked_until=until))
                if res.rowcount == 1:
                    claimed.append(c)
        return claimed

    def _candidates(self, conn, now: datetime, until: datetime, limit: int, *, lock: bool) -> list[_Claimed]:
        d, e = webhook_deliveries, webhook_endpoints
        # In flight anywhere (any process): deliveries whose lease is still running.
        busy = dict(conn.execute(select(d.c.endpoint_id, func.count()).where(
            d.c.status == "pending", d.c.locked_until.is_not(None), d.c.locked_until >= now,
        ).group_by(d.c.endpoint_id)).all())
        saturated = [eid for eid, n in busy.items() if n >= self.endpoint_concurrency]
        q = (select(d.c.id, d.c.endpoint_id, d.c.message_id, d.c.payload, d.c.attempts, e.c.url, e.c.secrets)
             .join(e, e.c.id == d.c.endpoint_id)
             .where(d.c.status == "pending", d.c.next_attempt_at <= now, e.c.status == "active",
                    or_(d.c.locked_until.is_(None), d.c.locked_until < now))
             .order_by(d.c.next_attempt_at, d.c.id).limit(limit * 4))
        if saturated:
            q = q.where(d.c.endpoint_id.not_in(saturated))
        if lock:
            q = q.with_for_update(of=d, skip_locked=True)
        picked: list[_Claimed] = []
        for r in conn.execute(q).all():
            if len(picked) >= limit:
                break
            if busy.get(r.endpoint_id, 0) >= self.endpoint_concurrency:
                continue
            busy[r.endpoint_id] = busy.get(r.endpoint_id, 0) + 1
            picked.append(_Claimed(r.id, r.endpoint_id, r.url, list(r.secrets), r.message_id, r.payload,
                                   int(r.attempts), until))
        return picked

    # --- sending ---------------------------------------------------------------------------------------------

    def _run(self, item: _Claimed) -> None:
        try:
            self.deliver(item)
        except Exception:  # noqa: BLE001 - the lease runs out and the delivery is retried
            log.exception("webhook delivery %s failed unexpectedly", item.id)
        finally:
            with self._lock:
                self._in_flight -= 1
                self._idle.notify_all()

    @staticmethod
    def encode(payload: dict[str, Any]) -> bytes:
        return json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str).encode()

    def deliver(self, item: _Claimed) -> Verdict:
        now = self.clock.now()
        attempt_no = item.attempts + 1
        try:
            self.guard.check(item.url)
        except TargetRefused as exc:
            result = AttemptResult(None, None, f"refused by the SSRF guard: {exc}")
            verdict = Verdict("failed", reason=result.error or "")
        else:
            body = self.encode(item.payload)
            headers = {"content-type": "application/json", "user-agent": "shopfloor-webhooks/1",
                       **signed_headers(item.secrets, item.message_id, int(now.timestamp()), body)}
            result = self.sender.post(item.url, body, headers)
            verdict = judge(result, attempt_no, self.clock.now(), self.rng,
                            max_client_error_attempts=self.max_client_error_attempts,
                            max_retry_after_s=self.max_retry_after_s)
        self._record(item, attempt_no, result, verdict)
        return verdict

    def _record(self, item: _Claimed, attempt_no: int, result: AttemptResult, verdict: Verdict) -> None:
        now = self.clock.now()
        d, e = webhook_deliveries, webhook_endpoints
        alert: str | None = None
        with self.engine.begin() as conn:
            conn.execute(webhook_attempts.insert().values(
                delivery_id=item.id, attempt=attempt_no, at=now, status_code=result.status_code,
                error=result.error, duration_ms=result.duration_ms))
            values: dict[str, Any] = {"attempts": attempt_no, "locked_until": None, "updated_at": now,
                                      "last_status_code": result.status_code,
                                      "last_error": None if verdict.kind == "succeeded" else verdict.reason[:2000]}
            if verdict.kind == "succeeded":
                values["status"] = "succeeded"
            elif verdict.kind == "retry":
                values["next_attempt_at"] = now + timedelta(seconds=verdict.delay_s)
            else:
                values["status"] = "failed"
            # Fenced on the lease: a delivery redelivered or taken over meanwhile is not overwritten.
            conn.execute(update(d).where(d.c.id == item.id, d.c.locked_until == item.token).values(**values))
            endpoint = conn.execute(select(e.c.status, e.c.failing_since).where(e.c.id == item.endpoint_id)).one()
            if verdict.kind == "succeeded":
                if endpoint.failing_since is not None:
                    conn.execute(update(e).where(e.c.id == item.endpoint_id).values(failing_since=None))
            elif verdict.kind == "gone":
                alert = f"webhook endpoint {item.endpoint_id} answered 410 Gone and was disabled"
                conn.execute(update(e).where(e.c.id == item.endpoint_id, e.c.status == "active").values(
                    status="disabled", disabled_reason="the endpoint answered 410 Gone", updated_at=now))
            elif endpoint.failing_since is None:
                conn.execute(update(e).where(e.c.id == item.endpoint_id).values(failing_since=now))
            elif now - endpoint.failing_since >= self.disable_after and endpoint.status == "active":
                since = endpoint.failing_since.isoformat()
                alert = f"webhook endpoint {item.endpoint_id} has failed every delivery since {since}; disabled"
                conn.execute(update(e).where(e.c.id == item.endpoint_id).values(
                    status="disabled", disabled_reason=f"every delivery failed since {since}", updated_at=now))
        if alert is not None:
            log.warning(alert)
            if self.alerts is not None:
                self.alerts.add_alert(at=now, source="webhooks", metric=f"webhook_endpoint:{item.endpoint_id}",
                                      kind="endpoint_disabled", message=alert)

    # --- lifecycle -------------------------------------------------------------------------------------------

    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def start(self, poll_s: float = 0.2) -> None:
        """Pump from a thread of its own (``shopfloor worker``): again as soon as a delivery finishes, else every
        ``poll_s``, so deliveries never wait on the outbox worker's loop."""
        if self._loop is not None:
            return
        self._stopping.clear()
        self._loop = threading.Thread(target=self._pump_forever, args=(poll_s,), name="webhooks-pump", daemon=True)
        self._loop.start()

    def _pump_forever(self, poll_s: float) -> None:
        while not self._stopping.is_set():
            try:
                started = self.pump()
            except Exception as exc:  # noqa: BLE001 - e.g. a lost connection: pump again after the pause
                log.warning("webhook dispatch failed: %s: %s", type(exc).__name__, exc)
                started = 0
            if started == 0:
                with self._lock:
                    self._idle.wait(timeout=poll_s)  # a finished delivery wakes it at once

    def drain(self, timeout_s: float = 60.0) -> None:
        """Pump until nothing is due and nothing is in flight (or ``timeout_s`` passes)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            started = self.pump()
            with self._lock:
                if started == 0 and self._in_flight == 0:
                    return
                self._idle.wait(timeout=0.05)

    def close(self) -> None:
        if self._loop is not None:
            self._stopping.set()
            with self._lock:
                self._idle.notify_all()
            self._loop.join()
            self._loop = None
        self._pool.shutdown(wait=True)
        close = getattr(self.sender, "close", None)
        if callable(close):
            close()
