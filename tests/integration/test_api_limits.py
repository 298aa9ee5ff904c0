"""Request-size limits (413 ``payload_too_large``, enforced while the body streams in) and order scoping by key."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from fastapi.testclient import TestClient

from shopfloor.api.app import create_app
from shopfloor.bootstrap import build_container
from shopfloor.config import Settings
from tests.support.store import new_key, seed

BODY = {"lines": [{"sku": "A1", "qty": 1}], "ship_to": {"country": "US", "postal_code": "94107"},
        "payment": {"token": "tok_ok"}}


@pytest.fixture
def api(db_url):
    container = build_container(Settings(database_url=db_url))
    seed(container.engine, {"w1": ("us-west", "US", ["9"])}, {"A1": 1299}, {("A1", "w1"): 5})
    _, admin = new_key(container.engine, "admin")
    _, shop = new_key(container.engine, "storefront")
    _, other_shop = new_key(container.engine, "storefront")
    app = create_app(container)
    with TestClient(app) as client:
        yield client, app, {"admin": admin, "shop": shop, "other": other_shop}


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- order lookup is scoped to the key that placed the order ------------------------------------------------


def test_a_storefront_key_reads_only_its_own_orders_and_admin_reads_all(api):
    client, _, keys = api
    r = client.post("/v1/checkouts", json=BODY, headers={**_auth(keys["shop"]), "Idempotency-Key": "scoped"})
    assert r.status_code == 201, r.text
    order_id = r.json()["order_id"]
    assert client.get(f"/v1/orders/{order_id}", headers=_auth(keys["shop"])).status_code == 200
    assert client.get(f"/v1/orders/{order_id}", headers=_auth(keys["admin"])).status_code == 200
    other = client.get(f"/v1/orders/{order_id}", headers=_auth(keys["other"]))
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"
    # indistinguishable from an order that does not exist
    missing = client.get("/v1/orders/ord_nope", headers=_auth(keys["other"]))
    assert missing.json()["error"]["details"][0]["field"] == other.json()["error"]["details"][0]["field"]


# --- body limits ----------------------------------------------------------------------------------------------


def test_an_oversized_checkout_body_is_a_413_in_the_error_envelope(api):
    client, _, keys = api
    big = {**BODY, "padding": "x" * (70 * 1024)}
    r = client.post("/v1/checkouts", content=orjson.dumps(big),
                    headers={**_auth(keys["shop"]), "Idempotency-Key": "big", "Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"
    assert r.json()["error"]["details"] == [{"field": "body", "max_bytes": 64 * 1024}]


def _stream(app, path: str, *, chunk: int = 4096, chunks: int = 256, headers: list | None = None):
    """Drive ``app`` with a chunked body (no Content-Length) of ``chunks`` x ``chunk`` bytes; returns (status,
    response body, how many chunks the app pulled)."""
    pulled = 0
    sent: list[dict] = []

    async def receive():
        nonlocal pulled
        if pulled >= chunks:
            return {"type": "http.disconnect"}
        pulled += 1
        return {"type": "http.request", "body": b"a" * chunk, "more_body": pulled < chunks}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"), (b"transfer-encoding", b"chunked")] + (headers or []),
             "client": ("127.0.0.1", 5000), "server": ("testserver", 80)}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body, pulled


def test_a_chunked_body_is_cut_off_as_soon_as_it_crosses_the_limit(api):
    _, app, keys = api
    status, body, pulled = _stream(app, "/v1/checkouts",
                                   headers=[(b"authorization", f"Bearer {keys['shop']}".encode()),
                                            (b"idempotency-key", b"stream"), (b"content-type", b"application/json")])
    assert status == 413 and orjson.loads(body)["error"]["code"] == "payload_too_large"
    assert pulled == 64 * 1024 // 4096 + 1  # never more than the limit plus the chunk that crossed it


def test_a_declared_length_over_the_limit_is_refused_before_reading(api):
    _, app, _ = api
    status, body, pulled = _stream(app, "/v1/checkouts", headers=[(b"content-length", b"10000000")])
    assert status == 413 and pulled == 0
    assert orjson.loads(body)["error"]["code"] == "payload_too_large"


def test_batch_ingestion_routes_take_larger_bodies(api):
    client, _, keys = api
    event = {"type": "page_view", "page_load_ms": 812.5, "sku": "A1", "session": "s" * 100}
    body = orjson.dumps({"events": [event] * 600})
    assert len(body) > 64 * 1024
    r = client.post("/v1/events/storefront", content=body,
                    headers={**_auth(keys["shop"]), "Content-Type": "application/json"})
    assert r.status_code == 202, r.text


def test_the_dashboard_login_stops_reading_a_form_past_4_kb(api):
    _, app, _ = api
    status, body, pulled = _stream(app, "/dashboard/login",
                                   headers=[(b"content-type", b"application/x-www-form-urlencoded")])
    assert status == 413 and b"too large" in body
    assert pulled == 2  # 4096 bytes fit; the next chunk crosses the limit


def test_an_anonymous_promise_batch_is_bounded(api):
    client, _, _ = api
    item = {"sku": "A1", "qty": 1, "country": "US", "postal_code": "94107"}
    r = client.post("/v1/promises", json={"items": [item] * 201})
    # refused by the request schema itself, before 201 items are validated and built
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "items"
    assert r.json()["error"]["details"][0]["type"] == "too_long"
    r = client.post("/v1/promises", json={"items": [item] * 1000})  # the old cap: now over the body limit too
    assert r.status_code in (413, 422)
    assert client.post("/v1/promises", json={"items": [item] * 50}).status_code == 200
