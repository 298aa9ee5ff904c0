"""The waiting room over HTTP, on both checkout entries (the ASGI fast path and the FastAPI route)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from shopfloor.api.app import create_app
from shopfloor.api.fast_checkout import CheckoutFastPath
from shopfloor.bootstrap import build_container
from shopfloor.config import Settings
from shopfloor.domain.clock import FixedClock
from tests.support.store import new_key, seed

OPENS = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


def _body(sku: str) -> dict:
    return {"lines": [{"sku": sku, "qty": 1}], "ship_to": {"country": "US", "postal_code": "94107"},
            "payment": {"token": "tok_ok"}}


@pytest.fixture(params=["fast_path", "route"])
def shop(request, db_url, monkeypatch):
    if request.param == "route":  # every checkout handed on to the FastAPI route
        monkeypatch.setattr(CheckoutFastPath, "accept", lambda self, *a: None)
    clock = FixedClock(OPENS - timedelta(seconds=60))
    settings = Settings(database_url=db_url, waitroom_products={"HOT": {"opens_at": OPENS}, "HOT2": {}},
                        waitroom_units_factor=1.0, waitroom_stock_cache_s=0, waitroom_serve_rate_per_s=10)
    container = build_container(settings, clock=clock)
    seed(container.engine, {"w1": ("us-west", "US", ["9"])}, {"HOT": 999, "HOT2": 999, "A1": 1299},
         {("HOT", "w1"): 2, ("HOT2", "w1"): 5, ("A1", "w1"): 50})
    _, key = new_key(container.engine, "storefront")
    with TestClient(create_app(container)) as client:
        yield client, {"Authorization": f"Bearer {key}"}, clock


def _checkout(client, auth, sku, idem, token=None):
    headers = {**auth, "Idempotency-Key": idem}
    if token is not None:
        headers["Queue-Token"] = token
    return client.post("/v1/checkouts", json=_body(sku), headers=headers)


def test_a_flash_sale_queues_sells_exactly_the_stock_and_tells_the_rest_sold_out(shop):
    client, auth, clock = shop
    early = [_checkout(client, auth, "HOT", f"early-{i}") for i in range(6)]
    for i, r in enumerate(early):
        assert r.status_code == 429, r.text
        err = r.json()["error"]
        assert err["code"] == "queued" and err["details"][0]["position"] == i + 1
        assert int(r.headers["Retry-After"]) >= 1
    tokens = [r.json()["error"]["details"][0]["queue_token"] for r in early]
    status = client.get(f"/v1/queue/{tokens[0]}").json()
    assert status["state"] == "waiting" and status["eta_s"] == 60.0
    ordinary = _checkout(client, auth, "A1", "ordinary-1")  # other products never queue
    assert ordinary.status_code == 201, ordinary.text

    clock.advance(seconds=61)  # the sale opens; the six early arrivals are shuffled once
    answers = {i: _checkout(client, auth, "HOT", f"early-{i}", tokens[i]) for i in range(6)}
    sold = [i for i, r in answers.items() if r.status_code == 201]
    queued = [i for i, r in answers.items() if r.status_code == 429]
    assert len(sold) == 2, {i: r.text for i, r in answers.items()}
    assert len(sold) + len(queued) + sum(r.status_code == 409 for r in answers.values()) == 6
    for i in range(6):
        if i in sold:
            continue
        again = _checkout(client, auth, "HOT", f"early-{i}", tokens[i])
        assert again.status_code == 409 and again.json()["error"]["code"] == "sold_out", again.text
        assert client.get(f"/v1/queue/{tokens[i]}").json() == {"state": "sold_out", "position": None,
                                                               "eta_s": None}
    late = _checkout(client, auth, "HOT", "late")
    assert late.status_code == 409 and late.json()["error"]["code"] == "sold_out"
    replay = _checkout(client, auth, "HOT", f"early-{sold[0]}", tokens[sold[0]])
    assert replay.status_code == 201 and replay.headers.get("Idempotent-Replayed") == "true"


def test_an_admitted_place_buys_one_order_and_not_a_second(shop):
    client, auth, clock = shop
    token = _checkout(client, auth, "HOT", "a").json()["error"]["details"][0]["queue_token"]
    clock.advance(seconds=61)
    assert client.get(f"/v1/queue/{token}").json() == {"state": "admitted", "position": 0, "eta_s": 0.0}
    assert _checkout(client, auth, "HOT", "a", token).status_code == 201
    second = _checkout(client, auth, "HOT", "a-second-purchase", token)
    assert second.status_code == 409 and second.json()["error"]["code"] == "queue_token_used"
    fresh = _checkout(client, auth, "HOT2", "b")  # an open sale with nobody waiting admits at once
    assert fresh.status_code == 201, fresh.text


def test_a_forged_token_and_a_token_moved_to_another_product_are_refused(shop):
    client, auth, _ = shop
    token = _checkout(client, auth, "HOT", "x").json()["error"]["details"][0]["queue_token"]
    head, sig = token.split(".")
    forged = head + "." + ("A" if sig[0] != "A" else "B") + sig[1:]
    r = _checkout(client, auth, "HOT", "x", forged)
    assert r.status_code == 403 and r.json()["error"]["code"] == "queue_token_invalid"
    assert r.json()["error"]["details"] == [{"field": "Queue-Token"}]
    moved = _checkout(client, auth, "HOT2", "y", token)
    assert moved.status_code == 403 and moved.json()["error"]["code"] == "queue_token_wrong_product"
    assert client.get(f"/v1/queue/{forged}").status_code == 403
    bad = client.get("/v1/queue/not-a-token")
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["field"] == "token"


def test_an_expired_token_reads_expired_and_its_checkout_is_refused(shop):
    client, auth, clock = shop
    token = _checkout(client, auth, "HOT", "x").json()["error"]["details"][0]["queue_token"]
    clock.advance(seconds=901)
    assert client.get(f"/v1/queue/{token}").json()["state"] == "expired"
    r = _checkout(client, auth, "HOT", "x", token)
    assert r.status_code == 403 and r.json()["error"]["code"] == "queue_token_expired"


def test_the_tower_shows_queue_length_decisions_and_a_card_shared_by_many_addresses(db_url):
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    clock = FixedClock(OPENS - timedelta(seconds=60))
    settings = Settings(database_url=db_url, waitroom_products={"HOT": {"opens_at": OPENS}}, bot_card_addresses=5)
    container = build_container(settings, clock=clock)
    seed(container.engine, {"w1": ("us-west", "US", ["9"])}, {"HOT": 999}, {("HOT", "w1"): 10})
    _, key = new_key(container.engine, "storefront")
    _, admin = new_key(container.engine, "admin")
    app = create_app(container)
    with TestClient(ProxyHeadersMiddleware(app, trusted_hosts="*")) as client:
        for i in range(7):  # one card from seven addresses
            r = client.post("/v1/checkouts", json=_body("HOT"),
                            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": f"bot{i}",
                                     "X-Forwarded-For": f"203.0.113.{i}"})
            assert r.status_code == 429
        admin_auth = {"Authorization": f"Bearer {admin}"}
        queue = client.get("/v1/tower/waitroom", headers=admin_auth).json()
        assert queue == {"queue_status_in_protocol": {"answered": 0, "held": 0},
                         "products": [{"sku": "HOT", "arrivals": 7, "admitted": 0, "waiting": 7, "in_flight": 0,
                                      "remaining": 10, "sold_out_seen_at": None, "held_told_sold_out": 0,
                                      "sold_out_in_protocol": 0, "queued_in_protocol": 0}]}
        alerts = client.get("/v1/tower/alerts", headers=admin_auth).json()["alerts"]
        metrics = client.get("/metrics").text
    bot = [a for a in alerts if a["kind"] == "bot_pattern"]
    assert len(bot) == 1 and bot[0]["metric"] == "bot_one_card" and "5 client addresses" in bot[0]["message"]
    assert 'shopfloor_waitroom_decisions_total{outcome="queued",sku="HOT"} 7.0' in metrics
    assert 'shopfloor_bot_patterns_total{kind="one_card"} 1.0' in metrics


def test_a_per_product_limit_refuses_in_the_envelope_and_is_counted(db_url):
    settings = Settings(database_url=db_url, ratelimit_checkout_per_product={"rate_per_s": 0.001, "burst": 2})
    container = build_container(settings)
    seed(container.engine, {"w1": ("us-west", "US", ["9"])}, {"A1": 999, "B1": 999},
         {("A1", "w1"): 10, ("B1", "w1"): 10})
    _, key = new_key(container.engine, "storefront")
    auth = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(container)) as client:
        codes = [_checkout(client, auth, "A1", f"a{i}").status_code for i in range(3)]
        refused = _checkout(client, auth, "A1", "a9")
        other = _checkout(client, auth, "B1", "b0")
        metrics = client.get("/metrics").text
    assert codes == [201, 201, 429] and other.status_code == 201
    err = refused.json()["error"]
    assert err["code"] == "too_many_requests" and err["details"][0]["limit"] == "checkout_per_product"
    assert int(refused.headers["Retry-After"]) >= 1
    assert 'shopfloor_rate_limit_refusals_total{limit="checkout_per_product"} 2.0' in metrics


def test_a_malformed_wait_goes_to_the_route_and_names_the_field(shop):
    client, auth, _ = shop
    token = _checkout(client, auth, "HOT", "x").json()["error"]["details"][0]["queue_token"]
    r = client.get(f"/v1/queue/{token}?wait=forever")
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "wait"
    held = client.get(f"/v1/queue/{token}?wait=0.2")
    assert held.status_code == 200 and held.json()["state"] == "waiting"


def test_an_unreachable_queue_store_answers_503_for_the_hot_product_only(db_url):
    class DownStore:
        async def enter(self, *a, **kw):
            raise ConnectionError("redis down")

        opening = poll = finish = stats = enter

    container = build_container(Settings(database_url=db_url, waitroom_products={"HOT": {}}))
    seed(container.engine, {"w1": ("us-west", "US", ["9"])}, {"HOT": 999, "A1": 999},
         {("HOT", "w1"): 5, ("A1", "w1"): 5})
    _, key = new_key(container.engine, "storefront")
    container.services["waitroom"].store = DownStore()
    auth = {"Authorization": f"Bearer {key}"}
    token = container.services["waitroom"].codec.issue("HOT", "q", 0, container.clock.now().timestamp())
    with TestClient(create_app(container)) as client:
        hot = _checkout(client, auth, "HOT", "h1")
        other = _checkout(client, auth, "A1", "a1")
        status = client.get(f"/v1/queue/{token}")
    assert status.status_code == 503 and status.headers["Retry-After"] == "2"
    assert hot.status_code == 503 and hot.json()["error"]["code"] == "service_unavailable"
    assert hot.headers["Retry-After"] == "2"
    assert other.status_code == 201


@pytest.mark.parametrize("entry", ["front", "route"])
def test_a_status_request_past_the_hold_cap_is_answered_at_once_with_retry_after(db_url, monkeypatch, entry):
    import time

    from shopfloor.api.fast_queue import QueueStatusFastPath

    if entry == "route":  # every status request handed on to the FastAPI route
        monkeypatch.setattr(QueueStatusFastPath, "_wait", lambda self, query: None)
    settings = Settings(database_url=db_url, waitroom_products={"HOT": {"opens_at": OPENS}},
                        waitroom_units_factor=1.0, waitroom_stock_cache_s=0, waitroom_max_held=0)
    container = build_container(settings, clock=FixedClock(OPENS - timedelta(seconds=60)))
    seed(container.engine, {"w1": ("us-west", "US", ["9"])}, {"HOT": 999}, {("HOT", "w1"): 1})
    _, key = new_key(container.engine, "storefront")
    with TestClient(create_app(container)) as client:
        auth = {"Authorization": f"Bearer {key}"}
        queued = _checkout(client, auth, "HOT", "early")  # before the opening: every shopper waits
        token = queued.json()["error"]["details"][0]["queue_token"]
        started = time.monotonic()
        r = client.get(f"/v1/queue/{token}?wait=20")
        took = time.monotonic() - started
    assert r.status_code == 200 and r.json()["state"] == "waiting"
    assert took < 5 and int(r.headers["Retry-After"]) >= 1
