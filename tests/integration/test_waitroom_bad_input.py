"""Bad input at the waiting room's HTTP shortcuts: answered as the FastAPI routes (or uvicorn's parser) answer it,
in the error envelope, never a 200 for what the usual way refuses."""

from __future__ import annotations

import json
import socket
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from shopfloor.api.app import create_app
from shopfloor.bootstrap import build_container
from shopfloor.config import Settings
from shopfloor.domain.clock import FixedClock
from tests.integration.test_crowd_front import _DEFAULT_HEADERS, _asker, _raw
from tests.support.store import engine_for, new_key, seed

OPENS = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def shop(db_url):
    settings = Settings(database_url=db_url, waitroom_products={"HOT": {"opens_at": OPENS}, "GONE": {}},
                        waitroom_stock_cache_s=0)
    container = build_container(settings, clock=FixedClock(OPENS - timedelta(seconds=60)))
    seed(container.engine, {"w1": ("us-west", "US", ["9"])}, {"HOT": 999, "GONE": 999},
         {("HOT", "w1"): 2, ("GONE", "w1"): 0})
    _, key = new_key(container.engine, "storefront")
    with TestClient(create_app(container)) as client:
        auth = {"Authorization": f"Bearer {key}"}
        queued = _raw(auth, "HOT", "q1")
        token = json.loads(client.post("/v1/checkouts", content=queued.partition(b"\r\n\r\n")[2], headers={
            **auth, "Idempotency-Key": "q1", "Content-Type": "application/json"}).content)["error"]["details"][0][
            "queue_token"]
        yield client, auth, token


def _status(target: bytes, headers: bytes = b"Host: shop\r\n") -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\n" + headers + b"\r\n"


@pytest.mark.parametrize("digit", ["%D9%A1", "%EF%BC%91"])  # ARABIC-INDIC ONE, FULLWIDTH ONE
def test_a_non_ascii_digit_in_wait_is_refused_naming_wait_by_the_fast_paths_as_by_the_route(shop, digit):
    client, _, token = shop
    r = client.get(f"/v1/queue/{token}?wait={digit}")  # the ASGI fast path used to read it as 1 s
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "wait"
    status = client.app.front.status_shortcut
    assert status.answer(_status(f"/v1/queue/{token}?wait={digit}".encode()), "10.0.0.7", _DEFAULT_HEADERS,
                         lambda _answer: None) is None


@pytest.mark.parametrize("target", ["/v1/queue/{token}\n", "/v1/queue/{token}?wait=0\n", "/v1/queue/{token}?wait=0\t"])
def test_the_status_shortcut_leaves_a_control_character_in_the_request_line_to_the_parser(shop, target):
    client, _, token = shop
    status = client.app.front.status_shortcut
    assert status.answer(_status(target.format(token=token).encode()), "10.0.0.7", _DEFAULT_HEADERS,
                         lambda _answer: None) is None
    assert status.answered == 0


@pytest.mark.parametrize("header", [b"Host : shop", b"Host: shop\nX-Other: 1", b" Host: shop", b"Host: sh\rop"])
def test_the_shortcuts_leave_a_header_the_parser_refuses_to_the_parser(shop, header):
    client, auth, token = shop
    status = client.app.front.status_shortcut
    assert status.answer(_status(f"/v1/queue/{token}".encode(), header + b"\r\n"), "10.0.0.7", _DEFAULT_HEADERS,
                         lambda _answer: None) is None
    sold_out = client.app.front.shortcut
    assert sold_out.answer(_raw(auth, "GONE", "g1", extra=[header.decode("latin-1")]), "10.0.0.7",
                           _DEFAULT_HEADERS) is None
    assert status.answered == 0 and sold_out.answered == {}


def test_shopfloor_serve_answers_a_request_its_parser_refuses_in_the_error_envelope(db_url, tmp_path):
    from tests.support.server import ServerProcess

    engine = engine_for(db_url)
    seed(engine, {"w1": ("us-west", "US", ["9"])}, {"HOT": 999}, {("HOT", "w1"): 5})
    _, key = new_key(engine, "storefront")
    engine.dispose()
    opens = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    env = {"SHOPFLOOR_WAITROOM_PRODUCTS": json.dumps({"HOT": {"opens_at": opens}})}
    server = ServerProcess(db_url, env=env, log_path=tmp_path / "server.log").start()
    auth = {"Authorization": f"Bearer {key}"}
    try:
        with socket.create_connection((server.host, server.port), timeout=10) as conn:
            queued = _asker(conn)(_raw(auth, "HOT", "q1"))
        token = json.loads(queued[2])["error"]["details"][0]["queue_token"].encode()
        for request in (_status(b"/v1/queue/\xc3\xa9.\xff"),  # raw non-ASCII bytes in the path
                        _status(b"/v1/queue/" + token + b"?wait=\xff"),
                        _status(b"/v1/queue/" + token + b"\n"),  # a bare LF after a valid token
                        _status(b"/v1/queue/" + token, b"Host : shop\r\n"),  # space before the colon
                        _raw(auth, "HOT", "q2", extra=["Queue-Token : " + token.decode()])):
            with socket.create_connection((server.host, server.port), timeout=10) as conn:
                status, headers, body = _asker(conn)(request)
            assert status == 400, request
            assert headers["content-type"] == "application/json" and headers["connection"] == "close"
            error = json.loads(body)["error"]
            assert error["code"] == "bad_request" and error["details"] == [{"field": "request"}]
    finally:
        server.stop()
    assert "Traceback" not in (tmp_path / "server.log").read_text()
