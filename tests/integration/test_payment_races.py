"""Payment settlement against the sweeper and the worker: no confirmation for a cancelled order, no released stock
under an authorized one, and no authorization left live on an order that ended without a capture.

The PostgreSQL races are forced: the competing transaction starts right after the settlement read its order and
runs until it commits or waits on the settlement's lock (see ``tests/support/interleave.py``)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from shopfloor.domain.clock import FixedClock
from shopfloor.domain.orders import RESERVATION_EXPIRED
from shopfloor.domain.stock import OrderLineRequest
from shopfloor.orders import CheckoutService, OutboxWorker, PlaceOrder, release_expired_reservations
from shopfloor.orders.payment_flow import (
    ORDER_DECLINED,
    PAYMENT_AUTHORIZED,
    PaymentSettlement,
    payment_handlers,
)
from shopfloor.payments import AuthOutcome, AuthorizationResult, ChargeStatus
from shopfloor.store import orders_repo as repo
from shopfloor.store.tables import outbox
from tests.support.interleave import Competitor, once_after
from tests.support.store import NOW, check_invariants, engine_for, seed

WAREHOUSES = {"west": ("us-west", "US", ["9"])}
INITIAL = {("A", "west"): 10}
on_postgres = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)


@pytest.fixture
def store(db_url):
    engine = engine_for(db_url)
    clock = FixedClock(NOW)
    seed(engine, WAREHOUSES, {"A": 1000}, {("A", "west"): 10})
    svc = CheckoutService(engine, clock, reservation_ttl_s=60)
    yield db_url, engine, clock, svc
    svc.close()
    engine.dispose()


def _place(svc, key="k1", attempt_key="pay_1") -> str:
    cmd = PlaceOrder("key_test", key, f"hash-{key}", (OrderLineRequest("A", 2),), "US", "94107",
                     {"token": "tok_ok"}, extra={"payment_attempt_key": attempt_key})
    res = svc.place_order(cmd)
    assert res.status_code == 201
    return res.body["order_id"]


def _order(engine, order_id):
    with engine.connect() as conn:
        order = repo.get_order(conn, order_id)
        events = [r.type for r in conn.execute(select(outbox.c.type).where(outbox.c.aggregate_id == order_id)
                                               .order_by(outbox.c.id))]
    return order, events


def _settlement_read(statement: str) -> bool:
    s = statement.lstrip().upper()
    return s.startswith("SELECT") and "FROM ORDERS" in s and "ORDERS.PAYMENT" in s


def _approved(key="pay_1", processor="primary"):
    return AuthorizationResult(AuthOutcome.APPROVED, key, processor=processor, reference="ref")


@on_postgres
def test_an_approval_racing_the_sweeper_never_confirms_a_cancelled_order(store):
    url, engine, clock, svc = store
    order_id = _place(svc)
    clock.advance(seconds=61)  # the reservation has expired: the sweeper may cancel the order at any moment
    sweeper = Competitor(url, lambda eng: release_expired_reservations(eng, clock))
    seen = {}
    once_after(engine, _settlement_read, lambda: seen.setdefault("sweeper", sweeper.start_until_done_or_blocked(engine)))
    PaymentSettlement(engine, clock).apply(order_id, _approved())
    swept = sweeper.join()
    order, events = _order(engine, order_id)
    assert seen["sweeper"] in ("done", "blocked")
    if order["status"] == "cancelled":  # the sweeper won: no confirmation, and the authorization is voided later
        assert swept == [order_id] and PAYMENT_AUTHORIZED not in events
        assert "AuthorizationOrphaned" in events
    else:  # the settlement won: the sweeper left the order alone
        assert order["status"] == "authorized" and swept == [] and RESERVATION_EXPIRED not in events
        assert [r["state"] for r in order["reservations"]] == ["active"]
    check_invariants(engine, INITIAL)


@on_postgres
def test_a_decline_racing_an_approval_never_releases_an_authorized_orders_stock(store):
    url, engine, clock, svc = store
    order_id = _place(svc)
    inline = Competitor(url, lambda eng: PaymentSettlement(eng, clock).apply(order_id, _approved()))
    once_after(engine, _settlement_read, lambda: inline.start_until_done_or_blocked(engine))
    declined = AuthorizationResult(AuthOutcome.DECLINED, "pay_1", processor="primary", decline_reason="do_not_honor")
    PaymentSettlement(engine, clock).apply(order_id, declined)
    inline.join()
    order, events = _order(engine, order_id)
    if order["status"] == "authorized":
        assert [r["state"] for r in order["reservations"]] == ["active"] and ORDER_DECLINED not in events
    else:
        assert order["status"] == "declined" and PAYMENT_AUTHORIZED not in events
        assert [r["state"] for r in order["reservations"]] == ["released"]
    check_invariants(engine, INITIAL)


# --- live authorizations on orders that ended without a capture ----------------------------------------------


class FakeLedger:
    """Two processors' authorizations by (processor, key), reached through the router's status and void."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict] = {}
        self.before_authorize = None

    def live(self) -> list[tuple[str, str]]:
        return [k for k, r in self.rows.items() if r["authorized"] and not r["voided"] and not r["captured"]]

    # router side
    def status(self, name, key, **_kw):
        row = self.rows.get((name, key))
        if row is None:
            return ChargeStatus(name, key, found=False)
        return ChargeStatus(name, key, found=True, authorized=row["authorized"], voided=row["voided"],
                            captured=row["captured"])

    def void(self, name, key, **_kw):
        self.rows[(name, key)]["voided"] = True

    # payments-service side
    @property
    def router(self):
        return self

    def processor_names(self):
        return ["primary", "secondary"]

    def authorize_retry(self, attempt):
        if self.before_authorize is not None:
            self.before_authorize()
        self.rows[("secondary", attempt.idempotency_key)] = {"authorized": True, "voided": False, "captured": False}
        return _approved(attempt.idempotency_key, "secondary")


def _worker(engine, clock, ledger):
    settlement = PaymentSettlement(engine, clock)
    return OutboxWorker(engine, clock, payment_handlers(engine, clock, ledger, settlement, inline_grace_s=1.0),
                        backoff_base_s=0.01)


def _pending_result(key="pay_1"):
    return AuthorizationResult(AuthOutcome.PENDING, key, pending_reason="timeout", suspects=frozenset({"primary"}))


def test_an_order_expired_with_a_lost_authorization_gets_it_voided(store):
    """The inline call authorized at primary but its answer was lost; the order then expired unpaid."""
    _url, engine, clock, svc = store
    order_id = _place(svc)
    ledger = FakeLedger()
    ledger.rows[("primary", "pay_1")] = {"authorized": True, "voided": False, "captured": False}
    order, _ = _order(engine, order_id)
    with engine.begin() as conn:  # what the inline settlement records, without the worker's retry event
        repo.update_order_fields(conn, order_id, clock.now(), payment={**order["payment"], **_pending_result().to_json()})
    clock.advance(seconds=61)
    assert release_expired_reservations(engine, clock) == [order_id]
    _worker(engine, clock, ledger).drain()
    assert ledger.live() == []
    check_invariants(engine, INITIAL)


def test_a_worker_retry_that_authorizes_after_the_sweeper_expired_the_order_voids_it(store):
    _url, engine, clock, svc = store
    order_id = _place(svc)
    settlement = PaymentSettlement(engine, clock)
    settlement.apply(order_id, _pending_result())  # the inline call timed out: the worker retries
    ledger = FakeLedger()

    def sweeper_runs_meanwhile():
        clock.advance(seconds=61)
        assert release_expired_reservations(engine, clock) == [order_id]

    ledger.before_authorize = sweeper_runs_meanwhile
    clock.advance(seconds=2)  # the retry is due
    _worker(engine, clock, ledger).drain()
    order, events = _order(engine, order_id)
    assert order["status"] == "cancelled" and PAYMENT_AUTHORIZED not in events
    assert ("secondary", "pay_1") in ledger.rows and ledger.live() == []
    check_invariants(engine, INITIAL)


def test_a_second_authorization_arriving_for_an_order_already_paid_is_voided_and_the_first_kept(store):
    """The inline path authorized at primary; a retry that ran meanwhile authorized again at secondary under a new
    attempt key. The order keeps the first; the second must not stay live beside it (a double authorization)."""
    _url, engine, clock, svc = store
    order_id = _place(svc)
    settlement = PaymentSettlement(engine, clock)
    ledger = FakeLedger()
    for processor, key in (("primary", "pay_1"), ("secondary", "pay_2")):
        ledger.rows[(processor, key)] = {"authorized": True, "voided": False, "captured": False}
    settlement.apply(order_id, _approved("pay_1", "primary"))
    settlement.apply(order_id, _approved("pay_2", "secondary"))
    settlement.apply(order_id, _approved("pay_1", "primary"))  # the same authorization reported twice: kept
    worker = _worker(engine, clock, ledger)
    worker.handlers = [h for h in worker.handlers if h.name == "void_abandoned_authorizations"]  # no capture here
    worker.drain()
    order, events = _order(engine, order_id)
    assert order["status"] == "authorized" and events.count(PAYMENT_AUTHORIZED) == 1
    assert ledger.live() == [("primary", "pay_1")]


@on_postgres
def test_a_settlement_riding_a_checkout_batch_never_deadlocks_with_the_sweeper(store, caplog):
    """The checkout writer applies inline settlements in its group commit, next to new reservations. The sweeper
    locks the order and then its stock; the batch must take the same order (settlements before reservations), or
    each would wait for the other. Drives one batch the way the writer thread does."""
    import logging
    import threading
    from concurrent.futures import Future

    from sqlalchemy import text

    from shopfloor.orders.checkout import _Batched
    from shopfloor.orders.payment_flow import Settle

    url, engine, clock, svc = store
    order_id = _place(svc)
    clock.advance(seconds=61)
    holding, go, errors = threading.Event(), threading.Event(), []

    def sweeper():  # release_expired_reservations, paused between its two steps
        try:
            with engine.begin() as conn:
                assert repo.update_order_status(conn, order_id, ["payment_pending"], "cancelled", clock.now(),
                                                reservation_expires_at=None)
                holding.set()
                assert go.wait(30)
                repo.release_reservations(conn, order_id)
                repo.enqueue_event(conn, RESERVATION_EXPIRED, order_id, {"order_id": order_id}, clock.now())
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
            holding.set()

    new_order = PlaceOrder("key_test", "k2", "hash-k2", (OrderLineRequest("A", 2),), "US", "94107",
                           {"token": "tok_ok"}, extra={"payment_attempt_key": "pay_2"})
    batch = [(new_order, Future()), (_Batched(PaymentSettlement(engine, clock).apply_many,
                                              Settle(order_id, _approved())), Future())]
    caplog.set_level(logging.WARNING, logger="shopfloor.orders.checkout")
    t_sweep = threading.Thread(target=sweeper)
    t_sweep.start()
    assert holding.wait(30) and not errors
    t_batch = threading.Thread(target=svc._apply_batch, args=(batch,))
    t_batch.start()
    with engine.connect() as observer:  # the batch now waits for the order the sweeper holds
        for _ in range(6000):
            if observer.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar():
                break
            observer.rollback()
            threading.Event().wait(0.005)
        else:
            raise AssertionError("the batch never waited on the sweeper's lock")
    go.set()
    t_sweep.join(30)
    t_batch.join(30)
    assert not errors, errors
    assert batch[0][1].result(0).status_code == 201 and batch[1][1].result(0) == (201, None)
    assert "checkout batch failed" not in caplog.text  # no deadlock, no retry
    order, events = _order(engine, order_id)
    assert order["status"] == "cancelled" and "AuthorizationOrphaned" in events
    check_invariants(engine, INITIAL)
