"""Issue-3 guarantees: the buy path stays honest while processors, the rate service and SMTP misbehave."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import pytest
from sqlalchemy import select

from shopfloor.bootstrap import build_container, build_worker
from shopfloor.config import Settings
from shopfloor.domain.stock import OrderLineRequest
from shopfloor.orders import PlaceOrder, outbox_status, request_fingerprint
from shopfloor.orders.payment_flow import PAYMENT_PENDING
from shopfloor.simulators import FaultPatch
from shopfloor.store import orders_repo as repo
from shopfloor.store.tables import orders, outbox
from tests.support.store import check_invariants, new_key, seed

pytestmark = pytest.mark.slow

SKUS = [f"P{i:02d}" for i in range(40)]
INITIAL = {(s, "w1"): 10_000 for s in SKUS}


def _settings(db_url, tmp_path, **kw) -> Settings:
    return Settings(database_url=db_url, data_dir=tmp_path, payments_sim_seed=11, **kw)


def _cmd(i: int, key_id: str) -> PlaceOrder:
    lines = (OrderLineRequest(SKUS[i % len(SKUS)], 1 + i % 3),)
    body = {"i": i, "lines": [[l.sku, l.qty] for l in lines]}
    return PlaceOrder(key_id, uuid.uuid4().hex, request_fingerprint(body), lines, "US", "94107",
                      {"token": f"tok_{i}", "customer_id": f"c{i}"})


async def _run_phase(buy_path, key_id, start, n, concurrency=64):
    sem = asyncio.Semaphore(concurrency)

    async def one(i):
        async with sem:
            return await buy_path.checkout(_cmd(i, key_id))

    return await asyncio.gather(*(one(i) for i in range(start, start + n)))


def _charges_by_order(payments) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for name in payments.processor_names():
        for row in payments.ledger(name):
            out.setdefault(row["order_id"], []).append({**row, "processor": name})
    return out


def test_thousand_checkouts_across_the_fault_matrix_never_double_charge(db_url, tmp_path):
    container = build_container(_settings(db_url, tmp_path))
    seed(container.engine, {"w1": ("us-west", "US", ["9"])}, {s: 1500 for s in SKUS}, INITIAL)
    key_id, _ = new_key(container.engine, "storefront")
    payments, buy_path = container.services["payments"], container.services["buy_path"]
    phases = [
        ("primary times out after charging", "primary", FaultPatch(lost_response_rate=0.5)),
        ("primary 5xx before charging", "primary", FaultPatch(error_rate=0.6)),
        ("primary refuses connections", "primary", FaultPatch(down=True)),
        ("primary stalls for 10 s", "primary", FaultPatch(latency_ms=10_000, latency_jitter=0)),
        ("decline storm", "both", FaultPatch(decline_rate=0.7)),
    ]
    results = []
    healthy = FaultPatch(lost_response_rate=0, error_rate=0, down=False, latency_ms=5, latency_jitter=0.1,
                         decline_rate=0, timeout_rate=0)
    for idx, (_, target, patch) in enumerate(phases):
        for name in ("primary", "secondary"):
            payments.set_faults(name, healthy)
        for name in (["primary", "secondary"] if target == "both" else [target]):
            payments.set_faults(name, patch)
        time.sleep(0.6)  # the fault cache TTL
        results += asyncio.run(_run_phase(buy_path, key_id, idx * 200, 200))
    assert len(results) == 1000

    # Right after the storm: every order is authorized, pending with a retry scheduled, or declined+released.
    accepted = {r.body["order_id"]: r for r in results if r.status_code == 201}
    declined = [r for r in results if r.status_code == 402]
    assert len(accepted) + len(declined) == 1000, Counter(r.status_code for r in results)
    with container.engine.connect() as conn:
        pending_events = {row.aggregate_id for row in conn.execute(
            select(outbox.c.aggregate_id).where(outbox.c.type == PAYMENT_PENDING, outbox.c.status == "pending"))}
        for order_id in accepted:
            order = repo.get_order(conn, order_id)
            assert order["status"] in {"authorized", "payment_pending"}, order["status"]
            if order["status"] == "payment_pending":
                assert order_id in pending_events, "a pending payment must have a retry scheduled"
        for r in declined:
            order = repo.get_order(conn, r.body["error"]["details"][0]["order_id"])
            assert order["status"] == "declined"
            assert all(res["state"] == "released" for res in order["reservations"])
    assert len(declined) > 50  # the decline storm really declined

    # Dependencies recover; the worker settles everything.
    for name in ("primary", "secondary"):
        payments.set_faults(name, healthy)
    time.sleep(0.6)
    worker = build_worker(container)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and outbox_status(container.engine)["pending"]:
        if worker.run_once() == 0:
            time.sleep(0.2)
    assert outbox_status(container.engine)["pending"] == 0

    charges = _charges_by_order(payments)
    with container.engine.connect() as conn:
        statuses = dict(conn.execute(select(orders.c.id, orders.c.status)).all())
    for order_id, status in statuses.items():
        rows = charges.get(order_id, [])
        captured = [c for c in rows if c["captured"]]
        live = [c for c in rows if c["authorized"] and not c["voided"]]
        assert len(captured) <= 1, f"{order_id} captured {len(captured)} times"
        assert len(live) <= 1, f"{order_id} holds {len(live)} authorizations"
        if status == "declined":
            assert not captured
        if status in {"captured", "handed_off"}:
            assert len(captured) == 1
    assert set(statuses.values()) <= {"handed_off", "on_hold", "declined"}, Counter(statuses.values())
    check_invariants(container.engine, INITIAL)
    container.close()


def test_blackholed_rate_service_gives_flagged_provisional_quotes_reconciled_later(db_url, tmp_path):
    container = build_container(_settings(db_url, tmp_path))
    seed(container.engine, {"w1": ("us-west", "US", ["9"])}, {s: 1500 for s in SKUS}, INITIAL)
    key_id, _ = new_key(container.engine, "storefront")
    payments, buy_path = container.services["payments"], container.services["buy_path"]
    payments.set_faults("rates", FaultPatch(latency_ms=30_000, latency_jitter=0))
    time.sleep(0.6)
    results = asyncio.run(_run_phase(buy_path, key_id, 0, 40, concurrency=20))
    assert all(r.status_code == 201 for r in results)
    assert all(r.body["shipping"]["provisional"] is True and r.body["shipping"]["reason"] for r in results)
    payments.set_faults("rates", FaultPatch(latency_ms=5))
    time.sleep(0.6)
    worker = build_worker(container)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and outbox_status(container.engine)["pending"]:
        if worker.run_once() == 0:
            time.sleep(0.2)
    with container.engine.connect() as conn:
        for r in results:
            shipping = repo.get_order(conn, r.body["order_id"])["shipping"]
            assert shipping["provisional"] is False and shipping["source"] == "rate_service"
            assert shipping["provisional_estimate"]["provisional"] is True  # the order shows both
    container.close()
