"""Every field of every documented request body, replaced by a hostile value or left out, gets a 4xx in the error
envelope or is accepted, never a 500, on SQLite and PostgreSQL alike; and every query and path parameter of the
read operations the same. The bodies start from the OpenAPI document's own examples, so a new operation with an
example is covered without touching this file."""

from __future__ import annotations

import copy
import json
from typing import Any, Iterator
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from shopfloor.api.app import create_app
from tests.integration.test_openapi_examples import LIVE_PATHS, NOW, _container, examples_of, request_media
from tests.support.store import new_key, seed

#: What a careless or hostile client sends in place of a field's value.
HOSTILE_VALUES: list[Any] = [
    None, "", "x" * 5000, "a\u0000b", "\U0001f600", -1, 0, 1.5, 1e308, -1e308, 2**63, 2**64, True, [], {}, [1],
    {"a": 1}, "2026-13-45", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "../../etc/passwd", "' OR 1=1 --",
]
#: The same for query strings and path segments.
HOSTILE_STRINGS = ["", "x" * 5000, "\u0000", "-1", "0", "1e308", "nan", "inf", "9" * 40, "2026-13-45",
                   "9999-12-31T23:59:59Z", "0001-01-01", "../../etc/passwd", "' OR 1=1 --", "\U0001f600", "[]", "%"]

BODY_OPERATIONS = sorted({**LIVE_PATHS, ("post", "/v1/checkouts"): {}})


def _paths(obj: Any, at: tuple = ()) -> Iterator[tuple]:
    """Every place in a JSON document, the document itself first."""
    yield at
    children = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in children:
        yield from _paths(value, at + (key,))


def _replaced(doc: Any, at: tuple, value: Any = None, *, drop: bool = False) -> Any:
    if not at:
        return value
    out = copy.deepcopy(doc)
    parent = out
    for key in at[:-1]:
        parent = parent[key]
    if drop:
        del parent[at[-1]]
    else:
        parent[at[-1]] = value
    return out


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> dict[str, Any]:
    from shopfloor.store.migrate import upgrade_database

    db_url = f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'spec.db'}"
    upgrade_database(db_url)
    with TestClient(create_app(_container(db_url))) as client:
        return client.get("/openapi.json").json()


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
        for at in list(_paths(example)):
            bodies = [(repr(v)[:40], _replaced(example, at, v)) for v in HOSTILE_VALUES]
            if at:
                bodies.append(("<left out>", _replaced(example, at, drop=True)))
            for label, body in bodies:
                sent += 1
                extra = {"Idempotency-Key": f"hostile-{sent}"} if path == "/v1/checkouts" else {}
                r = client.request(method.upper(), url, content=json.dumps(body),
                                   headers={**headers, **extra, "Content-Type": "application/json"})
                refused += 400 <= r.status_code < 500
                fault = _faults(r)
                if fault:
                    faults.append(f"{'.'.join(map(str, at)) or '<body>'} = {label}: {fault}")
    assert faults == []
    assert sent >= len(HOSTILE_VALUES) and refused > 0  # the sweep ran, and the operation validates something


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
