"""The crowd's two routes answered ahead of the FastAPI stack: same answers, same envelope, same refusals."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from fastapi.testclient import TestClient

from shopfloor.api.app import create_app
from shopfloor.bootstrap import build_container
from shopfloor.config import Settings
from shopfloor.domain.clock import FixedClock
from tests.support.store import new_key, seed

OPENS = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


def _body(sku: str) -> dict:
    return {"lines": [{"sku": sku, "qty": 1}], "ship_to": {"country": "US", "postal_code": "94107"},
            "payment": {"token": "tok_ok"}}


@pytest.fixture
def shop(db_url):
    clock = FixedClock(OPENS - timedelta(seconds=60))
    settings = Settings(database_url=db_url, waitroom_products={"HOT": {"opens_at": OPENS}, "GONE": {}},
                        waitroom_stock_cache_s=0, http_max_body_bytes=4096,
                        ratelimit_reads_per_address={"rate_per_s": 0.001, "burst": 3})
    container = build_container(settings, clock=clock)
    seed(container.engine, {"w1": ("us-west", "US", ["9"])}, {"HOT": 999, "GONE": 999, "A1": 1299},
         {("HOT", "w1"): 2, ("GONE", "w1"): 0, ("A1", "w1"): 50})
    _, key = new_key(container.engine, "storefront")
    app = create_app(container)
    handed_on: list[str] = []
    stack = app.front.stack

    async def counting_stack(scope, receive, send):
        handed_on.append(f"{scope['method']} {scope['path']}")
        await stack(scope, receive, send)

    app.front.stack = counting_stack
    with TestClient(app) as client:
        yield client, {"Authorization": f"Bearer {key}"}, clock, handed_on


def _checkout(client, auth, sku, idem, token=None, **kw):
    headers = {**auth, "Idempotency-Key": idem, **kw.pop("headers", {})}
    if token is not None:
        headers["Queue-Token"] = token
    return client.post("/v1/checkouts", json=_body(sku), headers=headers, **kw)


def test_queued_and_sold_out_checkouts_and_queue_polls_never_reach_the_fastapi_stack(shop):
    client, auth, _, handed_on = shop
    queued = _checkout(client, auth, "HOT", "q1")
    assert queued.status_code == 429 and queued.json()["error"]["code"] == "queued"
    assert set(queued.json()["error"]["details"][0]) == {"queue_token", "position", "eta_s"}
    assert queued.headers["Cache-Control"] == "no-store" and int(queued.headers["Retry-After"]) >= 1
    token = queued.json()["error"]["details"][0]["queue_token"]
    poll = client.get(f"/v1/queue/{token}")
    assert poll.status_code == 200 and poll.json() == {"state": "waiting", "position": 1, "eta_s": 60.0}
    assert poll.headers["Cache-Control"] == "no-store"
    gone = _checkout(client, auth, "GONE", "g1")
    assert gone.status_code == 409
    assert gone.json() == {"error": {"code": "sold_out", "message": "GONE is sold out",
                                     "details": [{"sku": "GONE", "available": 0}]}}
    bought = _checkout(client, auth, "A1", "a1")
    assert bought.status_code == 201, bought.text
    assert handed_on == []
    metrics = client.get("/metrics").text
    assert handed_on == ["GET /metrics"]
    assert 'shopfloor_http_requests_total{method="POST",route="/v1/checkouts",status="409"} 1.0' in metrics
    assert 'shopfloor_http_requests_total{method="GET",route="/v1/queue/{token}",status="200"} 1.0' in metrics


def test_a_forged_or_expired_token_is_refused_by_the_front_in_the_envelope(shop):
    client, auth, clock, handed_on = shop
    token = _checkout(client, auth, "HOT", "x").json()["error"]["details"][0]["queue_token"]
    head, sig = token.split(".")
    forged = head + "." + ("A" if sig[0] != "A" else "B") + sig[1:]
    r = _checkout(client, auth, "HOT", "x", forged)
    assert r.status_code == 403 and r.json()["error"] == {
        "code": "queue_token_invalid", "message": "Queue-Token: not a queue token issued by this store",
        "details": [{"field": "Queue-Token"}]}
    poll = client.get(f"/v1/queue/{forged}")
    assert poll.status_code == 403 and poll.json()["error"]["code"] == "queue_token_invalid"
    clock.advance(seconds=901)
    assert client.get(f"/v1/queue/{token}").json()["state"] == "expired"
    late = _checkout(client, auth, "HOT", "x", token)
    assert late.status_code == 403 and late.json()["error"]["code"] == "queue_token_expired"
    assert handed_on == []


def test_what_the_front_does_not_serve_goes_to_the_route_and_its_answers(shop):
    client, auth, _, handed_on = shop
    bad = client.post("/v1/checkouts", json={"lines": []}, headers={**auth, "Idempotency-Key": "b1"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"
    no_key = client.post("/v1/checkouts", json=_body("HOT"), headers={"Idempotency-Key": "b2"})
    assert no_key.status_code == 401 and no_key.json()["error"]["code"] == "unauthorized"
    big = client.post("/v1/checkouts", content=b"{" + b" " * 5000 + b"}",
                      headers={**auth, "Idempotency-Key": "b3", "Content-Type": "application/json"})
    assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
    not_a_token = client.get("/v1/queue/not-a-token")
    assert not_a_token.status_code == 422 and not_a_token.json()["error"]["details"][0]["field"] == "token"
    assert handed_on == ["POST /v1/checkouts", "POST /v1/checkouts", "POST /v1/checkouts",
                         "GET /v1/queue/not-a-token"]
    for r in (bad, no_key, big, not_a_token):
        assert r.headers["Cache-Control"] == "no-store"


def test_the_open_read_limit_refuses_queue_polls_at_the_front(shop):
    client, auth, _, handed_on = shop
    token = _checkout(client, auth, "HOT", "x").json()["error"]["details"][0]["queue_token"]
    codes = [client.get(f"/v1/queue/{token}").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = client.get(f"/v1/queue/{token}")
    assert refused.json()["error"]["code"] == "too_many_requests"
    assert refused.json()["error"]["details"][0]["limit"] == "reads_per_address"
    assert int(refused.headers["Retry-After"]) >= 1 and handed_on == []


def test_the_queue_status_keeps_its_openapi_entry(shop):
    client, *_ = shop
    paths = client.get("/openapi.json").json()["paths"]
    assert "get" in paths["/v1/queue/{token}"] and "post" in paths["/v1/checkouts"]


def _count_entries(lane) -> list:
    """A list that grows by one for each request task that enters ``lane``."""
    entered: list = []
    real_enter = lane.enter

    async def counting_enter():
        entered.append(1)
        await real_enter()

    lane.enter = counting_enter
    return entered


def test_with_the_arrival_lane_on_new_arrivals_pass_it_and_get_the_same_answers(db_url):
    from shopfloor.api.crowd_front import ArrivalLane

    clock = FixedClock(OPENS - timedelta(seconds=60))
    settings = Settings(database_url=db_url, waitroom_products={"HOT": {"opens_at": OPENS}, "GONE": {}},
                        waitroom_stock_cache_s=0, waitroom_arrival_lane_per_turn=1)
    container = build_container(settings, clock=clock)
    seed(container.engine, {"w1": ("us-west", "US", ["9"])}, {"HOT": 999, "GONE": 999, "A1": 1299},
         {("HOT", "w1"): 2, ("GONE", "w1"): 0, ("A1", "w1"): 50})
    _, key = new_key(container.engine, "storefront")
    app = create_app(container)
    lane = app.front.checkout.arrivals
    assert isinstance(lane, ArrivalLane) and lane.per_turn == 1
    entered = _count_entries(lane)
    auth = {"Authorization": f"Bearer {key}"}
    with TestClient(app) as client:
        queued = _checkout(client, auth, "HOT", "q1")
        gone = _checkout(client, auth, "GONE", "g1")
        ordinary = _checkout(client, auth, "A1", "o1")
        with_token = _checkout(client, auth, "HOT", "q1", token=queued.json()["error"]["details"][0]["queue_token"])
    assert (queued.status_code, queued.json()["error"]["code"]) == (429, "queued")
    assert (gone.status_code, gone.json()["error"]["code"]) == (409, "sold_out")
    assert ordinary.status_code == 201 and with_token.status_code == 429
    assert len(entered) == 2  # the two arrivals at guarded products; not the ordinary one, not the token holder


def test_the_arrival_lane_lets_eight_arrivals_on_per_turn_by_default_and_can_be_turned_off(shop, db_url):
    client, *_ = shop
    assert client.app.front.checkout.arrivals.per_turn == 8
    assert client.app.front.arrivals is client.app.front.checkout.arrivals  # the HTTP protocol's line is the same
    off = create_app(build_container(Settings(database_url=db_url, waitroom_products={"HOT": {}},
                                              waitroom_arrival_lane_per_turn=0)))
    assert off.front.checkout.arrivals is None and off.front.arrivals is None


# --- the sold-out shortcut: answered from the request's bytes (shopfloor serve's HTTP protocol) ----------------

_DEFAULT_HEADERS = [(b"date", b"Fri, 04 Dec 2026 03:00:00 GMT"), (b"server", b"uvicorn")]


def _raw(auth: dict, sku: str, idem: str, *, extra: list[str] | None = None, body: bytes | None = None,
         length: int | None = None) -> bytes:
    import json

    payload = body if body is not None else json.dumps(_body(sku)).encode()
    head = ["POST /v1/checkouts HTTP/1.1", "Host: shop", f"Authorization: {auth['Authorization']}",
            f"Idempotency-Key: {idem}", "Content-Type: application/json",
            f"Content-Length: {len(payload) if length is None else length}", *(extra or [])]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


def _parse(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def _asker(conn):
    """A function that sends one raw request on ``conn`` and reads its answer: (status, headers, body)."""
    reader = conn.makefile("rb")

    def ask(data: bytes) -> tuple[int, dict[str, str], bytes]:
        conn.sendall(data)
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += reader.readline()
        status, headers, _ = _parse(head)
        return status, headers, reader.read(int(headers["content-length"]))

    return ask


def test_a_sold_out_arrival_gets_from_the_shortcut_what_the_gate_answers(shop):
    import json

    client, auth, _, _ = shop
    shortcut = client.app.front.shortcut
    answer = shortcut.answer(_raw(auth, "GONE", "s1"), "10.0.0.7", _DEFAULT_HEADERS)
    assert answer is not None and shortcut.answered == {"GONE": 1}
    status, headers, body = _parse(answer)
    usual = _checkout(client, auth, "GONE", "s2")  # the same request the usual way (the gate's answer)
    assert status == usual.status_code == 409
    assert json.loads(body) == usual.json() == {"error": {"code": "sold_out", "message": "GONE is sold out",
                                                          "details": [{"sku": "GONE", "available": 0}]}}
    assert headers["content-type"] == usual.headers["content-type"] == "application/json"
    assert headers["cache-control"] == usual.headers["cache-control"] == "no-store"
    assert int(headers["content-length"]) == len(body)
    assert headers["date"] == "Fri, 04 Dec 2026 03:00:00 GMT" and headers["server"] == "uvicorn"
    metrics = client.get("/metrics").text  # counted like the gate's answer
    assert 'shopfloor_waitroom_decisions_total{outcome="sold_out",sku="GONE"} 2.0' in metrics


def test_the_protocol_sends_a_new_arrival_at_a_guarded_product_to_the_arrival_line_and_nothing_else(shop):
    import json

    client, auth, _, _ = shop
    shortcut = client.app.front.shortcut
    assert shortcut.is_arrival(_raw(auth, "HOT", "a1")) and shortcut.is_arrival(_raw(auth, "GONE", "a2"))
    # a place coming back, another product, a status request, half a request: served as they arrive
    assert not shortcut.is_arrival(_raw(auth, "HOT", "a3", extra=["Queue-Token: x.y"]))
    assert not shortcut.is_arrival(_raw(auth, "HOT", "a4", extra=["queue-TOKEN: x.y"]))
    assert not shortcut.is_arrival(_raw(auth, "A1", "a5"))
    assert not shortcut.is_arrival(b"GET /v1/queue/x.y HTTP/1.1\r\nHost: shop\r\n\r\n")
    assert not shortcut.is_arrival(_raw(auth, "HOT", "a6").split(b"\r\n\r\n")[0])
    body = json.dumps({**_body("A1"), "note": "HOT"}).encode()  # the SKU as a JSON string, not any substring
    assert shortcut.is_arrival(_raw(auth, "A1", "a7", body=body)) is True  # a wrong guess only moves it in line
    assert not shortcut.is_arrival(_raw(auth, "A1", "a8", body=body.replace(b'"HOT"', b'"HOTTER"')))


def test_a_request_that_waited_in_the_protocols_line_does_not_wait_in_it_again(db_url):
    from shopfloor.api.fast_checkout import LINE_PASSED

    clock = FixedClock(OPENS + timedelta(seconds=1))  # the sale is open: an arrival is admitted, the usual way
    settings = Settings(database_url=db_url, waitroom_products={"HOT": {"opens_at": OPENS}},
                        waitroom_stock_cache_s=0, waitroom_arrival_lane_per_turn=1)
    container = build_container(settings, clock=clock)
    seed(container.engine, {"w1": ("us-west", "US", ["9"])}, {"HOT": 999}, {("HOT", "w1"): 5})
    _, key = new_key(container.engine, "storefront")
    app = create_app(container)
    entered = _count_entries(app.front.checkout.arrivals)
    auth = {"Authorization": f"Bearer {key}"}
    seen = []

    async def marked(scope, receive, send):  # as the protocol marks a request it let on from its line
        if scope["type"] == "http" and scope["path"] == "/v1/checkouts" and len(seen) == 1:
            scope[LINE_PASSED] = True
        if scope["type"] == "http":
            seen.append(scope["path"])
        await app(scope, receive, send)

    with TestClient(marked) as client:  # the app's lifespan goes through the wrapper
        first = _checkout(client, auth, "HOT", "p1")  # not marked: waits in the task's line
        second = _checkout(client, auth, "HOT", "p2")  # marked: goes on at once
    assert first.status_code == 201 and second.status_code == 201
    assert len(entered) == 1  # only the unmarked arrival entered the line


def test_the_shortcut_leaves_what_it_is_not_sure_of_to_the_usual_way(shop):
    client, auth, _, _ = shop
    shortcut = client.app.front.shortcut
    shortcut.answers_queued = False  # (the queued answers: see the tests below)
    full = _raw(auth, "GONE", "n1")
    not_for_it = {
        "a product with units left (queued answers off)": _raw(auth, "HOT", "n2"),
        "a product without a waiting room": _raw(auth, "A1", "n3"),
        "a forged queue token": _raw(auth, "GONE", "n4", extra=["Queue-Token: abc.def"]),
        "two queue tokens": _raw(auth, "GONE", "n4b", extra=["Queue-Token: abc.def", "Queue-Token: abc.def"]),
        "a refused key": _raw({"Authorization": "Bearer nope"}, "GONE", "n5"),
        "a body the route refuses": _raw(auth, "GONE", "n6", body=b'{"lines": []}'),
        "part of the body": full[:-5],
        "a second request behind it": full + full,
        "a declared length that is not the body's": _raw(auth, "GONE", "n7", length=3),
        "Connection: close": _raw(auth, "GONE", "n8", extra=["Connection: close"]),
        "Expect: 100-continue": _raw(auth, "GONE", "n9", extra=["Expect: 100-continue"]),
        "another route": full.replace(b"POST /v1/checkouts ", b"POST /v1/checkoutsx ", 1),
        "HTTP/1.0": full.replace(b" HTTP/1.1\r\n", b" HTTP/1.0\r\n", 1),
    }
    for what, data in not_for_it.items():
        assert shortcut.answer(data, "10.0.0.7", _DEFAULT_HEADERS) is None, what
    assert shortcut.answered == {}


def test_the_shortcut_sees_the_client_address_the_proxy_headers_give_and_the_bot_watch_counts_it(db_url):
    from shopfloor.api.app import served_app_from_env  # noqa: F401 - the serve factory wires the trust
    from shopfloor.api.proxy import FastProxyHeaders

    settings = Settings(database_url=db_url, waitroom_products={"GONE": {}}, waitroom_stock_cache_s=0,
                        bot_card_addresses=3)
    container = build_container(settings)
    seed(container.engine, {"w1": ("us-west", "US", ["9"])}, {"GONE": 999}, {("GONE", "w1"): 0})
    _, key = new_key(container.engine, "storefront")
    app = create_app(container)
    app.front.shortcut.trusted_hosts = FastProxyHeaders(app, trusted_hosts="127.0.0.1").trusted_hosts
    seen: list[str | None] = []
    note = container.services["bot_alerts"].note
    container.services["bot_alerts"].note = lambda address, *a: (seen.append(address), note(address, *a))[1]
    auth = {"Authorization": f"Bearer {key}"}

    async def scene():  # the shortcut runs in the server's protocol callbacks, on its event loop
        for i, (peer, forwarded) in enumerate([("127.0.0.1", "203.0.113.9"), ("198.51.100.4", "203.0.113.9"),
                                               ("127.0.0.1", None)]):
            extra = [f"X-Forwarded-For: {forwarded}"] if forwarded else []
            assert app.front.shortcut.answer(_raw(auth, "GONE", f"p{i}", extra=extra), peer, _DEFAULT_HEADERS)
        for _ in range(100):  # the alert row is written off the loop
            await asyncio.sleep(0.02)
            if container.services["tower.repository"].list_alerts():
                break

    asyncio.run(scene())
    # a trusted proxy's X-Forwarded-For is the client; an untrusted peer's header is ignored
    assert seen == ["203.0.113.9", "198.51.100.4", "127.0.0.1"]
    # one card from 3 addresses: the bot watch raised its alert from the shortcut's answers
    alerts = container.services["tower.repository"].list_alerts()
    assert [a["kind"] for a in alerts] == ["bot_pattern"]


def test_the_shortcut_can_be_turned_off(db_url):
    settings = Settings(database_url=db_url, waitroom_products={"GONE": {}}, waitroom_sold_out_shortcut=False)
    shortcut = create_app(build_container(settings)).front.shortcut
    assert not shortcut.answers_sold_out and shortcut.answers_queued  # each kind of answer has its switch
    settings = Settings(database_url=db_url, waitroom_products={"GONE": {}}, waitroom_sold_out_shortcut=False,
                        waitroom_queued_shortcut=False)
    assert create_app(build_container(settings)).front.shortcut is None


def test_shopfloor_serve_answers_sold_out_arrivals_in_its_protocol_and_keeps_the_connection_for_the_rest(
        db_url, tmp_path):
    import json
    import socket

    from tests.support.server import ServerProcess
    from tests.support.store import engine_for

    engine = engine_for(db_url)
    seed(engine, {"w1": ("us-west", "US", ["9"])}, {"GONE": 999, "A1": 1299}, {("GONE", "w1"): 0, ("A1", "w1"): 5})
    _, key = new_key(engine, "storefront")
    engine.dispose()
    env = {"SHOPFLOOR_WAITROOM_PRODUCTS": json.dumps({"GONE": {}}), "SHOPFLOOR_WAITROOM_STOCK_CACHE_S": "0"}
    server = ServerProcess(db_url, env=env, log_path=tmp_path / "server.log").start()
    auth = {"Authorization": f"Bearer {key}"}
    try:
        with socket.create_connection((server.host, server.port), timeout=10) as conn:
            ask = _asker(conn)

            answers = [ask(_raw(auth, "GONE", f"e{i}")) for i in range(3)]
            healthz = ask(b"GET /healthz HTTP/1.1\r\nHost: shop\r\n\r\n")
            bought = ask(_raw(auth, "A1", "e-a1"))
        for status, headers, body in answers:
            assert status == 409 and json.loads(body)["error"]["code"] == "sold_out"
            assert headers["cache-control"] == "no-store" and headers["content-type"] == "application/json"
        assert healthz[0] == 200 and bought[0] == 201  # the same connection serves the usual way after them
        metrics = httpx.get(server.url + "/metrics").text
        assert 'shopfloor_waitroom_decisions_total{outcome="sold_out",sku="GONE"} 3.0' in metrics
        assert 'route="/v1/checkouts"' in metrics and 'status="409"' in metrics
        admin_key = new_key(engine_for(db_url), "admin")[1]
        rooms = httpx.get(server.url + "/v1/tower/waitroom", headers={"Authorization": f"Bearer {admin_key}"})
        gone = next(p for p in rooms.json()["products"] if p["sku"] == "GONE")
        assert gone["sold_out_in_protocol"] == 3  # answered in the protocol, not by the gate
    finally:
        server.stop()


def _hot_sale(db_url, units: int):
    """A store whose HOT product opens in 5 s with ``units`` units (no stock cache): clock, container, app, auth."""
    clock = FixedClock(OPENS - timedelta(seconds=5))
    settings = Settings(database_url=db_url, waitroom_products={"HOT": {"opens_at": OPENS}}, waitroom_stock_cache_s=0,
                        waitroom_units_factor=1)
    container = build_container(settings, clock=clock)
    seed(container.engine, {"w1": ("us-west", "US", ["9"])}, {"HOT": 999}, {("HOT", "w1"): units})
    _, key = new_key(container.engine, "storefront")
    return clock, container, create_app(container), {"Authorization": f"Bearer {key}"}


def test_a_place_retried_after_the_sell_out_hears_sold_out_from_the_shortcut_as_from_the_gate(db_url):
    import json

    from sqlalchemy import update

    from shopfloor.store.tables import stock

    clock, container, app, auth = _hot_sale(db_url, units=1)
    with TestClient(app) as client:
        queued = [_checkout(client, auth, "HOT", f"q{i}") for i in range(3)]  # before the opening: all queued
        tokens = [q.json()["error"]["details"][0]["queue_token"] for q in queued]
        clock.advance(seconds=10)  # open: one place (1 unit, k = 1) is admitted, the other two wait
        states = [client.get(f"/v1/queue/{t}").json()["state"] for t in tokens]
        assert sorted(states) == ["admitted", "waiting", "waiting"]
        with container.engine.begin() as conn:  # the unit went elsewhere (another process, a restock undone)
            conn.execute(update(stock).where(stock.c.sku == "HOT").values(on_hand=0))
        shortcut = app.front.shortcut
        answers = [shortcut.answer(_raw(auth, "HOT", f"q{i}", extra=[f"Queue-Token: {t}"]), "10.1.1.1",
                                   _DEFAULT_HEADERS) for i, t in enumerate(tokens)]
        # the admitted place nobody used and the two unreached ones all hear sold_out at once
        assert all(a is not None for a in answers) and shortcut.answered == {"HOT": 3}
        usual = _checkout(client, auth, "HOT", "q1", token=tokens[1])  # the gate's answer to the same retry
        status, _headers, body = _parse(answers[1])
        assert status == usual.status_code == 409 and json.loads(body) == usual.json()
        # an expired token is the gate's to answer (403 queue_token_expired in the envelope)
        clock.advance(days=2)
        assert shortcut.answer(_raw(auth, "HOT", "q0", extra=[f"Queue-Token: {tokens[0]}"]), "10.1.1.1",
                               _DEFAULT_HEADERS) is None


# --- queued checkouts answered in the protocol -------------------------------------------------------------------

def _token_of(answer: bytes) -> str:
    import json

    return json.loads(_parse(answer)[2])["error"]["details"][0]["queue_token"]


def test_a_queued_arrival_and_a_waiting_place_get_from_the_shortcut_what_the_gate_answers(shop):
    import json

    client, auth, clock, handed_on = shop
    shortcut = client.app.front.shortcut
    assert shortcut.answers_queued  # on by default
    first = shortcut.answer(_raw(auth, "HOT", "w1"), "10.0.0.7", _DEFAULT_HEADERS)
    usual = _checkout(client, auth, "HOT", "w2")  # the next arrival the usual way
    assert first is not None and shortcut.queued == {"HOT": 1}
    status, headers, body = _parse(first)
    assert status == usual.status_code == 429
    doc, usual_doc = json.loads(body), usual.json()
    assert doc["error"]["code"] == usual_doc["error"]["code"] == "queued"
    # a place each, in order of arrival; the same message, estimate and Retry-After
    assert doc["error"]["details"][0]["position"] == 1 and usual_doc["error"]["details"][0]["position"] == 2
    assert doc["error"]["message"] == usual_doc["error"]["message"].replace("number 2", "number 1")
    assert doc["error"]["details"][0]["eta_s"] == usual_doc["error"]["details"][0]["eta_s"] == 60.0
    assert headers["retry-after"] == usual.headers["retry-after"] == "2"
    assert headers["cache-control"] == usual.headers["cache-control"] == "no-store"
    assert headers["content-type"] == usual.headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    assert headers["date"] == "Fri, 04 Dec 2026 03:00:00 GMT" and headers["server"] == "uvicorn"
    # the token is the room's (signed, for this product): its status and its retry say where it stands
    token = _token_of(first)
    assert client.get(f"/v1/queue/{token}").json() == {"state": "waiting", "position": 2, "eta_s": 60.0}
    # the same retry with the token, by the shortcut and by the gate: byte for byte the same body
    retried = shortcut.answer(_raw(auth, "HOT", "w1", extra=[f"Queue-Token: {token}"]), "10.0.0.7",
                              _DEFAULT_HEADERS)
    usual_retry = _checkout(client, auth, "HOT", "w1", token)
    assert _parse(retried)[0] == usual_retry.status_code == 429
    assert _parse(retried)[2] == usual_retry.content
    assert _parse(retried)[1]["retry-after"] == usual_retry.headers["retry-after"]
    assert shortcut.queued == {"HOT": 2} and handed_on == []
    metrics = client.get("/metrics").text  # counted like the gate's answers
    assert 'shopfloor_waitroom_decisions_total{outcome="queued",sku="HOT"} 4.0' in metrics
    assert 'shopfloor_http_requests_total{method="POST",route="/v1/checkouts",status="429"} 4.0' in metrics


def test_after_the_opening_the_shortcut_answers_only_places_that_still_wait(db_url):
    import json

    clock, container, app, auth = _hot_sale(db_url, units=2)
    shortcut = app.front.shortcut
    with TestClient(app) as client:
        # before the opening: 4 arrivals, all queued by the shortcut
        tokens = [_token_of(shortcut.answer(_raw(auth, "HOT", f"o{i}"), "10.2.0.1", _DEFAULT_HEADERS))
                  for i in range(4)]
        clock.advance(seconds=10)  # open: 2 units, k = 1: two places admitted, two wait
        states = {t: client.get(f"/v1/queue/{t}").json()["state"] for t in tokens}
        assert sorted(states.values()) == ["admitted", "admitted", "waiting", "waiting"]
        for i, token in enumerate(tokens):
            answer = shortcut.answer(_raw(auth, "HOT", f"o{i}", extra=[f"Queue-Token: {token}"]), "10.2.0.1",
                                     _DEFAULT_HEADERS)
            if states[token] == "admitted":
                assert answer is None  # the purchase is the usual way's
            else:
                usual = _checkout(client, auth, "HOT", f"o{i}", token)
                assert _parse(answer)[0] == usual.status_code == 429 and _parse(answer)[2] == usual.content
        # a new arrival while the room is full waits behind them, from the shortcut as from the gate
        late = shortcut.answer(_raw(auth, "HOT", "late1"), "10.2.0.1", _DEFAULT_HEADERS)
        assert json.loads(_parse(late)[2])["error"]["details"][0]["position"] == 3
        usual_late = _checkout(client, auth, "HOT", "late2")
        assert usual_late.json()["error"]["details"][0]["position"] == 4
        # one admitted shopper buys: 1 unit left, room for 1, still taken by the other admitted place
        admitted = [t for t, st in states.items() if st == "admitted"]
        waiting = [t for t, st in states.items() if st == "waiting"]
        bought = _checkout(client, auth, "HOT", f"o{tokens.index(admitted[0])}", admitted[0])
        assert bought.status_code == 201, bought.text
        for token in waiting:
            assert _parse(shortcut.answer(_raw(auth, "HOT", f"o{tokens.index(token)}",
                                               extra=[f"Queue-Token: {token}"]), "10.2.0.1", _DEFAULT_HEADERS))[0] == 429
        clock.advance(seconds=31)  # the other admitted place lapses unused: the line moves on by one
        states = {t: client.get(f"/v1/queue/{t}").json()["state"] for t in waiting}
        assert sorted(states.values()) == ["admitted", "waiting"]
        for token, state in states.items():
            answer = shortcut.answer(_raw(auth, "HOT", f"o{tokens.index(token)}", extra=[f"Queue-Token: {token}"]),
                                     "10.2.0.1", _DEFAULT_HEADERS)
            # a place that was reached is not the shortcut's (nobody is admitted from a protocol callback)
            assert (answer is None) == (state == "admitted")
        # a forged or expired token is the gate's (403 in the envelope)
        head, sig = tokens[0].split(".")
        forged = head + "." + ("A" if sig[0] != "A" else "B") + sig[1:]
        assert shortcut.answer(_raw(auth, "HOT", "f1", extra=[f"Queue-Token: {forged}"]), "10.2.0.1",
                               _DEFAULT_HEADERS) is None
        clock.advance(days=2)
        assert shortcut.answer(_raw(auth, "HOT", "e1", extra=[f"Queue-Token: {tokens[3]}"]), "10.2.0.1",
                               _DEFAULT_HEADERS) is None


def test_the_shortcut_takes_the_gates_rate_limit_tokens_and_answers_its_refusal(db_url):
    import json

    clock = FixedClock(OPENS - timedelta(seconds=60))
    settings = Settings(database_url=db_url, waitroom_products={"HOT": {"opens_at": OPENS}},
                        ratelimit_checkout_per_address={"rate_per_s": 0.001, "burst": 3},
                        bot_card_addresses=1000)
    container = build_container(settings, clock=clock)
    seed(container.engine, {"w1": ("us-west", "US", ["9"])}, {"HOT": 999}, {("HOT", "w1"): 2})
    _, key = new_key(container.engine, "storefront")
    app = create_app(container)
    auth = {"Authorization": f"Bearer {key}"}
    shortcut = app.front.shortcut
    with TestClient(app) as client:
        # the test client's address is "testclient": the shortcut and the usual way share its bucket (burst 3)
        a = shortcut.answer(_raw(auth, "HOT", "r1"), "testclient", _DEFAULT_HEADERS)
        b = _checkout(client, auth, "HOT", "r2")
        c = shortcut.answer(_raw(auth, "HOT", "r3"), "testclient", _DEFAULT_HEADERS)
        assert [_parse(a)[0], b.status_code, _parse(c)[0]] == [429, 429, 429]
        assert all(json.loads(_parse(x)[2])["error"]["code"] == "queued" for x in (a, c))
        refused = shortcut.answer(_raw(auth, "HOT", "r4"), "testclient", _DEFAULT_HEADERS)
        usual = _checkout(client, auth, "HOT", "r5")
        status, headers, body = _parse(refused)
        assert status == usual.status_code == 429 and body == usual.content
        assert json.loads(body)["error"]["code"] == "too_many_requests"
        assert headers["retry-after"] == usual.headers["retry-after"]
        assert headers["cache-control"] == "no-store"
        # a refused arrival takes no place: the room saw 3 arrivals
        assert client.get("/v1/queue/" + _token_of(c)).json()["position"] == 3
        # another address has its own bucket
        assert json.loads(_parse(shortcut.answer(_raw(auth, "HOT", "r6"), "10.9.9.9", _DEFAULT_HEADERS))[2])[
            "error"]["details"][0]["position"] == 4
        metrics = client.get("/metrics").text
        assert 'shopfloor_rate_limit_refusals_total{limit="checkout_per_address"} 2.0' in metrics


def test_with_buckets_or_a_queue_that_cannot_answer_at_once_queued_checkouts_take_the_usual_way(shop):
    client, auth, _, _ = shop
    shortcut = client.app.front.shortcut

    class RedisLike:  # a bucket store that must be awaited
        async def take(self, buckets):
            return None

    from shopfloor.api.throttle import Limit, RateLimits

    shortcut.limits = RateLimits(RedisLike(), checkout_per_address=Limit(1, 4))
    assert shortcut.answer(_raw(auth, "HOT", "u1"), "10.0.0.7", _DEFAULT_HEADERS) is None
    shortcut.limits = None
    room = shortcut.room
    store = room.store

    class SharedQueue:  # a queue store without the in-process answers (as Redis)
        def __getattr__(self, name):
            if name.endswith("_now"):
                raise AttributeError(name)
            return getattr(store, name)

    room.store = SharedQueue()
    try:
        assert shortcut.answer(_raw(auth, "HOT", "u2"), "10.0.0.7", _DEFAULT_HEADERS) is None
    finally:
        room.store = store
    assert shortcut.answer(_raw(auth, "HOT", "u3"), "10.0.0.7", _DEFAULT_HEADERS) is not None
    assert shortcut.queued == {"HOT": 1}


def test_shopfloor_serve_answers_queued_arrivals_in_its_protocol(db_url, tmp_path):
    import json
    import socket

    from tests.support.server import ServerProcess
    from tests.support.store import engine_for

    engine = engine_for(db_url)
    seed(engine, {"w1": ("us-west", "US", ["9"])}, {"HOT": 999, "A1": 1299}, {("HOT", "w1"): 5, ("A1", "w1"): 5})
    _, key = new_key(engine, "storefront")
    engine.dispose()
    opens = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    env = {"SHOPFLOOR_WAITROOM_PRODUCTS": json.dumps({"HOT": {"opens_at": opens}}),
           "SHOPFLOOR_RATELIMIT_CHECKOUT_PER_ADDRESS": json.dumps({"rate_per_s": 0.001, "burst": 3})}
    server = ServerProcess(db_url, env=env, log_path=tmp_path / "server.log").start()
    auth = {"Authorization": f"Bearer {key}"}
    try:
        with socket.create_connection((server.host, server.port), timeout=10) as conn:
            ask = _asker(conn)

            bought = ask(_raw(auth, "A1", "e-a1"))  # the usual way, from the same address (its bucket: burst 3)
            answers = [ask(_raw(auth, "HOT", f"q{i}")) for i in range(3)]  # the 3rd checkout is refused
            token = json.loads(answers[0][2])["error"]["details"][0]["queue_token"]
            status_of = ask(f"GET /v1/queue/{token} HTTP/1.1\r\nHost: shop\r\n\r\n".encode())
            healthz = ask(b"GET /healthz HTTP/1.1\r\nHost: shop\r\n\r\n")
        codes = [json.loads(body)["error"]["code"] for _s, _h, body in answers]
        assert bought[0] == 201 and [s for s, _h, _b in answers] == [429] * 3
        assert codes == ["queued", "queued", "too_many_requests"]
        assert [json.loads(b)["error"]["details"][0]["position"] for _s, _h, b in answers[:2]] == [1, 2]
        for _status, headers, _body in answers:
            assert headers["cache-control"] == "no-store" and int(headers["retry-after"]) >= 1
        # the same connection serves the usual way after them
        assert status_of[0] == 200 and json.loads(status_of[2])["state"] == "waiting" and healthz[0] == 200
        admin_key = new_key(engine_for(db_url), "admin")[1]
        rooms = httpx.get(server.url + "/v1/tower/waitroom", headers={"Authorization": f"Bearer {admin_key}"})
        hot = next(p for p in rooms.json()["products"] if p["sku"] == "HOT")
        assert hot["queued_in_protocol"] == 3 and hot["arrivals"] == 2
        metrics = httpx.get(server.url + "/metrics").text
        assert 'shopfloor_waitroom_decisions_total{outcome="queued",sku="HOT"} 2.0' in metrics
        assert 'shopfloor_rate_limit_refusals_total{limit="checkout_per_address"} 1.0' in metrics
    finally:
        server.stop()


def test_shopfloor_serve_holds_queue_status_requests_in_its_protocol_and_answers_the_sell_out(db_url, tmp_path):
    import json
    import socket
    import threading
    import time

    from sqlalchemy import text

    from tests.support.server import ServerProcess
    from tests.support.store import engine_for

    engine = engine_for(db_url)
    seed(engine, {"w1": ("us-west", "US", ["9"])}, {"HOT": 999}, {("HOT", "w1"): 5})
    _, key = new_key(engine, "storefront")
    admin_key = new_key(engine, "admin")[1]
    opens = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    env = {"SHOPFLOOR_WAITROOM_PRODUCTS": json.dumps({"HOT": {"opens_at": opens}}),
           "SHOPFLOOR_WAITROOM_STOCK_CACHE_S": "0"}
    server = ServerProcess(db_url, env=env, log_path=tmp_path / "server.log").start()
    auth = {"Authorization": f"Bearer {key}"}

    def status_request(token: str, wait: str = "") -> bytes:
        return f"GET /v1/queue/{token}{wait} HTTP/1.1\r\nHost: shop\r\n\r\n".encode()

    def in_protocol() -> dict:
        rooms = httpx.get(server.url + "/v1/tower/waitroom", headers={"Authorization": f"Bearer {admin_key}"})
        return rooms.json()["queue_status_in_protocol"]

    try:
        with socket.create_connection((server.host, server.port), timeout=30) as conn:
            ask = _asker(conn)
            queued = ask(_raw(auth, "HOT", "q1"))
            token = json.loads(queued[2])["error"]["details"][0]["queue_token"]
            polled = ask(status_request(token))  # no wait: answered at once
            head, sig = token.split(".")
            forged = ask(status_request(head + "." + ("A" if sig[0] != "A" else "B") + sig[1:], "?wait=20"))
            started = time.monotonic()
            timed = ask(status_request(token, "?wait=0.5"))  # held, then answered with the state after 0.5 s
            timed_s = time.monotonic() - started
            # the client sends another request while one is held: the held one is answered first, in order
            conn.sendall(status_request(token, "?wait=20"))
            time.sleep(0.3)
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: shop\r\n\r\n")
            reader = conn.makefile("rb")
            pushed_head = b""
            while not pushed_head.endswith(b"\r\n\r\n"):
                pushed_head += reader.readline()
            pushed = _parse(pushed_head)
            pushed_body = reader.read(int(pushed[1]["content-length"]))
            health_head = b""
            while not health_head.endswith(b"\r\n\r\n"):
                health_head += reader.readline()
            health = _parse(health_head)
            reader.read(int(health[1]["content-length"]))
        assert queued[0] == 429
        # a forged token goes the usual way, which refuses it in the envelope at once
        assert forged[0] == 403 and json.loads(forged[2])["error"]["code"] == "queue_token_invalid"
        for status, headers, body in (polled, timed, (pushed[0], pushed[1], pushed_body)):
            assert status == 200 and headers["cache-control"] == "no-store"
            assert json.loads(body) == {"state": "waiting", "position": 1, "eta_s": json.loads(body)["eta_s"]}
        assert 0.4 <= timed_s < 5 and health[0] == 200

        # a shopper whose client goes away while held, and one who holds until the product sells out
        with socket.create_connection((server.host, server.port), timeout=30) as gone:
            gone.sendall(status_request(token, "?wait=20"))
            time.sleep(0.2)
        answer: dict = {}
        conn = socket.create_connection((server.host, server.port), timeout=30)

        def hold_until_told():
            ask_held = _asker(conn)
            answer["held"] = ask_held(status_request(token, "?wait=20"))
            answer["at"] = time.monotonic()
            answer["after"] = ask_held(b"GET /healthz HTTP/1.1\r\nHost: shop\r\n\r\n")  # the connection goes on

        holder = threading.Thread(target=hold_until_told)
        holder.start()
        time.sleep(0.5)
        counts = in_protocol()
        assert counts["held"] == 4 and counts["answered"] == 1  # nothing on the usual way
        with engine.begin() as db:
            db.execute(text("UPDATE stock SET on_hand = 0 WHERE sku = 'HOT'"))
        sold_at = time.monotonic()
        holder.join(15)
        conn.close()
        status, headers, body = answer["held"]
        assert status == 200 and json.loads(body)["state"] == "sold_out" and answer["at"] - sold_at < 5
        assert answer["after"][0] == 200
        metrics = httpx.get(server.url + "/metrics").text
        assert 'route="/v1/queue/{token}"' in metrics
    finally:
        server.stop()
        engine.dispose()
