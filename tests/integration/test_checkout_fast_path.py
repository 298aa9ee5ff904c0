"""The checkout's fast path ahead of the FastAPI router: it serves well-formed checkouts itself, and every other
request reaches the FastAPI route, which answers with the usual validation envelope."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from shopfloor.api import fast_checkout
from shopfloor.api.app import create_app
from shopfloor.api.routes import checkout as checkout_route
from shopfloor.bootstrap import build_container
from shopfloor.config import Settings
from tests.support.store import new_key, seed

BODY = {"lines": [{"sku": "A1", "qty": 2}], "ship_to": {"country": "US", "postal_code": "94107"},
        "payment": {"token": "tok_ok"}}


@pytest.fixture
def api(db_url, monkeypatch):
    entries = []
    real = checkout_route.run_checkout

    async def counting(body, key, key_id, c, *, _entry="fast", **kwargs):
        entries.append(_entry)
        return await real(body, key, key_id, c, **kwargs)

    # Both entries call run_checkout; only the fast path looks it up in its own module.
    monkeypatch.setattr(fast_checkout, "run_checkout", counting)
    container = build_container(Settings(database_url=db_url))
    seed(container.engine, {"w1": ("us-west", "US", ["9"])}, {"A1": 1299}, {("A1", "w1"): 50})
    _, shop = new_key(container.engine, "storefront")
    _, admin = new_key(container.engine, "admin")
    with TestClient(create_app(container)) as client:
        yield client, {"Authorization": f"Bearer {shop}"}, {"Authorization": f"Bearer {admin}"}, entries


def test_a_well_formed_checkout_is_served_by_the_fast_path(api):
    client, shop, _, entries = api
    r = client.post("/v1/checkouts", json=BODY, headers={**shop, "Idempotency-Key": "fast-1"})
    assert r.status_code == 201, r.text
    assert entries == ["fast"]
    again = client.post("/v1/checkouts", json=BODY, headers={**shop, "Idempotency-Key": "fast-1"})
    assert again.json() == r.json() and again.headers["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize("change, status, code, field", [
    ({"body": {**BODY, "lines": [{"sku": "A1", "qty": 0}]}}, 422, "validation_error", "lines.0.qty"),
    ({"body": {**BODY, "extra": 1}}, 422, "validation_error", "extra"),
    ({"key": None}, 422, "validation_error", "Idempotency-Key"),
    ({"key": "has space"}, 422, "validation_error", "Idempotency-Key"),
    ({"raw": b"{not json", "ctype": "application/json"}, 422, "malformed_json", "body"),
    ({"raw": b"lines=1", "ctype": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type",
     "Content-Type"),
])
def test_a_malformed_checkout_gets_the_routes_error_envelope_naming_the_field(api, change, status, code, field):
    client, shop, _, entries = api
    headers = dict(shop)
    if change.get("key", "k-1") is not None:
        headers["Idempotency-Key"] = change.get("key", "k-1")
    if "raw" in change:
        r = client.post("/v1/checkouts", content=change["raw"], headers={**headers, "Content-Type": change["ctype"]})
    else:
        r = client.post("/v1/checkouts", json=change["body"] if "body" in change else BODY, headers=headers)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["details"][0]["field"] == field
    assert entries == []  # the fast path passed it on


def test_a_missing_or_wrong_key_is_refused_as_before(api):
    client, _, admin, entries = api
    assert client.post("/v1/checkouts", json=BODY, headers={"Idempotency-Key": "x"}).status_code == 401
    r = client.post("/v1/checkouts", json=BODY, headers={**admin, "Idempotency-Key": "x"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert entries == []


def test_the_checkout_keeps_its_openapi_entry(api):
    client, *_ = api
    op = client.get("/openapi.json").json()["paths"]["/v1/checkouts"]["post"]
    assert "201" in op["responses"] and "422" in op["responses"]
