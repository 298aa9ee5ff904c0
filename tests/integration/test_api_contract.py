"""The HTTP contract: auth, scopes, validation envelope, idempotency over HTTP, and schemathesis fuzzing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from shopfloor.api.app import create_app
from shopfloor.bootstrap import build_container
from shopfloor.config import Settings
from tests.support.store import new_key, seed

BODY = {"lines": [{"sku": "A1", "qty": 2}], "ship_to": {"country": "US", "postal_code": "94107"},
        "payment": {"token": "tok_ok"}}


@pytest.fixture
def api(db_url):
    container = build_container(Settings(database_url=db_url))
    seed(container.engine, {"w1": ("us-west", "US", ["9"])}, {"A1": 1299}, {("A1", "w1"): 5})
    _, admin = new_key(container.engine, "admin")
    _, shop = new_key(container.engine, "storefront")
    with TestClient(create_app(container)) as client:
        yield client, {"Authorization": f"Bearer {admin}"}, {"Authorization": f"Bearer {shop}"}


def test_missing_or_wrong_key_is_401_and_wrong_scope_is_403(api):
    client, admin, shop = api
    assert client.get("/v1/stock/A1").status_code == 401
    assert client.get("/v1/stock/A1", headers={"Authorization": "Bearer nope"}).json()["error"]["code"] == "unauthorized"
    r = client.put("/v1/skus/X", json={"name": "x", "category": "c", "price": 1, "currency": "USD"}, headers=shop)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


def test_checkout_then_order_lookup_and_replay(api):
    client, admin, shop = api
    r = client.post("/v1/checkouts", json=BODY, headers={**shop, "Idempotency-Key": "abc"})
    assert r.status_code == 201, r.text
    order_id = r.json()["order_id"]
    again = client.post("/v1/checkouts", json=BODY, headers={**shop, "Idempotency-Key": "abc"})
    assert again.status_code == 201 and again.json() == r.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = client.post("/v1/checkouts", json={**BODY, "lines": [{"sku": "A1", "qty": 1}]},
                        headers={**shop, "Idempotency-Key": "abc"})
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    got = client.get(f"/v1/orders/{order_id}", headers=shop).json()
    assert got["lines"] == [{"sku": "A1", "qty": 2, "warehouse": "w1", "unit_price": 1299}]
    stock = client.get("/v1/stock/A1", headers=admin).json()
    assert (stock["on_hand"], stock["reserved"], stock["available"]) == (5, 2, 3)


def test_out_of_stock_is_a_409_with_shortages(api):
    client, _, shop = api
    r = client.post("/v1/checkouts", json={**BODY, "lines": [{"sku": "A1", "qty": 6}]},
                    headers={**shop, "Idempotency-Key": "big"})
    assert r.status_code == 409
    assert r.json()["error"] == {"code": "out_of_stock", "message": "not enough stock for: A1",
                                 "details": [{"sku": "A1", "requested": 6, "available": 5}]}


@pytest.mark.parametrize(
    "body,field",
    [
        ({**BODY, "lines": [{"sku": "A1", "qty": -1}]}, "lines.0.qty"),
        ({**BODY, "lines": [{"sku": "A1", "qty": 10**9}]}, "lines.0.qty"),
        ({**BODY, "lines": [{"sku": "A1", "qty": True}]}, "lines.0.qty"),  # not read as 1
        ({**BODY, "lines": [{"sku": "A1", "qty": "2"}]}, "lines.0.qty"),  # a count is a JSON number
        ({**BODY, "lines": [{"sku": "A1", "qty": 1.5}]}, "lines.0.qty"),
        ({**BODY, "lines": []}, "lines"),
        ({**BODY, "ship_to": {"country": "USA", "postal_code": "1"}}, "ship_to.country"),
        ({**BODY, "lines": [{"sku": "A1", "qty": 1, "extra": 1}]}, "lines.0.extra"),
    ],
)
def test_bad_checkout_input_gets_the_envelope_naming_the_field(api, body, field):
    client, _, shop = api
    r = client.post("/v1/checkouts", json=body, headers={**shop, "Idempotency-Key": "v"})
    assert r.status_code == 422
    assert field in [d["field"] for d in r.json()["error"]["details"]]


def test_malformed_json_overlong_key_and_unknown_sku_are_4xx(api):
    client, _, shop = api
    r = client.post("/v1/checkouts", content=b'{"lines": [', headers={**shop, "Idempotency-Key": "m",
                                                                      "content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "malformed_json"
    r = client.post("/v1/checkouts", json=BODY, headers={**shop, "Idempotency-Key": "k" * 300})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "Idempotency-Key"
    r = client.post("/v1/checkouts", json=BODY, headers=shop)
    assert r.status_code == 422
    r = client.post("/v1/checkouts", json={**BODY, "lines": [{"sku": "ZZ", "qty": 1}]},
                    headers={**shop, "Idempotency-Key": "u"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "unknown_sku"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_header_sent_twice_is_refused_by_name_and_places_no_order(api, chunked):
    import json

    client, admin, shop = api
    payload = json.dumps(BODY).encode()
    content = (part for part in [payload]) if chunked else payload
    headers = [("Authorization", shop["Authorization"]), ("Content-Type", "application/json"),
               ("Idempotency-Key", "k1"), ("Idempotency-Key", "k2")]
    r = client.post("/v1/checkouts", content=content, headers=headers)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "Idempotency-Key", r.text
    content = (part for part in [payload]) if chunked else payload
    r = client.post("/v1/checkouts", content=content, headers=[
        ("Authorization", admin["Authorization"]), ("Authorization", shop["Authorization"]),
        ("Content-Type", "application/json"), ("Idempotency-Key", "k3")])
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "Authorization", r.text
    stock = client.get("/v1/stock/A1", headers=admin).json()
    assert stock["reserved"] == 0


def test_the_order_lookup_declares_its_key_in_the_openapi_document(api):
    client, _, _ = api
    op = client.get("/openapi.json").json()["paths"]["/v1/orders/{order_id}"]["get"]
    assert op.get("security"), op


def test_stock_cannot_be_set_below_what_is_reserved(api):
    client, admin, shop = api
    client.post("/v1/checkouts", json=BODY, headers={**shop, "Idempotency-Key": "r"})
    r = client.put("/v1/stock/A1/w1", json={"on_hand": 1}, headers=admin)
    assert r.status_code == 409 and r.json()["error"]["details"][0]["reserved"] == 2
    assert client.put("/v1/stock/A1/nowhere", json={"on_hand": 1}, headers=admin).status_code == 404


def test_healthz_and_openapi_are_served(api):
    client, _, _ = api
    assert client.get("/healthz").json() == {"status": "ok"}
    spec = client.get("/openapi.json").json()
    assert "/v1/checkouts" in spec["paths"]


def test_schemathesis_finds_no_server_errors(tmp_path):
    """Fuzz every operation of the OpenAPI schema (HTTP layer; the store guarantees run on both backends)."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    from shopfloor.store.migrate import upgrade_database

    db_url = f"sqlite:///{tmp_path / 'fuzz.db'}"
    upgrade_database(db_url)
    container = build_container(Settings(database_url=db_url))
    seed(container.engine, {"w1": ("us-west", "US", ["9"])}, {"A1": 1299}, {("A1", "w1"): 500})
    _, admin = new_key(container.engine, "admin", "storefront", "ingest")
    app = create_app(container)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures, calls = [], []

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    def run(case):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {admin}"}
        response = case.call(timeout=120)  # a cold plan fits its forecasts first; this test is about 5xx, not latency
        calls.append(case.path)
        if response.status_code >= 500:
            failures.append((case.method, case.path, response.status_code, response.text[:200]))

    for op in schema.get_all_operations():
        operation = op.ok()
        given(case=operation.as_strategy())(run)()
    assert failures == []
    assert len(set(calls)) >= 5  # every operation was really exercised


def test_a_json_body_without_a_content_type_gets_a_415_naming_the_missing_header(api):
    client, _, shop = api
    import json

    r = client.post("/v1/checkouts", content=json.dumps(BODY).encode(), headers={**shop, "Idempotency-Key": "n"})
    assert r.status_code == 415
    assert r.json()["error"]["details"] == [{"field": "Content-Type", "expected": "application/json", "got": "none"}]
    assert "Content-Type: application/json" in r.json()["error"]["message"]


def test_a_json_body_sent_as_a_form_gets_a_415_naming_the_content_type_header(api):
    client, admin, shop = api
    import json

    # what `curl -d '{...}'` sends when the Content-Type header is left out
    form = {"content-type": "application/x-www-form-urlencoded"}
    r = client.post("/v1/checkouts", content=json.dumps(BODY).encode(),
                    headers={**shop, **form, "Idempotency-Key": "f"})
    assert r.status_code == 415
    error = r.json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert "Content-Type: application/json" in error["message"]
    assert error["details"] == [{"field": "Content-Type", "expected": "application/json",
                                 "got": "application/x-www-form-urlencoded"}]
    r = client.put("/v1/stock/A1/w1", content=b'{"on_hand": 9}', headers={**admin, **form})
    assert r.status_code == 415 and r.json()["error"]["details"][0]["field"] == "Content-Type"
