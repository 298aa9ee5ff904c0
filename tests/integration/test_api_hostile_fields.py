"""Every field of every documented request body, replaced by a hostile value or left out, gets a 4xx in the error
envelope or is accepted, never a 500, on SQLite and PostgreSQL alike; and every query and path parameter of the
read operations the same. The bodies start from the OpenAPI document's own examples, so a new operation with an
example is covered without touching this file."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from shopfloor.api.app import create_app
from tests.integration.test_openapi_examples import (
    LIVE_PATHS, NOW, _container, examples_of, load_spec, request_media)
from tests.support.hostile import places, variants
from tests.support.store import new_key, seed

#: Hostile query strings and path segments.
HOSTILE_STRINGS = ["", "x" * 5000, "\u0000", "-1", "0", "1e308", "nan", "inf", "9" * 40, "2026-13-45",
                   "9999-12-31T23:59:59Z", "0001-01-01", "../../etc/passwd", "' OR 1=1 --", "\U0001f600", "[]", "%"]

BODY_OPERATIONS = sorted({**LIVE_PATHS, ("post", "/v1/checkouts"): {}})


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> dict[str, Any]:
    return load_spec(tmp_path_factory.mktemp("hostile"))


@pytest.fixture
def live(db_url):
    container = _container(db_url)
    seed(container.engine, {"gb-south": ("gb-south", "GB", ["E", "EC", "SW", "W"])},
         {"85123A": 295, "22423": 1275}, {("85123A", "gb-south"): 10_000, ("22423", "gb-south"): 30}, now=NOW)
    keys = {scope: {"Authorization": f"Bearer {new_key(container.engine, scope)[1]}"}
            for scope in ("admin", "storefront", "ingest")}
    # raise_server_exceptions off: an unexpected error must show as the 500 the client would get
    with TestClient(create_app(container), raise_server_exceptions=False) as client:
        r = client.put("/v1/integrations/shopify/acme.myshopify.com", headers=keys["admin"],
                       json={"secrets": ["shpss_4f8a1c2e9b7d6a5f3e2c1b0a"], "locations": {"71234567890": "gb-south"}})
        assert r.status_code == 201, r.text
        yield client, keys


def _headers(op: dict[str, Any], keys: dict[str, dict[str, str]]) -> dict[str, str]:
    scopes = [s for req in op.get("security", []) for s in req.get("apiKey", [])]
    return dict(keys["admin"] if not scopes or "admin" in scopes else keys[scopes[0]])


def _faults(r) -> str | None:
    """Why an answer breaks the contract: a 5xx, or a 4xx outside the error envelope."""
    if r.status_code >= 500:
        return f"{r.status_code} {r.text[:160]}"
    if 400 <= r.status_code < 500 and r.headers.get("content-type", "").startswith("application/json"):
        body = r.json()
        if not (isinstance(body, dict) and isinstance(body.get("error"), dict) and "code" in body["error"]):
            return f"{r.status_code} outside the error envelope: {r.text[:160]}"
    return None


@pytest.mark.parametrize("method,path", BODY_OPERATIONS, ids=[f"{m} {p}" for m, p in BODY_OPERATIONS])
def test_a_hostile_or_missing_field_in_any_request_body_is_refused_or_accepted_never_a_500(spec, live, method,
                                                                                          path):
    client, keys = live
    op = spec["paths"][path][method]
    headers = _headers(op, keys)
    url = path.format(**LIVE_PATHS.get((method, path), {}))
    faults, sent, refused = [], 0, 0
    for _, example in examples_of(spec, request_media(op)):
        for at in list(places(example)):
            for label, body in variants(example, at):
                sent += 1
                extra = {"Idempotency-Key": f"hostile-{sent}"} if path == "/v1/checkouts" else {}
                r = client.request(method.upper(), url, content=json.dumps(body),
                                   headers={**headers, **extra, "Content-Type": "application/json"})
                refused += 400 <= r.status_code < 500
                fault = _faults(r)
                if fault:
                    faults.append(f"{'.'.join(map(str, at)) or '<body>'} = {label}: {fault}")
    assert faults == []
    assert sent >= 20 and refused > 0  # the sweep ran, and the operation validates something


def test_a_hostile_query_or_path_parameter_of_any_read_operation_is_refused_or_answered_never_a_500(spec, live):
    client, keys = live
    faults, sent = [], 0
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method not in ("get", "delete"):
                continue
            params = op.get("parameters", [])
            in_path = {p["name"]: "85123A" for p in params if p["in"] == "path"}
            targets = [("path", n) for n in in_path] + [("query", p["name"]) for p in params if p["in"] == "query"]
            for where, name in targets:
                for value in HOSTILE_STRINGS:
                    segments = {**in_path, name: value} if where == "path" else in_path
                    url = path
                    for key, seg in segments.items():
                        url = url.replace("{" + key + "}", quote(seg, safe=""))
                    sent += 1
                    r = client.request(method.upper(), url, headers=_headers(op, keys),
                                       params={name: value} if where == "query" else None)
                    fault = _faults(r)
                    if fault:
                        faults.append(f"{method.upper()} {path} {where} {name} = {value[:20]!r}: {fault}")
    assert faults == []
    assert sent > 300
