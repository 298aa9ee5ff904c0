"""The /dashboard login and session on a real database, and the panel JSON it draws from."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient

from shopfloor.api.app import create_app
from shopfloor.api.routes.dashboard import COOKIE
from shopfloor.bootstrap import build_container
from shopfloor.config import Settings
from shopfloor.domain.clock import FixedClock
from shopfloor.store.capacity import record_request_batch
from shopfloor.store.keys import create_api_key, revoke_api_key
from shopfloor.store.tower import TowerRepository
from shopfloor.tower.dashboard_panels import PANELS, PLAN_CACHE

NOW = datetime(2026, 11, 27, 12, 0, 30, tzinfo=timezone.utc)
TTL = 600


@pytest.fixture
def env(db_url, tmp_path):
    clock = FixedClock(NOW)
    settings = Settings(database_url=db_url, dashboard_session_secret="test-secret", dashboard_session_ttl_s=TTL,
                        tower_beacon_flush_s=0, edge_dir=tmp_path / "edge")
    container = build_container(settings, clock=clock)
    admin_id, admin = create_api_key(container.engine, ["admin"], "ops", NOW)
    _, storefront = create_api_key(container.engine, ["storefront"], "web", NOW)
    PLAN_CACHE.clear()
    with TestClient(create_app(container)) as client:
        yield {"client": client, "clock": clock, "container": container, "admin": admin, "admin_id": admin_id,
               "storefront": storefront}
    PLAN_CACHE.clear()


def _login(client, key):
    return client.post("/dashboard/login", data={"key": key}, follow_redirects=False)


def test_unauthenticated_dashboard_redirects_to_the_login_page(env):
    client = env["client"]
    r = client.get("/dashboard", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
    page = client.get("/dashboard/login")
    assert page.status_code == 200 and 'name="key"' in page.text
    assert client.get("/dashboard/api/funnel").status_code == 401


def test_a_wrong_key_gets_the_login_page_with_401_and_is_not_echoed(env, caplog):
    caplog.set_level(logging.DEBUG)
    r = _login(env["client"], "sf_live_not_a_real_key_123")
    assert r.status_code == 401
    assert "not valid" in r.text and "sf_live_not_a_real_key_123" not in r.text
    assert COOKIE not in r.headers.get("set-cookie", "")
    assert "sf_live_not_a_real_key_123" not in caplog.text


def test_a_key_without_admin_scope_is_refused(env):
    r = _login(env["client"], env["storefront"])
    assert r.status_code == 403 and "admin scope" in r.text
    assert env["client"].get("/dashboard", follow_redirects=False).status_code == 303


def test_repeated_refused_logins_are_throttled_with_429_and_retry_after(env):
    client, container = env["client"], env["container"]
    limit = container.settings.dashboard_login_max_failures
    for i in range(limit):
        assert _login(client, f"sf_live_guess_{i}").status_code == 401
    r = _login(client, env["admin"])  # even the right key waits until the window has passed
    assert r.status_code == 429
    assert 1 <= int(r.headers["retry-after"]) <= container.settings.dashboard_login_window_s
    assert "Too many refused logins" in r.text and COOKIE not in r.headers.get("set-cookie", "")
    assert _login(client, "").status_code == 401  # an empty form is answered, not counted or throttled


def test_a_successful_login_clears_the_refused_count(env):
    client, limit = env["client"], env["container"].settings.dashboard_login_max_failures
    for i in range(limit - 1):
        assert _login(client, f"sf_live_guess_{i}").status_code == 401
    assert _login(client, env["admin"]).status_code == 303
    for i in range(limit - 1):
        assert _login(client, f"sf_live_guess_again_{i}").status_code == 401
    assert _login(client, env["admin"]).status_code == 303


def test_admin_login_sets_a_signed_httponly_strict_cookie_that_opens_the_page(env, caplog):
    caplog.set_level(logging.DEBUG)
    client = env["client"]
    r = _login(client, env["admin"])
    assert r.status_code == 303 and r.headers["location"] == "/dashboard"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    assert f"Max-Age={TTL}" in cookie and "Path=/dashboard" in cookie
    assert env["admin"] not in cookie and env["admin"] not in caplog.text
    page = client.get("/dashboard")
    assert page.status_code == 200 and 'data-panel="traffic"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/dashboard/api/panels").json()["panels"] == list(PANELS)


def test_a_tampered_cookie_is_rejected(env):
    client = env["client"]
    _login(client, env["admin"])
    payload, signature = client.cookies.get(COOKIE).split(".")
    client.cookies.set(COOKIE, f"{payload}x.{signature}", path="/dashboard")
    assert client.get("/dashboard/api/alerts").status_code == 401
    r = client.get("/dashboard", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"


def test_an_expired_session_is_rejected(env):
    client = env["client"]
    _login(client, env["admin"])
    env["clock"].advance(seconds=TTL - 1)
    assert client.get("/dashboard/api/alerts").status_code == 200
    env["clock"].advance(seconds=1)
    r = client.get("/dashboard/api/alerts")
    assert r.status_code == 401 and r.json()["error"]["details"] == [{"reason": "expired"}]


def test_revoking_the_key_ends_its_sessions(env):
    client = env["client"]
    _login(client, env["admin"])
    assert client.get("/dashboard/api/alerts").status_code == 200
    revoke_api_key(env["container"].engine, env["admin_id"], NOW)
    r = client.get("/dashboard/api/alerts")
    assert r.status_code == 401 and r.json()["error"]["details"] == [{"reason": "key_revoked"}]


def test_logout_clears_the_cookie(env):
    client = env["client"]
    _login(client, env["admin"])
    r = client.post("/dashboard/logout", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
    assert f'{COOKIE}=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]
    assert client.get("/dashboard", follow_redirects=False).status_code == 303


def test_logout_ends_the_session_server_side_so_a_copied_cookie_stops_working(env):
    client = env["client"]
    _login(client, env["admin"])
    copied = client.cookies.get(COOKIE)
    assert client.get("/dashboard/api/alerts").status_code == 200
    client.post("/dashboard/logout", follow_redirects=False)
    client.cookies.set(COOKIE, copied, path="/dashboard")  # e.g. a cookie lifted before the logout
    r = client.get("/dashboard/api/alerts")
    assert r.status_code == 401 and r.json()["error"]["details"] == [{"reason": "logged_out"}]
    client.cookies.clear()
    _login(client, env["admin"])  # a new login is a new session
    assert client.get("/dashboard/api/alerts").status_code == 200


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "cross-site", "Origin": "null"},
    {"Origin": "https://attacker.example"},
    {"Origin": "http://testserver:8081"},  # another port of the same host is another origin
    {"Origin": "null"},  # a sandboxed page, and no Sec-Fetch-Site to say it is this one
    {"Origin": "http://testserver.attacker.example", "Sec-Fetch-Site": "same-site"},
], ids=["fetch-site", "fetch-site-null", "other-host", "other-port", "null", "same-site-other-host"])
def test_a_login_or_logout_posted_from_another_site_is_refused(env, headers):
    client = env["client"]
    r = client.post("/dashboard/login", data={"key": env["admin"]}, headers=headers, follow_redirects=False)
    assert r.status_code == 403 and "another site" in r.text and COOKIE not in r.headers.get("set-cookie", "")
    assert client.get("/dashboard", follow_redirects=False).status_code == 303
    _login(client, env["admin"])
    r = client.post("/dashboard/logout", headers=headers, follow_redirects=False)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert client.get("/dashboard/api/alerts").status_code == 200  # still logged in


@pytest.mark.parametrize("headers", [
    {},  # an old browser or a script: no Origin at all
    {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
    {"Origin": "null", "Sec-Fetch-Site": "same-origin"},
    {"Origin": "https://shop.example.com", "Host": "shop.example.com"},  # behind a TLS proxy that keeps Host
    {"Origin": "https://shop.example.com", "Host": "127.0.0.1:8000", "X-Forwarded-Host": "shop.example.com"},
    {"Origin": "http://[::1]:8000", "Host": "[::1]:8000"},
], ids=["no-origin", "same-origin", "null-same-origin", "proxy-host", "forwarded-host", "ipv6"])
def test_a_login_and_logout_from_the_dashboard_itself_still_work(env, headers):
    client = env["client"]
    r = client.post("/dashboard/login", data={"key": env["admin"]}, headers=headers, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard", r.text
    assert client.get("/dashboard/api/alerts").status_code == 200
    r = client.post("/dashboard/logout", headers=headers, follow_redirects=False)
    assert r.status_code == 303 and client.get("/dashboard/api/alerts").status_code == 401


def test_the_dashboard_pages_send_their_origin_with_their_own_forms(env):
    """Under Referrer-Policy no-referrer a browser posts the page's own forms with ``Origin: null``, which says
    nothing about where the post came from; same-origin keeps the Origin for the site and still sends no Referer
    to any other."""
    assert env["client"].get("/dashboard/login").headers["referrer-policy"] == "same-origin"


def test_the_cookie_is_secure_over_https_or_when_forced(db_url):
    for forced, base_url, secure in ((False, "http://testserver", False), (False, "https://testserver", True),
                                     (True, "http://testserver", True)):
        settings = Settings(database_url=db_url, dashboard_session_secret="s", dashboard_cookie_secure=forced)
        container = build_container(settings, clock=FixedClock(NOW))
        _, admin = create_api_key(container.engine, ["admin"], f"ops-{forced}-{secure}", NOW)
        with TestClient(create_app(container), base_url=base_url) as client:
            cookie = _login(client, admin).headers["set-cookie"]
        assert ("Secure" in cookie) is secure, (forced, base_url, cookie)


def test_every_panel_says_no_data_yet_on_an_empty_store(env):
    client = env["client"]
    _login(client, env["admin"])
    states = {name: client.get(f"/dashboard/api/{name}").json() for name in PANELS}
    for name, body in states.items():
        if name == "payments":  # the configured processors exist (closed breakers, no calls) from the start
            assert body["state"] == "ready" and [p["processor"] for p in body["processors"]] == ["primary",
                                                                                                   "secondary"]
            assert all(p["window_calls"] == 0 and p["worst_state"] == "closed" for p in body["processors"])
        else:
            assert body["state"] == "empty" and body["message"], (name, body)
    assert client.get("/dashboard/api/nope").status_code == 404


def test_panels_fill_from_rollups_alerts_and_the_action_log(env):
    client, container = env["client"], env["container"]
    repo = TowerRepository(container.engine)
    minute = NOW.replace(second=0) - timedelta(minutes=2)
    repo.add_funnel_counts([
        {"minute": minute, "stage": "page_view", "count": 200, "latency_ms_sum": 0.0, "latency_count": 0},
        {"minute": minute, "stage": "product_view", "count": 100, "latency_ms_sum": 0.0, "latency_count": 0},
        # ten checkouts answered in 75-100 ms, two in 250-400 ms (latency buckets, LATENCY_BOUNDS_MS)
        {"minute": minute, "stage": "checkout_attempt", "count": 12, "latency_ms_sum": 1200.0, "latency_count": 12,
         "latency_buckets": [0, 0, 0, 0, 0, 10, 0, 0, 2, 0, 0, 0, 0, 0, 0]},
        {"minute": minute, "stage": "checkout_succeeded", "count": 8, "latency_ms_sum": 720.0, "latency_count": 8},
        {"minute": minute, "stage": "checkout_refused", "count": 2, "latency_ms_sum": 0.0, "latency_count": 0},
    ])
    record_request_batch(container.engine, [
        {"minute": NOW - timedelta(minutes=k), "route": "/v1/checkout", "count": 30 + k, "latency_ms_sum": 90.0}
        for k in range(1, 40)] + [{"minute": NOW - timedelta(minutes=1), "route": "/dashboard/api/{panel}",
                                   "count": 1000}])
    repo.add_alert(at=NOW - timedelta(minutes=1), source="detector", metric="checkout_success_rate",
                   kind="low", message="rate fell", observed=0.5, expected=0.95, lower=0.9, upper=1.0)
    _login(client, env["admin"])

    checkout = client.get("/dashboard/api/checkout").json()
    assert checkout["state"] == "ready"
    # The two sold-out refusals are shown apart and are not failures: 8 of the 10 attempts that could succeed.
    assert checkout["summary"] == {"attempts": 12, "succeeded": 8, "refused_out_of_stock": 2, "failed": 2,
                                   "success_rate": 0.8, "latency_ms_mean": 100.0, "latency_ms_p95": 355.0}
    assert checkout["refused"][-3] == 2 and checkout["success_rate"][-3] == 0.8
    # the 95th percentile: rank 11.4 of 12 falls 0.7 of the way into the 250-400 ms bucket
    assert checkout["latency_ms_p95"][-3] == 355.0 and checkout["latency_ms_p95"][-2] is None

    funnel = client.get("/dashboard/api/funnel").json()
    steps = {s["stage"]: s for s in funnel["steps"]}
    assert steps["product_view"]["from_previous"] == 0.5 and steps["checkout_succeeded"]["from_first"] == 0.04

    traffic = client.get("/dashboard/api/traffic").json()
    assert traffic["state"] == "ready"
    assert traffic["requests"][-1] == 31  # the dashboard's own polling is not storefront traffic
    assert len(traffic["requests"]) == len(traffic["forecast_mean"]) == 39
    assert len(traffic["future_mean"]) == 60 and all(v >= 0 for v in traffic["future_upper"])

    alerts = client.get("/dashboard/api/alerts").json()
    assert alerts["state"] == "ready" and alerts["alerts"][0]["metric"] == "checkout_success_rate"
    assert alerts["alerts"][0]["lower"] == 0.9

    plans = client.get("/dashboard/api/plans").json()
    assert plans["state"] == "ready" and plans["capacity"]["slots"]
    now = plans["capacity"]["planner_now"]  # the live planner's answer, the one KEDA's planner trigger reads
    assert now["desired_replicas"] >= 1 and now["at"] == NOW.replace(second=0, microsecond=0).isoformat()
    assert container.services["capacity.live"].rebuilds == 1


def _h(at: datetime) -> float:
    return at.timestamp() / 3600.0


def test_fulfillment_inventory_and_promise_panels_compute_from_the_feed_and_recorded_promises(env):
    from shopfloor.fulfillment.stats import OrderTrack
    from shopfloor.store.promise_tables import fulfillment_orders
    from tests.support.store import seed

    client, container = env["client"], env["container"]
    seed(container.engine, {"wh-a": ("eu-west", "DE", ["1"]), "wh-b": ("eu-east", "PL", ["0"])},
         {"SKU-1": 1000}, {("SKU-1", "wh-a"): 10, ("SKU-1", "wh-b"): 5}, now=NOW - timedelta(hours=3))
    placed = NOW - timedelta(hours=50)
    legs = {"o1": (2, 2, 24), "o2": (4, 3, 30), "o3": (6, 4, None)}  # pick/pack, handoff, transit hours
    events = []
    for oid, (pick, handoff, transit) in legs.items():
        times = {"approved": placed, "packed": placed + timedelta(hours=pick),
                 "handed_to_carrier": placed + timedelta(hours=pick + handoff)}
        if transit is not None:
            times["delivered"] = times["handed_to_carrier"] + timedelta(hours=transit)
        events += [{"event_id": f"{oid}-{kind}", "order_id": oid, "type": kind, "at": at.isoformat(),
                    "warehouse": "wh-a", "carrier": "ups", "country": "DE", "postal_code": "10115",
                    "placed_at": placed.isoformat()} for kind, at in times.items()]
    admin = {"Authorization": f"Bearer {env['admin']}"}
    assert client.post("/v1/fulfillment/events", json={"events": events}, headers=admin).status_code == 200

    day_end = datetime(2026, 11, 28, tzinfo=timezone.utc)  # end of the promised day 2026-11-27
    tracks = [
        OrderTrack("p-kept", promise_conf=0.9, promise_due_h=_h(day_end), delivered_h=_h(NOW - timedelta(hours=2))),
        OrderTrack("p-late", promise_conf=0.9, promise_due_h=_h(day_end - timedelta(days=2)),
                   delivered_h=_h(day_end - timedelta(days=2) + timedelta(hours=12))),  # a day late
        OrderTrack("p-overdue", promise_conf=0.9, promise_due_h=_h(day_end - timedelta(days=7))),
        OrderTrack("p-pending", promise_conf=0.9, promise_due_h=_h(day_end + timedelta(days=8))),
        OrderTrack("no-promise", delivered_h=_h(NOW)),
    ]
    with container.engine.begin() as conn:
        conn.execute(fulfillment_orders.insert(), [{"order_id": t.order_id, "track": t.to_json(),
                                                    "promise_due_at": None, "updated_at": NOW} for t in tracks])
    _login(client, env["admin"])

    delays = client.get("/dashboard/api/fulfillment").json()
    assert delays["state"] == "ready" and delays["orders"] == 3
    [wh] = delays["warehouses"]
    assert wh["warehouse"] == "wh-a"
    assert wh["pick_pack_h"] == {"p50": 4.0, "p90": 5.6} and wh["handoff_h"] == {"p50": 3.0, "p90": 3.8}
    # A lane starts at the warehouse the store knows (wh-a), with its region beside it.
    assert delays["lanes"] == [{"origin": "wh-a", "origin_region": "eu-west", "destination": "DE", "carrier": "ups",
                                "deliveries": 2, "transit_h": {"p50": 27.0, "p90": 29.4}}]

    inventory = client.get("/dashboard/api/inventory").json()
    feeds = {f["warehouse"]: f for f in inventory["feeds"]}
    assert feeds["wh-a"]["events"] == 11 and feeds["wh-a"]["stale"] is False
    assert feeds["wh-a"]["stock_age_h"] == 3.0
    assert feeds["wh-b"]["events"] == 0 and feeds["wh-b"]["stale"] is True and feeds["wh-b"]["feed_age_h"] is None

    promise = client.get("/dashboard/api/promise").json()
    assert (promise["kept"], promise["missed"], promise["pending"]) == (1, 2, 1)
    assert promise["on_time_rate"] == round(1 / 3, 4)
    assert promise["lateness_days"] == [{"days": 0, "orders": 1}, {"days": 1, "orders": 1}]
    assert promise["by_confidence"] == [{"confidence": 0.9, "kept": 1, "resolved": 3, "on_time_rate": 0.3333}]


def test_funnel_and_checkout_panels_carry_the_same_hour_yesterday_for_context(env):
    client, container = env["client"], env["container"]
    repo = TowerRepository(container.engine)
    minute = NOW.replace(second=0) - timedelta(minutes=2)

    def counts(at, views, attempts, ok, refused):
        return [{"minute": at, "stage": stage, "count": n, "latency_ms_sum": 0.0, "latency_count": 0}
                for stage, n in (("page_view", views), ("order_confirmed", ok), ("checkout_attempt", attempts),
                                 ("checkout_succeeded", ok), ("checkout_refused", refused)) if n]

    repo.add_funnel_counts(counts(minute, 100, 10, 4, 2)                             # this hour
                           + counts(minute - timedelta(days=1), 200, 20, 18, 0)      # the same hour yesterday
                           + counts(minute - timedelta(days=1, hours=2), 999, 99, 9, 0))  # outside that window
    _login(client, env["admin"])

    checkout = client.get("/dashboard/api/checkout").json()
    assert checkout["summary"]["success_rate"] == 0.5  # unchanged: 4 of the 8 that could succeed
    assert checkout["yesterday"] == {"attempts": 20, "succeeded": 18, "refused_out_of_stock": 0, "failed": 2,
                                     "success_rate": 0.9}
    funnel = client.get("/dashboard/api/funnel").json()
    assert funnel["steps"][0] == {"stage": "page_view", "count": 100, "from_previous": None, "from_first": 1.0}
    yesterday = {s["stage"]: s for s in funnel["yesterday"]["steps"]}
    assert yesterday["page_view"]["count"] == 200 and yesterday["order_confirmed"]["from_first"] == 0.09
    assert [s["stage"] for s in funnel["yesterday"]["steps"]] == [s["stage"] for s in funnel["steps"]]


def test_checkout_panel_says_when_there_were_no_checkouts_yesterday(env):
    client, container = env["client"], env["container"]
    TowerRepository(container.engine).add_funnel_counts([
        {"minute": NOW.replace(second=0), "stage": "checkout_attempt", "count": 3, "latency_ms_sum": 30.0,
         "latency_count": 3}])
    _login(client, env["admin"])
    assert client.get("/dashboard/api/checkout").json()["yesterday"] == {
        "attempts": 0, "succeeded": 0, "refused_out_of_stock": 0, "failed": 0, "success_rate": None}


def test_payments_panel_tells_a_failover_from_the_configured_order(env):
    client, container = env["client"], env["container"]
    _login(client, env["admin"])
    body = client.get("/dashboard/api/payments").json()
    assert body["order"] == body["configured_order"] == ["primary", "secondary"]
    container.services["payments"].set_processor_order(["secondary", "primary"])  # what the failover rule does
    body = client.get("/dashboard/api/payments").json()
    assert body["order"] == ["secondary", "primary"] and body["configured_order"] == ["primary", "secondary"]
