"""The crowd's two routes answered ahead of the FastAPI stack: same answers, same envelope, same refusals."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

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
    entered = []
    real_enter = lane.enter

    async def counting_enter():
        entered.append(1)
        await real_enter()

    lane.enter = counting_enter
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


def test_the_arrival_lane_is_off_by_default(shop):
    client, *_ = shop
    assert client.app.front.checkout.arrivals is None
