"""Two server processes on PostgreSQL race one idempotency key: one order, and both answers name it.

The race is forced: the test holds the stock row's lock, both servers' checkout transactions read the key as new
and then queue on that lock (observed in ``pg_locks``), and only then does the test let them go."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from sqlalchemy import func, select, text

from shopfloor.store.tables import idempotency_keys, orders
from tests.support.server import ServerProcess
from tests.support.store import check_invariants, engine_for, new_key, seed

pytestmark = pytest.mark.slow

BODY = {"lines": [{"sku": "A1", "qty": 2}], "ship_to": {"country": "US", "postal_code": "94107"},
        "payment": {"token": "tok_ok"}}


def _waiting_backends(conn) -> int:
    n = conn.execute(text("SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted")).scalar()
    conn.rollback()
    return int(n)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_two_server_processes_racing_one_key_create_one_order(db_url, tmp_path):
    engine = engine_for(db_url)
    seed(engine, {"w1": ("us-west", "US", ["9"])}, {"A1": 1299}, {("A1", "w1"): 10})
    _, key = new_key(engine, "storefront")
    servers = [ServerProcess(db_url, log_path=tmp_path / f"server{i}.log") for i in range(2)]
    for s in servers:
        s.start()
    answers: list[httpx.Response | BaseException] = [None, None]  # type: ignore[list-item]

    def buy(i: int) -> None:
        try:
            answers[i] = httpx.post(servers[i].url + "/v1/checkouts", json=BODY, timeout=60,
                                    headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "double-click"})
        except BaseException as exc:  # noqa: BLE001 - reported below
            answers[i] = exc

    threads = [threading.Thread(target=buy, args=(i,)) for i in range(2)]
    try:
        with engine.connect() as gate, engine.connect() as observer:
            gate.execute(text("SELECT on_hand FROM stock WHERE sku = 'A1' FOR UPDATE"))  # the barrier
            for t in threads:
                t.start()
            deadline = time.monotonic() + 30
            while _waiting_backends(observer) < 2:  # both have read the key as unused and wait on our lock
                assert time.monotonic() < deadline, "the two checkouts never both reached the stock row"
                assert all(a is None for a in answers), answers
                time.sleep(0.01)
            gate.rollback()  # let them race
        for t in threads:
            t.join(60)
    finally:
        for s in servers:
            s.stop()
    assert all(isinstance(a, httpx.Response) for a in answers), answers
    assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
    assert answers[0].json()["order_id"] == answers[1].json()["order_id"]
    assert sorted(a.headers.get("Idempotent-Replayed", "false") for a in answers) == ["false", "true"]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(orders)).scalar() == 1
        assert conn.execute(select(func.count()).select_from(idempotency_keys)).scalar() == 1
    check_invariants(engine, {("A1", "w1"): 10})
    engine.dispose()
