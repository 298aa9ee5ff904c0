"""Bad input gets a 4xx in the error envelope naming the field, on SQLite and PostgreSQL alike, never a 500: NUL
characters (PostgreSQL's text cannot hold one), times outside what can be stored or what makes sense, bodies that
are not UTF-8 or nested too deeply; and an unexpected error is answered once, not cached, on a connection that
stays open."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import datetime, timedelta, timezone

import httpx
import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from shopfloor.api.app import create_app
from shopfloor.bootstrap import build_container
from shopfloor.config import Settings
from shopfloor.domain.clock import FixedClock
from shopfloor.store.tables import skus, warehouses
from tests.support.store import new_key, seed

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
NUL = "a\u0000b"
NUL_MESSAGE = "text may not contain the NUL character (\\u0000)"


def _container(db_url: str, **settings):
    container = build_container(Settings(database_url=db_url, **settings), clock=FixedClock(NOW))
    seed(container.engine, {"w1": ("us-west", "US", ["9"])}, {"A1": 1299}, {("A1", "w1"): 5}, now=NOW)
    return container


def _keys(container) -> dict[str, dict[str, str]]:
    return {scope: {"Authorization": f"Bearer {new_key(container.engine, scope)[1]}"}
            for scope in ("admin", "storefront", "ingest")}


@pytest.fixture
def api(db_url):
    container = _container(db_url)
    keys = _keys(container)
    app = create_app(container)
    with TestClient(app) as client:  # raise_server_exceptions: an exception reaching the server fails the test
        client.app_under_test, client.container, client.keys = app, container, keys
        yield client


def _event(**fields) -> dict:
    event = {"event_id": "e1", "order_id": "o1", "type": "picked", "at": "2026-11-27T10:00:00Z",
             "warehouse": "w1", "country": "US", "postal_code": "94107"}
    return {"events": [{**event, **fields}]}


def _po(**fields) -> dict:
    return {"sku": "A1", "warehouse": "w1", "qty": 1, "expected_at": "2027-01-15T09:00:00Z", **fields}


def _refused(r, field: str, code: str = "validation_error") -> dict:
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == code, error
    assert error["message"].startswith(f"{field}: "), error
    assert error["details"][0]["field"] == field, error
    return error


# --- NUL characters -------------------------------------------------------------------------------------------

NUL_BODIES = [
    ("PUT", "/v1/skus/N1", "admin", {"name": NUL, "category": "c", "price": 1, "currency": "USD"}, "name"),
    ("PUT", "/v1/warehouses/w9", "admin", {"region": NUL, "country": "US"}, "region"),
    ("PUT", "/v1/purchase-orders/p1", "admin", _po(supplier=NUL), "supplier"),
    ("PUT", "/v1/purchase-orders/p1", "admin", _po(sku=NUL), "sku"),
    ("PUT", "/v1/purchase-orders/p1", "admin", _po(warehouse=NUL), "warehouse"),
    ("POST", "/v1/fulfillment/events", "ingest", _event(warehouse=NUL), "events.0.warehouse"),
    ("POST", "/v1/fulfillment/events", "ingest", _event(postal_code=NUL), "events.0.postal_code"),
    ("POST", "/v1/promises", None, {"items": [{"sku": "A1", "country": "US"}, {"sku": NUL, "country": "US"}]},
     "items.1.sku"),
    ("POST", "/v1/events/storefront", "storefront", {"events": [{"type": "page_view", "session": NUL}]},
     "events.0.session"),
]


@pytest.mark.parametrize("method,path,scope,body,field", NUL_BODIES, ids=[f"{b[1]}:{b[4]}" for b in NUL_BODIES])
def test_a_nul_character_in_a_json_string_is_a_422_naming_the_field(api, method, path, scope, body, field):
    r = api.request(method, path, json=body, headers=api.keys[scope] if scope else {})
    error = _refused(r, field)
    assert error["message"] == f"{field}: {NUL_MESSAGE}"
    assert error["details"] == [{"field": field, "message": NUL_MESSAGE, "type": "nul_character"}]
    with api.container.engine.connect() as conn:  # nothing was stored
        assert conn.execute(sa.select(skus.c.sku).where(skus.c.sku == "N1")).first() is None
        assert conn.execute(sa.select(warehouses.c.id).where(warehouses.c.id == "w9")).first() is None


def test_a_nul_character_in_a_json_key_is_refused_but_an_escaped_backslash_before_u0000_is_text(api):
    r = api.put("/v1/skus/N1", headers=api.keys["admin"],
                json={"name": "Mug", "category": "c", "price": 1, "currency": "USD", "x\u0000": 1})
    _refused(r, "x\\u0000")
    # the JSON text "a\\u0000b" is a backslash followed by u0000: no NUL, nothing to refuse
    body = b'{"name": "a\\\\u0000b", "category": "c", "price": 1, "currency": "USD"}'
    r = api.put("/v1/skus/N1", content=body, headers={**api.keys["admin"], "Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "a\\u0000b"


@pytest.mark.parametrize("path,scope,field", [
    ("/v1/promise?sku=a%00b&country=US", None, "sku"),
    ("/v1/promise?sku=A1&country=US&note%00=1", None, "note\\u0000"),
    ("/v1/products?q=mug%00", None, "q"),
    ("/v1/promise?sku=a%2500b&country=US&q=%00", None, "q"),  # %25 is a percent sign: the NUL is q's
    ("/v1/skus/a%00b/alternatives", "storefront", "sku"),
])
def test_a_nul_character_in_a_query_or_path_parameter_is_a_422_naming_it(api, path, scope, field):
    r = api.get(path, headers=api.keys[scope] if scope else {})
    _refused(r, field)


def _chunked(app, path: str, chunks: list[bytes], headers: list[tuple[bytes, bytes]]):
    """Drive ``app`` with a body sent in ``chunks`` (no Content-Length); returns (status, JSON answer)."""
    queue = list(chunks)
    sent: list[dict] = []

    async def receive():
        if not queue:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": queue.pop(0), "more_body": bool(queue)}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "PUT", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"), (b"transfer-encoding", b"chunked"),
                         (b"content-type", b"application/json")] + headers,
             "client": ("127.0.0.1", 5000), "server": ("testserver", 80)}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], orjson.loads(b"".join(m.get("body", b"") for m in sent if m["type"] ==
                                                  "http.response.body"))


@pytest.mark.parametrize("split", [1, 3, 6])
def test_a_nul_escape_split_across_chunks_is_still_found(api, split):
    body = b'{"name": "Mug", "category": "kitchen \\u0000", "price": 1, "currency": "USD"}'
    at = body.index(b"\\u0000") + split
    auth = [(b"authorization", api.keys["admin"]["Authorization"].encode())]
    pieces = [body[:at - 2], body[at - 2:at], body[at:at + 1], body[at + 1:]]  # tiny chunks around the cut too
    status, answer = _chunked(api.app_under_test, "/v1/skus/N1", pieces, auth)
    assert status == 422 and answer["error"]["details"][0]["field"] == "category", answer
    # the same body without the escape goes through the same chunks to the route
    clean = body.replace(b"\\u0000", b"tea  ")
    status, answer = _chunked(api.app_under_test, "/v1/skus/N1", [clean[:at - 2], clean[at - 2:at], clean[at:]],
                              auth)
    assert status == 201 and answer["category"] == "kitchen tea  ", answer


# --- times ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("when", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"])
def test_a_time_outside_years_1_to_9999_once_in_utc_is_a_422_naming_the_field(api, when):
    _refused(api.put("/v1/purchase-orders/p1", json=_po(expected_at=when), headers=api.keys["admin"]),
             "expected_at")
    _refused(api.post("/v1/fulfillment/events", json=_event(at=when), headers=api.keys["ingest"]), "events.0.at")
    _refused(api.post("/v1/fulfillment/events", json=_event(placed_at=when), headers=api.keys["ingest"]),
             "events.0.placed_at")
    r = api.post("/v1/events/storefront", json={"events": [{"type": "page_view", "at": when.replace(":00+01", ":00+05")
                                                            .replace(":00-01", ":00-05")}]},
                 headers=api.keys["storefront"])
    assert "outside the times that can be stored" in _refused(r, "events.0.at")["message"]


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00Z", 0, "1970-01-01T00:00:00Z"])
@pytest.mark.parametrize("name", ["at", "placed_at"])
def test_fulfillment_events_from_long_ago_are_refused_naming_the_event(api, when, name):
    r = api.post("/v1/fulfillment/events", json=_event(**{name: when}), headers=api.keys["ingest"])
    error = _refused(r, f"events.0.{name}", code="invalid_input")
    assert "more than 365 days before the server's clock" in error["message"]


def test_how_far_back_fulfillment_events_may_go_is_a_setting(db_url):
    container = _container(db_url, fulfillment_max_age_days=30)
    keys = _keys(container)
    with TestClient(create_app(container)) as client:
        old = (NOW - timedelta(days=31)).isoformat()
        recent = (NOW - timedelta(days=29)).isoformat()
        r = client.post("/v1/fulfillment/events", json=_event(at=old), headers=keys["ingest"])
        assert "more than 30 days" in _refused(r, "events.0.at", code="invalid_input")["message"]
        r = client.post("/v1/fulfillment/events", json=_event(at=recent, placed_at=recent), headers=keys["ingest"])
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00Z", "1999-12-31T23:59:59Z", "2200-01-01T00:00:00Z",
                                  "2199-12-31T23:30:00-01:00"])
def test_a_purchase_order_expected_outside_years_2000_to_2199_is_refused(api, when):
    r = api.put("/v1/purchase-orders/p1", json=_po(expected_at=when), headers=api.keys["admin"])
    assert "years 2000 to 2199" in _refused(r, "expected_at")["message"]
    for fine in ("2000-01-01T00:00:00Z", "2199-12-31T23:59:59Z"):
        r = api.put("/v1/purchase-orders/p1", json=_po(expected_at=fine), headers=api.keys["admin"])
        assert r.status_code in (200, 201), r.text


def test_a_purchase_order_for_an_unknown_sku_names_the_field_sku(api):
    error = _refused(api.put("/v1/purchase-orders/x", json=_po(sku="NOPE"), headers=api.keys["admin"]), "sku",
                     code="unknown_sku")
    assert error["details"] == [{"field": "sku", "sku": "NOPE"}]
    _refused(api.put("/v1/purchase-orders/x", json=_po(warehouse="nope"), headers=api.keys["admin"]), "warehouse",
             code="invalid_input")


# --- bodies FastAPI cannot read ---------------------------------------------------------------------------------

@pytest.mark.parametrize("body,says", [
    (b'{"name": "\xff", "category": "c", "price": 1, "currency": "USD"}', "not valid UTF-8"),
    (b'{"name": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested too deeply"),
])
def test_a_body_that_is_not_utf8_or_is_nested_too_deeply_is_a_422_malformed_json(api, body, says):
    r = api.put("/v1/skus/N1", content=body, headers={**api.keys["admin"], "Content-Type": "application/json"})
    error = _refused(r, "body", code="malformed_json")
    assert says in error["message"]


# --- unexpected errors and /healthz -------------------------------------------------------------------------

def _add_failing_routes(app, engine) -> None:
    async def boom():
        raise RuntimeError("boom")

    def bad_statement():
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT secret FROM no_such_table WHERE token = :token"),
                         {"token": "tok_live_SECRET_1234"})

    app.add_api_route("/v1/test/boom", boom, methods=["GET"])
    app.add_api_route("/v1/test/bad-statement", bad_statement, methods=["GET"])


def _error_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_an_unexpected_error_is_a_500_envelope_not_cached_and_not_raised_again(api, caplog):
    _add_failing_routes(api.app_under_test, api.container.engine)
    with caplog.at_level(logging.ERROR):
        r = api.get("/v1/test/boom")  # the test client raises whatever reaches the server
    assert r.status_code == 500
    assert r.json() == {"error": {"code": "internal_error", "message": "internal error; it has been logged",
                                  "details": []}}
    assert r.headers["cache-control"] == "no-store"
    [record] = _error_records(caplog)
    assert record.getMessage() == "unhandled error on GET /v1/test/boom" and record.exc_info[0] is RuntimeError


def test_the_logged_error_leaves_the_statements_parameters_out(api, caplog):
    _add_failing_routes(api.app_under_test, api.container.engine)
    with caplog.at_level(logging.ERROR):
        assert api.get("/v1/test/bad-statement").status_code == 500
    assert "no_such_table" in caplog.text and "tok_live_SECRET_1234" not in caplog.text


def test_a_write_reaching_a_standby_is_still_a_503_read_only_region(api):
    class ReadOnly(Exception):
        sqlstate = "25006"

    async def standby():
        raise ReadOnly("cannot execute UPDATE in a read-only transaction")

    api.app_under_test.add_api_route("/v1/test/standby", standby, methods=["POST"])
    r = api.post("/v1/test/standby")
    assert r.status_code == 503 and r.json()["error"]["code"] == "read_only_region"
    assert r.headers["retry-after"] == "5" and r.headers["cache-control"] == "no-store"


def test_head_healthz_is_a_200_without_a_body(api):
    r = api.head("/healthz")
    assert r.status_code == 200 and r.content == b""
    assert api.get("/healthz").json() == {"status": "ok"}
    assert "head" not in api.get("/openapi.json").json()["paths"]["/healthz"]


def test_after_an_unexpected_error_the_server_logs_it_once_and_keeps_the_connection(tmp_path, caplog):
    """On the real server (uvicorn with the protocol ``shopfloor serve`` uses): the 500 used to be followed by a
    second traceback from the server and a dropped keep-alive connection."""
    import uvicorn

    from shopfloor.api.lean_http import PROTOCOL
    from shopfloor.runtime import free_port
    from shopfloor.store.migrate import upgrade_database

    url = f"sqlite:///{tmp_path / 'server.db'}"
    upgrade_database(url)
    container = _container(url)
    app = create_app(container)
    _add_failing_routes(app, container.engine)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=PROTOCOL, log_config=None,
                                           access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started
        with caplog.at_level(logging.ERROR), httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10,
                                                          limits=httpx.Limits(max_connections=1)) as client:
            failed = client.get("/v1/test/boom")
            assert failed.status_code == 500 and failed.json()["error"]["code"] == "internal_error"
            assert failed.headers["cache-control"] == "no-store"
            assert failed.headers.get("connection", "").lower() != "close"
            first = failed.extensions["network_stream"].get_extra_info("client_addr")
            head = client.head("/healthz")
            assert head.status_code == 200 and head.content == b""
            assert head.extensions["network_stream"].get_extra_info("client_addr") == first  # the same connection
        [record] = _error_records(caplog)
        assert record.getMessage() == "unhandled error on GET /v1/test/boom" and record.exc_info is not None
    finally:
        server.should_exit = True
        thread.join(timeout=30)
