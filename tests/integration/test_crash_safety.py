"""Guarantee 3: kill -9 the server (several times) and the worker under load; nothing acknowledged is lost."""

from __future__ import annotations

import random
import threading
import time
import uuid

import httpx
import pytest
from sqlalchemy import func, select

from shopfloor.orders import outbox_status
from shopfloor.store import orders_repo as repo
from shopfloor.store.tables import processed_events, warehouse_tasks
from tests.support.server import ServerProcess, WorkerProcess
from tests.support.store import check_invariants, engine_for, new_key, seed

pytestmark = pytest.mark.slow

SKUS = [f"S{i:02d}" for i in range(20)]
INITIAL = {(s, w): 40 for s in SKUS for w in ("w1", "w2")}


def test_kill_9_never_loses_an_acknowledged_order(db_url, tmp_path):
    engine = engine_for(db_url)
    seed(engine, {"w1": ("us-west", "US", ["9"]), "w2": ("us-east", "US", ["0"])}, {s: 500 for s in SKUS}, INITIAL)
    _, key = new_key(engine, "storefront")
    server = ServerProcess(db_url, log_path=tmp_path / "server.log").start()
    port = server.port
    acknowledged: dict[str, dict] = {}
    lock = threading.Lock()
    stop = threading.Event()
    rng = random.Random(7)

    def shopper(seed_: int) -> None:
        r = random.Random(seed_)
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                body = {"lines": [{"sku": r.choice(SKUS), "qty": r.randint(1, 3)}],
                        "ship_to": {"country": "US", "postal_code": r.choice(["94107", "02110"])},
                        "payment": {"token": "tok_ok"}}
                headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": uuid.uuid4().hex}
                while not stop.is_set():  # retry the SAME key until the server answers
                    try:
                        resp = client.post(f"http://127.0.0.1:{port}/v1/checkouts", json=body, headers=headers)
                    except httpx.TransportError:
                        time.sleep(0.05)
                        continue
                    if resp.status_code == 201:
                        with lock:
                            acknowledged[resp.json()["order_id"]] = resp.json()
                    break

    threads = [threading.Thread(target=shopper, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    try:
        for _ in range(3):
            time.sleep(rng.uniform(1.0, 2.5))
            server.kill9()
            time.sleep(0.2)
            server = ServerProcess(db_url, port=port, log_path=tmp_path / "server.log").start()
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        server.stop()

    assert len(acknowledged) > 20, "the load generator should have placed a meaningful number of orders"
    with engine.connect() as conn:
        for order_id, ack in acknowledged.items():
            order = repo.get_order(conn, order_id)
            assert order is not None, f"acknowledged order {order_id} was lost"
            assert [(l["sku"], l["qty"], l["warehouse"]) for l in order["lines"]] == [
                (l["sku"], l["qty"], l["warehouse"]) for l in ack["lines"]
            ]
            assert {(r["sku"], r["warehouse"], r["qty"]) for r in order["reservations"]} == {
                (l["sku"], l["warehouse"], l["qty"]) for l in ack["lines"]
            }
    check_invariants(engine, INITIAL)

    # Now the worker: kill it at random points while it delivers, restart, and let it finish.
    for _ in range(3):
        worker = WorkerProcess(db_url).start()
        time.sleep(rng.uniform(0.3, 1.2))
        worker.kill9()
    worker = WorkerProcess(db_url).start()
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            st = outbox_status(engine)
            if st["pending"] == 0:
                break
            time.sleep(0.5)
    finally:
        worker.stop()
    st = outbox_status(engine)
    assert st["pending"] == 0 and st["dead"] == 0
    with engine.connect() as conn:
        tasks = conn.execute(select(warehouse_tasks.c.order_id, func.count()).group_by(warehouse_tasks.c.order_id)).all()
        per_order = {r[0]: r[1] for r in tasks}
        handled = conn.execute(select(func.count()).select_from(processed_events).where(
            processed_events.c.handler == "warehouse_handoff")).scalar()
        for order_id, ack in acknowledged.items():
            assert per_order.get(order_id) == len({l["warehouse"] for l in ack["lines"]})
            assert repo.get_order(conn, order_id)["status"] == "handed_off"
    assert handled >= len(acknowledged)
    check_invariants(engine, INITIAL)
    engine.dispose()
