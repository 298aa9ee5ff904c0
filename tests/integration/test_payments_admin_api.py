"""Admin payments endpoints through a small FastAPI app on a real database."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from shopfloor.api.app import create_app
from shopfloor.bootstrap import build_container
from shopfloor.config import Settings
from shopfloor.orders.payments_service import build_payments_service
from shopfloor.payments import PaymentAttempt
from tests.support.store import new_key


@pytest.fixture
def client(db_url):
    settings = Settings(
        database_url=db_url,
        payments_runtime_cache_ttl_s=0.0,
        payments_sim_faults={"primary": {"latency_ms": 0}, "secondary": {"latency_ms": 0}},
    )
    container = build_container(settings)
    container.services["payments"] = build_payments_service(
        settings, container.engine, container.clock, registry=CollectorRegistry()
    )
    _, admin = new_key(container.engine, "admin")
    _, shop = new_key(container.engine, "storefront")
    # The real app: its Authenticator over the api_keys table and its error handlers (the lifespan closes the
    # container on exit).
    with TestClient(create_app(container)) as c:
        c.admin, c.shop = {"Authorization": f"Bearer {admin}"}, {"Authorization": f"Bearer {shop}"}
        yield c


def test_fault_injection_merges_fields_and_is_read_back(client):
    r = client.put("/v1/admin/processors/primary/faults", json={"down": True, "error_rate": 0.25}, headers=client.admin)
    assert r.status_code == 200 and r.json()["down"] is True and r.json()["error_rate"] == 0.25
    r = client.put("/v1/admin/processors/primary/faults", json={"latency_ms": 50}, headers=client.admin)
    assert r.json() == {**r.json(), "down": True, "error_rate": 0.25, "latency_ms": 50}
    assert client.get("/v1/admin/processors/primary/faults", headers=client.admin).json()["down"] is True


@pytest.mark.parametrize(
    "body,field",
    [({"decline_rate": 1.5}, "decline_rate"), ({"timeout_rate": -0.1}, "timeout_rate"),
     ({"down": "maybe"}, "down"), ({"bogus": 1}, "bogus"), ({"latency_ms": -5}, "latency_ms")],
)
def test_bad_fault_bodies_are_422_naming_the_field(client, body, field):
    r = client.put("/v1/admin/processors/primary/faults", json=body, headers=client.admin)
    assert r.status_code == 422
    assert field in str(r.json())


def test_unknown_processors_are_404(client):
    r = client.put("/v1/admin/processors/tertiary/faults", json={"down": True}, headers=client.admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert client.get("/v1/admin/processors/tertiary/ledger", headers=client.admin).status_code == 404


def test_rate_service_faults_use_the_same_body(client):
    r = client.put("/v1/admin/rates/faults", json={"timeout_rate": 1.0}, headers=client.admin)
    assert r.status_code == 200 and r.json()["timeout_rate"] == 1.0
    svc = client.app.state.container.services["payments"]
    quote = svc.shipping.quote_for_checkout("US")
    assert quote["provisional"] and quote["reason"] == "timeout"
    assert client.put("/v1/admin/rates/faults", json={"error_rate": 2}, headers=client.admin).status_code == 422


def test_processor_order_is_validated_and_applied(client):
    r = client.put("/v1/admin/processors/order", json=["secondary", "primary"], headers=client.admin)
    assert r.status_code == 200 and r.json() == {"order": ["secondary", "primary"]}
    r = client.put("/v1/admin/processors/order", json=["secondary", "nope"], headers=client.admin)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["unknown"] == ["nope"]
    r = client.put("/v1/admin/processors/order", json=["primary", "primary"], headers=client.admin)
    assert r.status_code == 422
    assert client.put("/v1/admin/processors/order", json=[], headers=client.admin).status_code == 422
    assert client.put("/v1/admin/processors/order", json={"order": "x"}, headers=client.admin).status_code == 422
    health = client.get("/v1/admin/processors", headers=client.admin).json()
    assert health["order"] == ["secondary", "primary"]


def test_ledger_lists_charges_and_health_shows_the_breakers(client):
    svc = client.app.state.container.services["payments"]
    client.put("/v1/admin/processors/primary/faults", json={"down": True}, headers=client.admin)
    result = svc.authorize_inline(PaymentAttempt("att-9", "ord-9", 2500, "EUR", "tok"))
    assert result.processor == "secondary"
    assert client.get("/v1/admin/processors/primary/ledger", headers=client.admin).json() == []
    [row] = client.get("/v1/admin/processors/secondary/ledger", headers=client.admin).json()
    assert {k: row[k] for k in ("idempotency_key", "order_id", "amount", "currency", "authorized", "captured",
                                "voided")} == {
        "idempotency_key": "att-9", "order_id": "ord-9", "amount": 2500, "currency": "EUR",
        "authorized": True, "captured": False, "voided": False,
    }
    body = client.get("/v1/admin/processors", headers=client.admin).json()
    primary = next(p for p in body["processors"] if p["processor"] == "primary")
    assert primary["window_failures"] == 1 and primary["faults"]["down"] is True
    assert {p["breaker_state"] for p in body["processors"]} <= {"closed", "open", "half_open"}


def test_admin_routes_require_the_admin_scope(client):
    r = client.get("/v1/admin/processors")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = client.get("/v1/admin/processors", headers={"Authorization": "Bearer sf_no-such-key"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = client.get("/v1/admin/processors", headers=client.shop)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = client.put("/v1/admin/processors/primary/faults", json={"down": True}, headers=client.shop)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert client.get("/v1/admin/processors/primary/faults", headers=client.admin).json()["down"] is False
