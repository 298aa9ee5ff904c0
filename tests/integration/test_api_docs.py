"""/docs works offline and the OpenAPI document says how to authenticate, what to send and what can go wrong."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from shopfloor.api.app import create_app
from shopfloor.bootstrap import build_container
from shopfloor.config import Settings
from tests.support.store import new_key, seed


@pytest.fixture
def served(tmp_path):
    from shopfloor.store.migrate import upgrade_database

    def serve(**settings):
        db_url = f"sqlite:///{tmp_path / 'docs.db'}"
        upgrade_database(db_url)
        container = build_container(Settings(database_url=db_url, **settings))
        seed(container.engine, {"w1": ("us-west", "US", ["9"])}, {"A1": 1299}, {("A1", "w1"): 50})
        _, shop = new_key(container.engine, "storefront")
        client = TestClient(create_app(container))
        clients.append(client.__enter__())
        return client, container, {"Authorization": f"Bearer {shop}"}

    clients: list = []
    yield serve
    for client in clients:
        client.__exit__(None, None, None)


def test_the_docs_page_loads_swagger_ui_from_the_server_itself(served):
    client, _, _ = served()
    page = client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/docs/static/") for a in assets), assets  # nothing from a CDN
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    bundle = client.get("/docs/static/swagger-ui-bundle.js")
    assert len(bundle.content) > 1_000_000 and b"SwaggerUIBundle" in bundle.content


def test_protected_operations_declare_the_bearer_key_and_its_scope_and_public_ones_do_not(served):
    client, _, _ = served()
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    checkout = spec["paths"]["/v1/checkouts"]["post"]
    assert checkout["security"] == [{"apiKey": ["storefront"]}]
    assert "`storefront`" in checkout["description"]
    stock = spec["paths"]["/v1/stock/{sku}/{warehouse_id}"]["put"]
    assert stock["security"] == [{"apiKey": ["admin"]}] and {"401", "403"} <= set(stock["responses"])
    assert "security" not in spec["paths"]["/v1/promise"]["get"]


def test_checkout_documents_every_error_it_can_answer_with_the_envelope(served):
    client, _, _ = served()
    spec = client.get("/openapi.json").json()
    responses = spec["paths"]["/v1/checkouts"]["post"]["responses"]
    for status in ("401", "402", "403", "409", "413", "415", "422", "429", "503"):
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ErrorEnvelope"}, status
    envelope = spec["components"]["schemas"]["ErrorEnvelope"]
    assert envelope["properties"]["error"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert set(spec["components"]["schemas"]["ErrorBody"]["required"]) == {"code", "message", "details"}


def test_every_documented_422_is_the_error_envelope_the_server_sends(served):
    client, _, shop = served()
    spec = client.get("/openapi.json").json()
    documented = {(path, method): op["responses"]["422"] for path, item in spec["paths"].items()
                  for method, op in item.items() if "422" in op.get("responses", {})}
    assert len(documented) > 20
    for where, response in documented.items():
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorEnvelope"}, where
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    sent = client.get("/v1/promise", params={"sku": "A1", "country": "USA"})
    assert sent.status_code == 422 and set(sent.json()) == {"error"}


def test_the_documented_checkout_example_places_an_order(served):
    client, _, shop = served()
    spec = client.get("/openapi.json").json()
    examples = spec["paths"]["/v1/checkouts"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert len(examples) >= 2
    r = client.post("/v1/checkouts", json=examples["one line"]["value"], headers={**shop, "Idempotency-Key": "ex"})
    assert r.status_code == 201, r.text
    for name in ("WarehouseIn", "SkuIn", "StockIn"):
        assert spec["components"]["schemas"][name]["examples"], name


def test_a_body_over_the_limit_is_a_413_whether_its_length_is_declared_or_not(served):
    client, _, shop = served(http_max_body_bytes=4096)
    headers = {**shop, "Idempotency-Key": "big", "content-type": "application/json"}
    r = client.post("/v1/checkouts", content=b" " * 5000, headers=headers)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

    def chunks():
        for _ in range(5):
            yield b" " * 1000

    r = client.post("/v1/checkouts", content=chunks(), headers=headers)
    assert r.status_code == 413 and "4096" in r.json()["error"]["message"]


def test_a_checkout_beyond_the_in_flight_limit_is_a_429_with_retry_after(served):
    from shopfloor.api.routes.checkout import _InFlight

    client, container, shop = served(checkout_max_in_flight=2)
    busy = container.services["checkout.in_flight"] = _InFlight()
    busy.n = 2  # two checkouts already in progress in this process
    body = {"lines": [{"sku": "A1", "qty": 1}], "ship_to": {"country": "US", "postal_code": "94107"},
            "payment": {"token": "tok_ok"}}
    r = client.post("/v1/checkouts", json=body, headers={**shop, "Idempotency-Key": "busy"})
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    assert r.json()["error"]["code"] == "too_many_requests"
    busy.n = 1
    r = client.post("/v1/checkouts", json=body, headers={**shop, "Idempotency-Key": "busy"})
    assert r.status_code == 201 and busy.n == 1  # the same key goes through once there is room
