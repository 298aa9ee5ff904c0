"""Payment outcomes applied to orders, and the worker's side-effect handlers that follow acceptance.

Flow (each arrow is an outbox event committed with the state change that caused it):

    checkout commits order (payment_pending) + OrderPlaced
      -> inline authorization within the budget (outside any DB transaction)
         approved -> authorized + PaymentAuthorized      declined -> declined, stock released (402)
         no answer in time -> stays payment_pending + PaymentPending (the worker retries, same key)
    PaymentAuthorized -> fraud screen -> on_hold | capture -> captured + PaymentCaptured
    ReservationExpired, OrderDeclined -> void any live authorization under the order's attempt keys
    approval arriving for an order already ended, or paid by another authorization -> AuthorizationOrphaned -> void
    PaymentAuthorized -> confirmation mail (once, by Message-ID)
    PaymentCaptured   -> warehouse handoff (task rows, stock consumed) + OrderHandedOff -> signed webhook
    OrderPlaced       -> provisional shipping quote reconciled when the rate service answers again
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection, Engine, bindparam, select, update

from ..domain.clock import Clock
from ..domain.orders import ORDER_PLACED, RESERVATION_EXPIRED, OrderStatus
from ..payments import AuthOutcome, AuthorizationResult, PaymentAttempt, PaymentRejected, PaymentRetryable
from ..store import orders_repo as repo
from ..store.engine import json_loads
from ..store.raw import RawStatements, in_list
from ..store.tables import idempotency_keys, orders, warehouse_tasks
from .outbox import OutboxEvent, RetryLater
from .ports import Notifier, ShippingReconciler, WebhookSender, WorkerPayments

log = logging.getLogger(__name__)

PAYMENT_AUTHORIZED = "PaymentAuthorized"
PAYMENT_PENDING = "PaymentPending"
PAYMENT_CAPTURED = "PaymentCaptured"
ORDER_DECLINED = "OrderDeclined"
ORDER_ON_HOLD = "OrderOnHold"
ORDER_HANDED_OFF = "OrderHandedOff"
#: An approval reached an order that had already ended (expired or declined) or is paid by another authorization:
#: that approval's authorization must be voided.
AUTHORIZATION_ORPHANED = "AuthorizationOrphaned"

#: Orders that ended without a capture: nothing may stay authorized for them.
ENDED_UNPAID = frozenset({OrderStatus.CANCELLED.value, OrderStatus.DECLINED.value})


def _payment_doc(order_payment: dict | None, result: AuthorizationResult) -> dict[str, Any]:
    doc = dict(order_payment or {})
    doc.update(result.to_json())
    doc["state"] = str(result.outcome)
    return doc


def decline_body(order_id: str, result: AuthorizationResult) -> dict[str, Any]:
    return {"error": {
        "code": "payment_declined",
        "message": "the payment was declined; the reserved stock has been released",
        "details": [{"order_id": order_id, "reason": result.decline_reason or "declined",
                     "processor": result.processor}],
    }}


@dataclass(frozen=True, slots=True)
class Settle:
    """One inline authorization result to record on its order (see :meth:`PaymentSettlement.apply_many`)."""

    order_id: str
    result: AuthorizationResult
    retry_no: int = 1
    idempotency_scope: tuple[str, str] | None = None
    response_body: dict | None = None


_approve_stmt = (
    update(orders)
    .where(orders.c.id == bindparam("b_id"), orders.c.status == OrderStatus.PAYMENT_PENDING.value)
    .values(status=OrderStatus.AUTHORIZED.value, updated_at=bindparam("b_now"),
            payment=bindparam("b_payment", type_=orders.c.payment.type), reservation_expires_at=None)
)
_idem_stmt = (
    update(idempotency_keys)
    .where(idempotency_keys.c.scope == bindparam("b_scope"), idempotency_keys.c.key == bindparam("b_key"))
    .values(status_code=bindparam("b_status"), response=bindparam("b_response"))
)

# The group commit's hot updates, on the DBAPI cursor with SQL compiled once (see store/raw.py).
_raw_updates = RawStatements({"approve": _approve_stmt, "idempotency": _idem_stmt}.__getitem__)


class _OrderRow(NamedTuple):
    id: str
    status: str
    payment: dict | None
    total: int
    currency: str


def _build_for_update(shape: tuple[str, int]) -> Any:
    ids = [bindparam(f"b_{i}", type_=orders.c.id.type) for i in range(shape[1])]
    return (select(orders.c.id, orders.c.status, orders.c.payment, orders.c.total, orders.c.currency)
            .where(orders.c.id.in_(ids)).order_by(orders.c.id).with_for_update())


_raw_for_update = RawStatements(_build_for_update)


def _orders_for_update(conn: Connection, ids: list[str]) -> dict[str, _OrderRow]:
    """The orders ``ids`` read ``FOR UPDATE`` in id order (one statement, on the DBAPI cursor; the IN list padded to
    a few fixed lengths so that it is compiled a handful of times, see store/raw.py)."""
    padded = in_list(ids)
    out = {}
    for oid, status, payment, total, currency in _raw_for_update.fetchall(
            conn, ("orders", len(padded)), {f"b_{i}": v for i, v in enumerate(padded)}):
        if isinstance(payment, (str, bytes)):  # SQLite hands JSON back as text
            payment = json_loads(payment)
        out[oid] = _OrderRow(oid, status, payment, int(total), currency)
    return out


class PaymentSettlement:
    """Applies an authorization result to an order in one transaction (status compare-and-set)."""

    def __init__(self, engine: Engine, clock: Clock, *, pending_backoff_base_s: float = 1.0,
                 pending_backoff_max_s: float = 120.0) -> None:
        self.engine = engine
        self.clock = clock
        self.base = pending_backoff_base_s
        self.cap = pending_backoff_max_s

    def retry_delay(self, retry_no: int) -> float:
        return min(self.cap, self.base * (2 ** max(0, retry_no - 1)))

    def apply(self, order_id: str, result: AuthorizationResult, **kw: Any) -> tuple[int, dict[str, Any] | None]:
        """:meth:`apply_in` in a transaction of its own (the worker's path)."""
        with self.engine.begin() as conn:
            return self.apply_in(conn, order_id, result, **kw)

    def apply_many(self, conn: Connection, items: list[Settle]) -> list[tuple[int, dict[str, Any] | None]]:
        """:meth:`apply_in` for many orders in the caller's transaction, with one statement per table for the
        common case (approved). Used by the checkout writer's group commit; declines and pending results, which
        release stock or schedule retries, take the one-at-a-time path. The orders are read ``FOR UPDATE`` (a
        no-op on SQLite, whose writer already holds the database lock), so the status check cannot race another
        process."""
        out: list[tuple[int, dict[str, Any] | None] | None] = [None] * len(items)
        approved = [i for i, it in enumerate(items) if it.result.outcome is AuthOutcome.APPROVED]
        if approved:
            ids = sorted({items[i].order_id for i in approved})
            rows = _orders_for_update(conn, ids)
            now = self.clock.now()
            updates, idem, events = [], [], repo.PendingWrites()
            seen: set[str] = set()
            for i in approved:
                it = items[i]
                row = rows.get(it.order_id)
                if row is None:
                    raise LookupError(it.order_id)
                if row.status != OrderStatus.PAYMENT_PENDING.value or it.order_id in seen:
                    # Settled elsewhere (worker, sweeper): nothing to change, but an approval that is not the
                    # order's own authorization must not stay live.
                    if it.order_id not in seen and _is_orphan(row.status, row.payment, it.result):
                        _add_orphan(events, it.order_id, it.result, now)
                    out[i] = (201, None)
                    continue
                seen.add(it.order_id)
                r = it.result
                updates.append({"b_id": it.order_id, "b_now": now, "b_payment": _payment_doc(row.payment, r)})
                events.add_event(PAYMENT_AUTHORIZED, it.order_id, {
                    "order_id": it.order_id, "processor": r.processor, "attempt_key": r.idempotency_key,
                    "amount": int(row.total), "currency": row.currency}, now)
                body = None
                if it.response_body is not None:
                    body = {**it.response_body, "status": OrderStatus.AUTHORIZED.value,
                            "payment": {"state": "authorized", "processor": r.processor}}
                    if it.idempotency_scope is not None:
                        idem.append({"b_scope": it.idempotency_scope[0], "b_key": it.idempotency_scope[1],
                                     "b_status": 201, "b_response": orjson.dumps(body).decode()})
                out[i] = (201, body)
            if updates:
                _raw_updates.run(conn, "approve", updates)
            events.flush(conn)
            if idem:
                _raw_updates.run(conn, "idempotency", idem)
        for i, it in enumerate(items):
            if out[i] is None:
                out[i] = self.apply_in(conn, it.order_id, it.result, retry_no=it.retry_no,
                                       idempotency_scope=it.idempotency_scope, response_body=it.response_body)
        return out  # type: ignore[return-value]

    def apply_in(self, conn, order_id: str, result: AuthorizationResult, *, retry_no: int = 1,
                 idempotency_scope: tuple[str, str] | None = None, response_body: dict | None = None
                 ) -> tuple[int, dict[str, Any] | None]:
        """Record ``result`` on the order. Returns (http status for a checkout response, body or None).

        When ``idempotency_scope`` is given, the stored idempotency response is replaced by the final one, so a
        replay of the checkout sees the outcome rather than the provisional ``payment_pending``.
        """
        now = self.clock.now()
        # Locked (a no-op on SQLite, whose writer holds the database lock): the sweeper or the other settlement
        # path cannot commit between this read and the status change below.
        row = conn.execute(select(orders.c.status, orders.c.payment, orders.c.total, orders.c.currency)
                           .where(orders.c.id == order_id).with_for_update()).first()
        if row is None:
            raise LookupError(order_id)
        payment = _payment_doc(row.payment, result)
        status_code, body = 201, None
        if row.status != OrderStatus.PAYMENT_PENDING.value:
            return self._settled_elsewhere(conn, order_id, row.status, result, now)
        pending = [OrderStatus.PAYMENT_PENDING.value]
        if result.outcome is AuthOutcome.APPROVED:
            if not repo.update_order_status(conn, order_id, pending, OrderStatus.AUTHORIZED.value, now,
                                            payment=payment, reservation_expires_at=None):
                return self._settled_elsewhere(conn, order_id, None, result, now)
            repo.enqueue_event(conn, PAYMENT_AUTHORIZED, order_id, {
                "order_id": order_id, "processor": result.processor, "attempt_key": result.idempotency_key,
                "amount": int(row.total), "currency": row.currency}, now)
            if response_body is not None:
                body = {**response_body, "status": OrderStatus.AUTHORIZED.value,
                        "payment": {"state": "authorized", "processor": result.processor}}
        elif result.outcome is AuthOutcome.DECLINED:
            if not repo.update_order_status(conn, order_id, pending, OrderStatus.DECLINED.value, now,
                                            payment=payment, reservation_expires_at=None):
                return self._settled_elsewhere(conn, order_id, None, result, now)
            repo.release_reservations(conn, order_id)
            repo.enqueue_event(conn, ORDER_DECLINED, order_id,
                               {"order_id": order_id, "reason": result.decline_reason}, now)
            status_code, body = 402, decline_body(order_id, result)
        else:
            if not repo.update_order_status(conn, order_id, pending, OrderStatus.PAYMENT_PENDING.value, now,
                                            payment=payment):
                return self._settled_elsewhere(conn, order_id, None, result, now)
            delay = self.retry_delay(retry_no)
            event_id = repo.enqueue_event(conn, PAYMENT_PENDING, order_id, {
                "order_id": order_id, "attempt_key": result.idempotency_key, "retry_no": retry_no}, now)
            from ..store.tables import outbox

            conn.execute(update(outbox).where(outbox.c.event_id == event_id)
                         .values(available_at=now + timedelta(seconds=delay)))
            if response_body is not None:
                body = {**response_body, "payment": {"state": "pending", "reason": result.pending_reason,
                                                     "retry_in_s": round(delay, 1)}}
        if idempotency_scope is not None and body is not None:
            conn.execute(update(idempotency_keys).where(
                idempotency_keys.c.scope == idempotency_scope[0], idempotency_keys.c.key == idempotency_scope[1]
            ).values(status_code=status_code, response=orjson.dumps(body).decode()))
        return status_code, body

    def _settled_elsewhere(self, conn, order_id: str, status: str | None, result: AuthorizationResult, now
                           ) -> tuple[int, None]:
        """The order left ``payment_pending`` before this result (worker, sweeper, inline path): nothing changes,
        except that an approval which is not the order's own authorization is handed to the worker to void."""
        row = conn.execute(select(orders.c.status, orders.c.payment).where(orders.c.id == order_id)).first()
        if row is not None and _is_orphan(row.status, row.payment, result):
            writes = repo.PendingWrites()
            _add_orphan(writes, order_id, result, now)
            writes.flush(conn)
        return 201, None


def _is_orphan(status: str, payment: dict | None, result: AuthorizationResult) -> bool:
    """An approval that arrived after its order left ``payment_pending``: orphaned when the order ended unpaid, or
    when the order is paid by another authorization (another processor or attempt key) than this one."""
    if result.outcome is not AuthOutcome.APPROVED:
        return False
    if status in ENDED_UNPAID:
        return True
    recorded = payment or {}
    return (recorded.get("processor"), recorded.get("attempt_key")) != (result.processor, result.idempotency_key)


def _add_orphan(writes: repo.PendingWrites, order_id: str, result: AuthorizationResult, now) -> None:
    writes.add_event(AUTHORIZATION_ORPHANED, order_id, {
        "order_id": order_id, "processor": result.processor, "attempt_key": result.idempotency_key}, now)


def void_live_authorizations(payments: WorkerPayments, attempt_key: str | None, processors: Iterable[str]) -> int:
    """Void whatever ``attempt_key`` holds authorized (not captured, not voided) at each of ``processors``.
    Raises :class:`RetryLater` while a processor cannot say or cannot void. Returns how many it voided."""
    if not attempt_key:
        return 0
    voided = 0
    for name in processors:
        try:
            st = payments.router.status(name, attempt_key)
        except PaymentRetryable as exc:
            raise RetryLater(f"status unknown at {name}") from exc
        if getattr(st, "authorized", False) and not getattr(st, "voided", False) \
                and not getattr(st, "captured", False):
            try:
                payments.router.void(name, attempt_key)
            except PaymentRetryable as exc:
                raise RetryLater(f"void pending at {name}") from exc
            log.info("voided the live authorization %s at %s", attempt_key, name)
            voided += 1
    return voided


class VoidAbandonedAuthorizations:
    """Worker handler: an order that ended without a capture (expired by the sweeper, declined, or reached by an
    approval after it ended) keeps no authorization: the customer's funds are released."""

    name = "void_abandoned_authorizations"
    event_types = frozenset({RESERVATION_EXPIRED, ORDER_DECLINED, AUTHORIZATION_ORPHANED})

    def __init__(self, engine: Engine, payments: WorkerPayments) -> None:
        self.engine = engine
        self.payments = payments

    def handle(self, event: OutboxEvent) -> None:
        order_id = event.payload["order_id"]
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            row = conn.execute(select(orders.c.status, orders.c.payment).where(orders.c.id == order_id)).first()
        if row is None:
            return
        payment = row.payment or {}
        if event.type == AUTHORIZATION_ORPHANED:
            processor, key = event.payload.get("processor"), event.payload.get("attempt_key")
            if row.status not in ENDED_UNPAID and (payment.get("processor"), payment.get("attempt_key")) == (
                    processor, key):
                return  # it is the authorization the order is paid with after all
            if processor:
                void_live_authorizations(self.payments, key, [processor])
            return
        if row.status not in ENDED_UNPAID:
            return  # never void the authorization of an order that is still being paid for
        names = self.payments.processor_names()
        for key in dict.fromkeys(k for k in (payment.get("attempt_key"), payment.get("previous_attempt_key")) if k):
            void_live_authorizations(self.payments, key, names)


class PaymentRetry:
    """Worker handler: finish authorizations the checkout could not settle inline (same attempt key)."""

    name = "payment_retry"
    event_types = frozenset({ORDER_PLACED, PAYMENT_PENDING})

    def __init__(self, engine: Engine, clock: Clock, payments: WorkerPayments, settlement: PaymentSettlement,
                 inline_grace_s: float) -> None:
        self.engine = engine
        self.clock = clock
        self.payments = payments
        self.settlement = settlement
        self.inline_grace = timedelta(seconds=inline_grace_s)

    def handle(self, event: OutboxEvent) -> None:
        order_id = event.payload["order_id"]
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            row = conn.execute(select(orders).where(orders.c.id == order_id)).first()
        if row is None:
            return
        payment = row.payment or {}
        if event.type == ORDER_PLACED:
            if "outcome" in payment:
                return  # the checkout settled (or scheduled) this payment itself
            if self.clock.now() - row.created_at < self.inline_grace:
                # The checkout may still be authorizing inline: let it finish before we touch the processors.
                remaining = (row.created_at + self.inline_grace - self.clock.now()).total_seconds()
                raise RetryLater("inline authorization may be in flight", delay_s=max(remaining, 0.1))
        suspects = payment.get("suspects")
        suspect_set = None if suspects is None or event.type == ORDER_PLACED else frozenset(suspects)
        attempt_key = payment.get("attempt_key") or event.payload.get("attempt_key")
        if row.status == OrderStatus.CANCELLED.value:
            self._void_if_charged(attempt_key, suspect_set)
            return
        if row.status != OrderStatus.PAYMENT_PENDING.value:
            return
        token = self._token_for(order_id)
        # For OrderPlaced the inline call's fate is unknown (no stored result): every processor is asked first.
        stored = {"attempt_key": attempt_key} if event.type == ORDER_PLACED else payment
        attempt = PaymentAttempt.for_retry(stored, order_id=order_id, amount=int(row.total), currency=row.currency,
                                           token=token)
        if attempt.idempotency_key != attempt_key:
            # The old key is cancelled everywhere: persist the new attempt's key before the first call.
            with self.engine.begin() as conn:
                repo.update_order_fields(conn, order_id, self.clock.now(),
                                         payment={**payment, "attempt_key": attempt.idempotency_key,
                                                  "previous_attempt_key": attempt_key, "key_exhausted": False})
        result = self.payments.authorize_retry(attempt)
        retry_no = int(event.payload.get("retry_no", 0)) + 1
        self.settlement.apply(order_id, result, retry_no=retry_no)

    def _token_for(self, order_id: str) -> str:
        from ..store.tables import outbox

        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            payload = conn.execute(select(outbox.c.payload).where(
                outbox.c.aggregate_id == order_id, outbox.c.type == ORDER_PLACED)).scalar()
        return (payload or {}).get("payment_token") or ""

    def _void_if_charged(self, attempt_key: str | None, suspects: frozenset[str] | None) -> None:
        names = self.payments.processor_names() if suspects is None else sorted(suspects)
        void_live_authorizations(self.payments, attempt_key, names)


class ScreenAndCapture:
    """Worker handler: fraud screening, then capture at the processor that authorized."""

    name = "screen_and_capture"
    event_types = frozenset({PAYMENT_AUTHORIZED})

    def __init__(self, engine: Engine, clock: Clock, payments: WorkerPayments) -> None:
        self.engine = engine
        self.clock = clock
        self.payments = payments

    def handle(self, event: OutboxEvent) -> None:
        p = event.payload
        order_id = p["order_id"]
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            row = conn.execute(select(orders.c.status, orders.c.payment).where(orders.c.id == order_id)).first()
        if row is None or row.status != OrderStatus.AUTHORIZED.value:
            return  # already captured, on hold or cancelled
        assessment = self.payments.fraud.assess(order_id)
        now = self.clock.now()
        if assessment.hold:
            with self.engine.begin() as conn:
                doc = {**(row.payment or {}), "fraud": assessment.to_json()}
                if repo.update_order_status(conn, order_id, [OrderStatus.AUTHORIZED.value],
                                            OrderStatus.ON_HOLD.value, now, payment=doc):
                    repo.enqueue_event(conn, ORDER_ON_HOLD, order_id,
                                       {"order_id": order_id, "fraud": assessment.to_json()}, now)
            return
        try:
            self.payments.router.capture(p["processor"], p["attempt_key"], int(p["amount"]), p["currency"])
        except PaymentRetryable as exc:
            raise RetryLater(f"capture not confirmed: {exc}") from exc
        except PaymentRejected:
            raise
        with self.engine.begin() as conn:
            doc = {**(row.payment or {}), "fraud": assessment.to_json(), "state": "captured",
                   "captured_at": now.isoformat()}
            if repo.update_order_status(conn, order_id, [OrderStatus.AUTHORIZED.value],
                                        OrderStatus.CAPTURED.value, now, payment=doc):
                repo.enqueue_event(conn, PAYMENT_CAPTURED, order_id, {"order_id": order_id}, now)


class ConfirmationMail:
    name = "confirmation_mail"
    event_types = frozenset({PAYMENT_AUTHORIZED})

    def __init__(self, engine: Engine, mailer: Notifier) -> None:
        self.engine = engine
        self.mailer = mailer

    def handle(self, event: OutboxEvent) -> None:
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            row = conn.execute(select(orders).where(orders.c.id == event.payload["order_id"])).mappings().first()
            lines = repo.get_order(conn, event.payload["order_id"])["lines"] if row else []
        if row is None:
            return
        from .notify import MailDeliveryError

        try:
            self.mailer.send_confirmation({**dict(row), "lines": lines})
        except MailDeliveryError as exc:  # SMTP down: keep retrying with backoff until it is back
            raise RetryLater(f"mail not delivered: {exc}") from exc


class ShippingReconcile:
    name = "shipping_reconcile"
    event_types = frozenset({ORDER_PLACED})

    def __init__(self, engine: Engine, clock: Clock, shipping: ShippingReconciler) -> None:
        self.engine = engine
        self.clock = clock
        self.shipping = shipping

    def handle(self, event: OutboxEvent) -> None:
        order_id = event.payload["order_id"]
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            row = conn.execute(select(orders.c.shipping, orders.c.ship_to).where(orders.c.id == order_id)).first()
        if row is None or not row.shipping or not row.shipping.get("provisional"):
            return
        from .shipping import QuoteUnavailable

        try:
            doc = self.shipping.reconcile(row.shipping, row.ship_to["country"], row.ship_to.get("postal_code"))
        except QuoteUnavailable as exc:
            raise RetryLater(f"rate service still unavailable: {exc}") from exc
        if doc is None:
            return
        with self.engine.begin() as conn:
            repo.update_order_fields(conn, order_id, self.clock.now(), shipping=doc)


class WarehouseWebhookDelivery:
    """Worker handler: POST the signed handoff to the warehouse system (when one is configured)."""

    name = "warehouse_webhook"
    event_types = frozenset({ORDER_HANDED_OFF})

    def __init__(self, engine: Engine, clock: Clock, webhook: WebhookSender) -> None:
        self.engine = engine
        self.clock = clock
        self.webhook = webhook

    def handle(self, event: OutboxEvent) -> None:
        from .webhooks import WebhookDeliveryError

        try:
            self.webhook.deliver(event.event_id, {"type": event.type, **event.payload})
        except WebhookDeliveryError as exc:
            if exc.retryable:
                raise RetryLater(str(exc)) from exc
            raise
        with self.engine.begin() as conn:
            conn.execute(update(warehouse_tasks).where(warehouse_tasks.c.order_id == event.payload["order_id"])
                         .values(status="sent", sent_at=self.clock.now(),
                                 webhook_attempts=warehouse_tasks.c.webhook_attempts + 1))


def payment_handlers(engine: Engine, clock: Clock, payments: WorkerPayments, settlement: PaymentSettlement, *,
                     inline_grace_s: float) -> list:
    """The worker's payment handlers, in the order they run for one event."""
    return [
        PaymentRetry(engine, clock, payments, settlement, inline_grace_s=inline_grace_s),
        ScreenAndCapture(engine, clock, payments),
        VoidAbandonedAuthorizations(engine, payments),
    ]
