"""Every operation in the OpenAPI document has examples: each JSON request body has one that the operation's schema
and its live validation accept, and each 2xx JSON answer has one ("examples on every endpoint")."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator, FormatChecker

from shopfloor.api.app import create_app
from shopfloor.bootstrap import build_container
from shopfloor.config import Settings
from shopfloor.domain.clock import FixedClock
from tests.support.store import new_key, seed

NOW = datetime(2026, 12, 1, 10, 15, tzinfo=timezone.utc)
JSON = "application/json"

#: 2xx JSON answers documented without an example, each with its reason. Only for answers where an example makes no
#: sense (HTML, plain text, CSV, metrics, redirects; none of those is a JSON answer in the document today).
NO_EXAMPLE_NEEDED: dict[tuple[str, str, str], str] = {}

#: Still to do, outside the files the examples live in; remove an entry once its example is added.
PENDING: dict[tuple[str, str, str], str] = {}

#: Path parameters for sending each operation's request examples to a live app (checkout has its own tests).
LIVE_PATHS: dict[tuple[str, str], dict[str, str]] = {
    ("post", "/v1/promises"): {},
    ("post", "/v1/events/storefront"): {},
    ("post", "/v1/webhook-endpoints"): {},
    ("post", "/v1/fulfillment/events"): {},
    ("put", "/v1/warehouses/{warehouse_id}"): {"warehouse_id": "us-west"},
    ("put", "/v1/skus/{sku}"): {"sku": "MUG-1"},
    ("put", "/v1/stock/{sku}/{warehouse_id}"): {"sku": "85123A", "warehouse_id": "gb-south"},
    ("put", "/v1/purchase-orders/{po_id}"): {"po_id": "PO-2026-0042"},
    ("put", "/v1/admin/processors/order"): {},
    ("put", "/v1/admin/processors/{name}/faults"): {"name": "primary"},
    ("put", "/v1/admin/rates/faults"): {},
    ("put", "/v1/integrations/shopify/{shop}"): {"shop": "acme.myshopify.com"},
    ("put", "/v1/integrations/shopify/{shop}/inventory-items/{inventory_item_id}"):
        {"shop": "acme.myshopify.com", "inventory_item_id": "44012345678901"},
}
TESTED_ELSEWHERE = {("post", "/v1/checkouts")}  # test_api_docs places an order with its example


def _container(db_url: str):
    # The webhook example's host is allowed so that creating the endpoint needs no DNS lookup.
    return build_container(Settings(database_url=db_url, webhook_allowed_hosts="erp.example.com"),
                           clock=FixedClock(NOW))


def load_spec(folder) -> dict[str, Any]:
    """The OpenAPI document of an app on a fresh SQLite store in ``folder``."""
    from shopfloor.store.migrate import upgrade_database

    db_url = f"sqlite:///{folder / 'spec.db'}"
    upgrade_database(db_url)
    with TestClient(create_app(_container(db_url))) as client:
        return client.get("/openapi.json").json()


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> dict[str, Any]:
    return load_spec(tmp_path_factory.mktemp("openapi"))


def operations(spec: dict[str, Any]):
    for path, item in spec["paths"].items():
        for method, op in item.items():
            yield method, path, op


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def examples_of(spec: dict[str, Any], media: dict[str, Any]) -> list[tuple[str, Any]]:
    """Every example a media type documents: ``example``, named ``examples``, and the schema's own ``examples``."""
    found = [("example", media["example"])] if "example" in media else []
    found += [(name, ex["value"]) for name, ex in media.get("examples", {}).items()]
    found += [(f"schema example {i}", ex)
              for i, ex in enumerate(resolve(spec, media.get("schema", {})).get("examples", []))]
    return found


def validator(spec: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for a schema of the document: its ``$ref``s resolve against the document's components."""
    return Draft202012Validator({**schema, "components": spec["components"]}, format_checker=FormatChecker())


def request_media(op: dict[str, Any]) -> dict[str, Any] | None:
    return op.get("requestBody", {}).get("content", {}).get(JSON)


def test_every_operation_with_a_json_request_body_documents_an_example(spec):
    lacking, bodies = [], 0
    for method, path, op in operations(spec):
        media = request_media(op)
        if media is None or (method, path, "request") in PENDING:
            continue
        bodies += 1
        if not examples_of(spec, media):
            lacking.append(f"{method.upper()} {path}")
    assert lacking == []
    assert bodies >= 13


def test_every_request_example_validates_against_the_request_schema_of_its_operation(spec):
    invalid, checked = [], 0
    for method, path, op in operations(spec):
        media = request_media(op)
        if media is None:
            continue
        check = validator(spec, media["schema"])
        for name, value in examples_of(spec, media):
            checked += 1
            invalid += [f"{method.upper()} {path} [{name}]: {e.message}" for e in check.iter_errors(value)]
    assert invalid == []
    assert checked >= 18


def success_responses(op: dict[str, Any]):
    for status, response in op.get("responses", {}).items():
        if status.startswith("2"):
            yield status, response


def test_every_2xx_json_answer_documents_an_example(spec):
    lacking, answers = [], 0
    for method, path, op in operations(spec):
        for status, response in success_responses(op):
            media = response.get("content", {}).get(JSON)
            key = (method, path, status)
            if media is None or key in NO_EXAMPLE_NEEDED or key in PENDING:
                continue
            answers += 1
            if not examples_of(spec, media):
                lacking.append(f"{method.upper()} {path} {status}")
    assert lacking == []
    assert answers >= 40


def allows_null(spec: dict[str, Any], schema: dict[str, Any]) -> bool:
    schema = resolve(spec, schema)
    types = schema.get("type", [])
    return "null" in (types if isinstance(types, list) else [types]) or any(
        allows_null(spec, s) for s in schema.get("anyOf", []) + schema.get("oneOf", []))


def stripped_null(spec: dict[str, Any], error) -> bool:
    """Whether a validation error is only a ``null`` FastAPI left out: it writes the document with
    ``jsonable_encoder(..., exclude_none=True)``, which drops every key whose example value is ``None``."""
    if error.validator != "required":
        return False
    missing = [name for name in error.validator_value if name not in error.instance]
    properties = error.schema.get("properties", {})
    return all(name in properties and allows_null(spec, properties[name]) for name in missing)


def test_every_2xx_answer_example_validates_against_the_answer_schema(spec):
    invalid, checked = [], 0
    for method, path, op in operations(spec):
        for status, response in success_responses(op):
            media = response.get("content", {}).get(JSON)
            if media is None:
                continue
            check = validator(spec, media.get("schema", {}))
            for name, value in examples_of(spec, media):
                checked += 1
                invalid += [f"{method.upper()} {path} {status} [{name}]: {e.message}"
                            for e in check.iter_errors(value) if not stripped_null(spec, e)]
    assert invalid == []
    assert checked >= 40


def test_every_operation_with_a_request_body_is_sent_its_examples_below(spec):
    with_body = {(method, path) for method, path, op in operations(spec) if request_media(op) is not None}
    assert with_body - TESTED_ELSEWHERE == set(LIVE_PATHS)


@pytest.fixture
def live(db_url):
    container = _container(db_url)
    seed(container.engine, {"gb-south": ("gb-south", "GB", ["E", "EC", "SW", "W"]),
                            "gb-north": ("gb-north", "GB", ["M", "LS", "B"])},
         {"85123A": 295, "22423": 1275, "SCARCE-001": 3499},
         {("85123A", "gb-south"): 120, ("22423", "gb-south"): 30, ("SCARCE-001", "gb-south"): 4,
          ("SCARCE-001", "gb-north"): 4}, now=NOW)
    _, admin = new_key(container.engine, "admin")
    _, shop = new_key(container.engine, "storefront")
    with TestClient(create_app(container)) as client:
        keys = {"admin": {"Authorization": f"Bearer {admin}"}, "storefront": {"Authorization": f"Bearer {shop}"}}
        r = client.put("/v1/integrations/shopify/acme.myshopify.com", headers=keys["admin"],
                       json={"secrets": ["shpss_4f8a1c2e9b7d6a5f3e2c1b0a"], "locations": {"71234567890": "gb-south"}})
        assert r.status_code == 201, r.text
        yield client, keys


@pytest.mark.parametrize("method,path", sorted(LIVE_PATHS), ids=[f"{m} {p}" for m, p in sorted(LIVE_PATHS)])
def test_each_documented_request_example_is_accepted_by_a_live_app_with_the_right_key(spec, live, method, path):
    client, keys = live
    op = spec["paths"][path][method]
    examples = examples_of(spec, request_media(op))
    if not examples and (method, path, "request") in PENDING:
        pytest.skip(PENDING[(method, path, "request")])
    assert examples
    scopes = [s for req in op.get("security", []) for s in req.get("apiKey", [])]
    headers = keys["admin"] if not scopes or "admin" in scopes else keys[scopes[0]]
    url = path.format(**LIVE_PATHS[(method, path)])
    for name, value in examples:
        r = client.request(method.upper(), url, json=value, headers=headers)
        assert r.status_code in (200, 201, 202, 404, 409), f"{name}: {r.status_code} {r.text}"
