"""The simulators as their own HTTP process: the shop talks to them through the same PaymentProcessor and
RateQuoter protocols, faults set through the shared fault store reach them, and a checkout pays through them."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from shopfloor.api.app import create_app
from shopfloor.bootstrap import build_container
from shopfloor.config import Settings
from shopfloor.orders.shipping import RateServiceError
from shopfloor.payments import ConnectionRefused, ProcessorUnavailable
from shopfloor.runtime import SimulatorProcess, free_port
from shopfloor.simulators import HttpProcessor, HttpRateQuoter
from tests.support.store import new_key, seed


@pytest.fixture
def sim(db_url, tmp_path):
    faults = ('{"primary": {"latency_ms": 1}, "secondary": {"latency_ms": 1}, "rates": {"latency_ms": 1}}')
    proc = SimulatorProcess(db_url, env={"SHOPFLOOR_PAYMENTS_SIM_FAULTS": faults}, log_path=tmp_path / "sim.log")
    try:
        proc.start(timeout=20)
        yield db_url, proc.url
    finally:
        proc.stop()


def test_an_authorization_is_idempotent_and_can_be_looked_up_captured_and_refused_a_void(sim):
    _, url = sim
    p = HttpProcessor("primary", url)
    first = p.authorize("k1", 1299, "USD", "tok_ok", "ord_1", timeout_s=2)
    again = p.authorize("k1", 1299, "USD", "tok_ok", "ord_1", timeout_s=2)
    assert first.approved and again.reference == first.reference
    st = p.status("k1", timeout_s=2)
    assert st.found and st.authorized and not st.captured and st.amount == 1299
    assert p.capture("k1", 1299, "USD", timeout_s=2).approved
    assert p.void("k1", timeout_s=2).approved is False  # captured money is not voided
    assert p.status("never-seen", timeout_s=2).found is False


def test_faults_from_the_shared_store_reach_the_process_and_map_to_the_protocols_errors(sim):
    db_url, url = sim
    container = build_container(Settings(database_url=db_url, payments_runtime_cache_ttl_s=0.0))
    payments = container.services["payments"]
    try:
        payments.set_faults("primary", payments.get_faults("primary").model_copy(update={"down": True}))
        payments.set_faults("secondary", payments.get_faults("secondary").model_copy(update={"error_rate": 1.0}))
        payments.set_faults("rates", payments.get_faults("rates").model_copy(update={"down": True}))
        time.sleep(0.8)  # the simulator process caches its fault config for payments_runtime_cache_ttl_s
        with pytest.raises(ConnectionRefused):
            HttpProcessor("primary", url).authorize("k2", 100, "USD", "tok_ok", "ord_2", timeout_s=2)
        with pytest.raises(ProcessorUnavailable):
            HttpProcessor("secondary", url).authorize("k3", 100, "USD", "tok_ok", "ord_3", timeout_s=2)
        with pytest.raises(RateServiceError):
            HttpRateQuoter(url).quote("US", "94107", 1000, timeout_s=2)
    finally:
        container.close()


def test_nothing_listening_is_certainly_not_charged():
    with pytest.raises(ConnectionRefused):
        HttpProcessor("primary", f"http://127.0.0.1:{free_port()}").authorize("k", 1, "USD", "t", "o", timeout_s=1)


def test_a_checkout_pays_through_the_simulator_process(sim):
    db_url, url = sim
    container = build_container(Settings(database_url=db_url, payments_sim_url=url))
    seed(container.engine, {"w1": ("us-west", "US", ["9"])}, {"A1": 1299}, {("A1", "w1"): 5})
    _, shop = new_key(container.engine, "storefront")
    with TestClient(create_app(container)) as client:
        r = client.post("/v1/checkouts", headers={"Authorization": f"Bearer {shop}", "Idempotency-Key": "sim-1"},
                        json={"lines": [{"sku": "A1", "qty": 1}], "ship_to": {"country": "US", "postal_code": "94107"},
                              "payment": {"token": "tok_ok"}})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "authorized" and body["shipping"]["provisional"] is False
    ledger = container.services["payments"].ledger(body["payment"]["processor"])
    assert [row["order_id"] for row in ledger] == [body["order_id"]]


def test_checkouts_through_the_simulator_process_start_no_thread_per_remote_call(sim, monkeypatch):
    import threading

    def blocking_call(*_a, **_kw):
        raise AssertionError("a checkout made a blocking remote call")

    monkeypatch.setattr(HttpProcessor, "authorize", blocking_call)
    monkeypatch.setattr(HttpRateQuoter, "quote", blocking_call)
    db_url, url = sim
    container = build_container(Settings(database_url=db_url, payments_sim_url=url))
    seed(container.engine, {"w1": ("us-west", "US", ["9"])}, {"A1": 1299}, {("A1", "w1"): 50})
    _, shop = new_key(container.engine, "storefront")
    before = {t.ident for t in threading.enumerate()}
    with TestClient(create_app(container)) as client:
        for i in range(5):
            r = client.post("/v1/checkouts", headers={"Authorization": f"Bearer {shop}", "Idempotency-Key": f"nt-{i}"},
                            json={"lines": [{"sku": "A1", "qty": 1}],
                                  "ship_to": {"country": "US", "postal_code": f"9410{i}"},
                                  "payment": {"token": "tok_ok"}})
            assert r.status_code == 201 and r.json()["status"] == "authorized", r.text
        started = [t.name for t in threading.enumerate() if t.ident not in before]
    # The authorizations and rate quotes were awaited on the server's loop: no buy-path or rates thread (one
    # payments pool thread at most: it writes the breakers' health snapshot every 2 s, off the loop).
    assert not [n for n in started if n.startswith(("buy-path", "rates"))], started
    assert len([n for n in started if n.startswith("payments")]) <= 1, started


def test_a_client_comes_back_after_the_simulator_process_is_killed_and_finds_the_charge_it_made(db_url, tmp_path):
    faults = '{"primary": {"latency_ms": 1}, "secondary": {"latency_ms": 1}, "rates": {"latency_ms": 1}}'
    proc = SimulatorProcess(db_url, env={"SHOPFLOOR_PAYMENTS_SIM_FAULTS": faults}, log_path=tmp_path / "sim.log")
    try:
        proc.start(timeout=20)
        p = HttpProcessor("primary", proc.url)
        first = p.authorize("k-kill", 1299, "USD", "tok_ok", "ord_k", timeout_s=2)
        proc.kill9()
        for _ in range(2):  # the kept connection is dead, then nothing listens: certainly not processed, twice
            with pytest.raises(ConnectionRefused):
                p.capture("k-kill", 1299, "USD", timeout_s=2)
        proc.start(timeout=20)
        st = p.status("k-kill", timeout_s=2)  # the same client, on a new connection
        assert st.found and st.authorized and not st.captured  # the ledger outlived the process
        assert p.authorize("k-kill", 1299, "USD", "tok_ok", "ord_k", timeout_s=2).reference == first.reference
        assert p.capture("k-kill", 1299, "USD", timeout_s=2).approved
    finally:
        proc.stop()
