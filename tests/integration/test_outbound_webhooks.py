"""Outbound webhooks against real HTTP receivers: signatures checked by the reference ``standardwebhooks``
package, the retry schedule, 410, 429 with Retry-After, timeouts, the SSRF guard and per-endpoint concurrency."""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from shopfloor.api.app import create_app
from shopfloor.bootstrap import build_container
from shopfloor.config import Settings
from shopfloor.domain.clock import FixedClock
from shopfloor.integrations import HttpxSender, TargetGuard, WebhookDispatcher, WebhookFanout, WebhookSubscriptions
from shopfloor.orders.outbox import OutboxEvent, OutboxWorker
from shopfloor.store import orders_repo as repo
from shopfloor.store.engine import make_engine
from shopfloor.store.integrations_tables import webhook_deliveries, webhook_endpoints
from shopfloor.store.tables import outbox
from tests.support.receiver import Receiver
from tests.support.store import new_key


class RecordingAlerts:
    def __init__(self) -> None:
        self.alerts: list[dict] = []

    def add_alert(self, **kw) -> int:
        self.alerts.append(kw)
        return len(self.alerts)


@pytest.fixture
def rig(db_url):
    engine = make_engine(db_url)
    clock = FixedClock(datetime.now(timezone.utc).replace(microsecond=0))
    guard = TargetGuard(frozenset({"127.0.0.1"}))
    alerts = RecordingAlerts()
    subs = WebhookSubscriptions(engine, clock, guard)
    dispatcher = WebhookDispatcher(engine, clock, HttpxSender(timeout_s=0.5), guard, alerts=alerts,
                                   endpoint_concurrency=1, threads=8, timeout_s=0.5, rng=random.Random(7),
                                   disable_after_s=3 * 86_400)
    worker = OutboxWorker(engine, clock, [WebhookFanout(engine, clock)])

    class Rig:
        pass

    r = Rig()
    r.engine, r.clock, r.subs, r.dispatcher, r.worker, r.alerts = engine, clock, subs, dispatcher, worker, alerts

    def emit(event_type: str = "OrderPlaced", order_id: str = "ord_1", **payload) -> str:
        with engine.begin() as conn:
            return repo.enqueue_event(conn, event_type, order_id, {"order_id": order_id, **payload}, clock.now())

    def run() -> None:
        worker.drain()
        dispatcher.drain(timeout_s=20)

    r.emit, r.run = emit, run
    with Receiver(slow_s=2.0) as receiver:
        r.receiver = receiver
        yield r
    dispatcher.close()
    engine.dispose()


def _delivery(engine, endpoint_id: str):
    with engine.connect() as conn:
        return conn.execute(select(webhook_deliveries).where(webhook_deliveries.c.endpoint_id == endpoint_id)).one()


def _endpoint(engine, endpoint_id: str):
    with engine.connect() as conn:
        return conn.execute(select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)).one()


def test_a_delivery_verifies_with_the_reference_standard_webhooks_library(rig):
    ep = rig.subs.create(rig.receiver.url("/ok"), ["order.placed"])
    assert ep["secret"].startswith("whsec_")
    rig.emit("OrderPlaced", "ord_1", total=1299, currency="EUR", payment_token="tok_secret", api_key_id="key_1")
    rig.run()
    [got] = rig.receiver.on("/ok")
    # The reference implementation, not ours, checks the signature (and the timestamp against the real time).
    payload = Webhook(ep["secret"]).verify(got.body, got.headers)
    assert payload["type"] == "order.placed"
    assert payload["data"]["order_id"] == "ord_1" and payload["data"]["total"] == 1299
    assert "payment_token" not in payload["data"] and "api_key_id" not in payload["data"]
    assert got.headers["webhook-id"].startswith("msg_evt_")
    with pytest.raises(Exception):
        Webhook("whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY").verify(got.body, got.headers)
    assert _delivery(rig.engine, ep["id"]).status == "succeeded"


def test_after_a_secret_rotation_deliveries_verify_with_the_new_and_the_old_secret(rig):
    ep = rig.subs.create(rig.receiver.url("/ok"), ["order.placed"])
    rotated = rig.subs.rotate_secret(ep["id"])
    assert rotated["secret"] != ep["secret"] and rotated["secret"].startswith("whsec_")
    rig.emit()
    rig.run()
    [got] = rig.receiver.on("/ok")
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    Webhook(rotated["secret"]).verify(got.body, got.headers)
    Webhook(ep["secret"]).verify(got.body, got.headers)  # receivers not yet moved over still verify
    rig.subs.rotate_secret(ep["id"])
    rig.emit(order_id="ord_2")
    rig.run()
    with pytest.raises(Exception):  # two rotations later the first secret no longer signs
        Webhook(ep["secret"]).verify(rig.receiver.on("/ok")[1].body, rig.receiver.on("/ok")[1].headers)


def test_only_subscribed_event_types_are_delivered(rig):
    ep = rig.subs.create(rig.receiver.url("/ok"), ["order.paid"])
    rig.emit("OrderPlaced", "ord_1")
    rig.emit("PaymentCaptured", "ord_1")
    rig.emit("PaymentAuthorized", "ord_1")  # internal only
    rig.run()
    got = rig.receiver.on("/ok")
    assert [Webhook(ep["secret"]).verify(g.body, g.headers)["type"] for g in got] == ["order.paid"]


def test_a_failing_endpoint_is_retried_on_the_schedule_with_the_same_webhook_id(rig):
    ep = rig.subs.create(rig.receiver.url("/fail"), ["order.placed"])
    rig.emit()
    rig.run()
    first = _delivery(rig.engine, ep["id"])
    assert first.status == "pending" and first.attempts == 1 and first.last_status_code == 500
    # Second attempt is due about 5 s later (+-10% jitter), not before.
    wait = (first.next_attempt_at - rig.clock.now()).total_seconds()
    assert 4.5 <= wait <= 5.5
    rig.clock.advance(seconds=4)
    rig.run()
    assert len(rig.receiver.on("/fail")) == 1
    rig.clock.advance(seconds=2)
    rig.run()
    second = _delivery(rig.engine, ep["id"])
    assert second.attempts == 2
    assert 270 <= (second.next_attempt_at - rig.clock.now()).total_seconds() <= 330  # then 5 min
    ids = {r.headers["webhook-id"] for r in rig.receiver.on("/fail")}
    assert len(ids) == 1
    # All eight attempts used up: the delivery fails for good and the log shows every attempt.
    for _ in range(8):
        rig.clock.advance(hours=11)
        rig.run()
    final = _delivery(rig.engine, ep["id"])
    assert final.status == "failed" and final.attempts == 8
    assert len(rig.receiver.on("/fail")) == 8
    [logged] = rig.subs.deliveries(ep["id"])
    assert [a["status_code"] for a in logged["attempt_log"]] == [500] * 8


def test_an_endpoint_failing_for_days_is_disabled_and_an_alert_raised(rig):
    ep = rig.subs.create(rig.receiver.url("/fail"), ["order.placed"])
    for day in range(5):
        rig.emit(order_id=f"ord_{day}")
        rig.run()
        rig.clock.advance(days=1)
    assert _endpoint(rig.engine, ep["id"]).status == "disabled"
    assert [a["kind"] for a in rig.alerts.alerts] == ["endpoint_disabled"]


def test_a_410_answer_disables_the_endpoint_and_raises_an_alert(rig):
    ep = rig.subs.create(rig.receiver.url("/gone"), ["order.placed"])
    rig.emit()
    rig.run()
    assert _endpoint(rig.engine, ep["id"]).status == "disabled"
    assert _delivery(rig.engine, ep["id"]).status == "failed"
    rig.emit(order_id="ord_2")
    rig.run()
    assert len(rig.receiver.on("/gone")) == 1  # nothing more is sent to it
    assert rig.alerts.alerts and "410" in rig.alerts.alerts[0]["message"]


def test_a_429_with_retry_after_is_retried_after_the_time_it_asked_for(rig):
    ep = rig.subs.create(rig.receiver.url("/busy"), ["order.placed"])
    rig.emit()
    rig.run()
    d = _delivery(rig.engine, ep["id"])
    assert d.last_status_code == 429
    assert (d.next_attempt_at - rig.clock.now()).total_seconds() == pytest.approx(7, abs=0.01)
    rig.clock.advance(seconds=6)
    rig.run()
    assert len(rig.receiver.on("/busy")) == 1
    rig.clock.advance(seconds=2)
    rig.run()
    assert len(rig.receiver.on("/busy")) == 2


def test_a_client_error_is_not_retried_forever(rig):
    ep = rig.subs.create(rig.receiver.url("/bad"), ["order.placed"])
    rig.emit()
    for _ in range(6):
        rig.run()
        rig.clock.advance(hours=11)
    d = _delivery(rig.engine, ep["id"])
    assert d.status == "failed" and d.attempts == 3
    assert len(rig.receiver.on("/bad")) == 3


def test_a_subscriber_that_times_out_is_retried_and_does_not_hold_up_the_others(rig):
    slow = rig.subs.create(rig.receiver.url("/slow"), ["order.placed"])
    fast = rig.subs.create(rig.receiver.url("/ok"), ["order.placed"])
    for i in range(4):
        rig.emit(order_id=f"ord_{i}")
    started = time.monotonic()
    rig.worker.drain()  # the order pipeline's part is the fan-out only: no HTTP on the outbox worker
    assert time.monotonic() - started < 2.0
    rig.dispatcher.pump()
    deadline = time.monotonic() + 5
    while len(rig.receiver.on("/ok")) < 4 and time.monotonic() < deadline:
        rig.dispatcher.pump()
        time.sleep(0.02)
    # All four reached the fast subscriber while the slow one (concurrency 1) still had its first in flight.
    assert len(rig.receiver.on("/ok")) == 4
    assert len(rig.receiver.on("/slow")) == 1
    rig.dispatcher.drain(timeout_s=20)
    with rig.engine.connect() as conn:
        slow_rows = conn.execute(select(webhook_deliveries).where(
            webhook_deliveries.c.endpoint_id == slow["id"])).all()
    assert all(r.status == "pending" for r in slow_rows)
    assert any(r.last_status_code is None and "Timeout" in (r.last_error or "") for r in slow_rows)
    assert [d["status"] for d in rig.subs.deliveries(fast["id"])] == ["succeeded"] * 4


def test_the_background_pump_delivers_as_soon_as_the_fan_out_is_done(rig):
    ep = rig.subs.create(rig.receiver.url("/ok"), ["order.placed"])
    rig.dispatcher.start(poll_s=0.05)
    try:
        for i in range(20):
            rig.emit(order_id=f"ord_{i}")
        rig.worker.drain()
        deadline = time.monotonic() + 10
        while len(rig.receiver.on("/ok")) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        rig.dispatcher.close()
    assert len(rig.receiver.on("/ok")) == 20
    assert {d["status"] for d in rig.subs.deliveries(ep["id"])} == {"succeeded"}


def test_manual_redelivery_sends_the_same_message_again(rig):
    ep = rig.subs.create(rig.receiver.url("/ok"), ["order.placed"])
    rig.emit()
    rig.run()
    [d] = rig.subs.deliveries(ep["id"])
    rig.subs.redeliver(ep["id"], d["id"])
    rig.run()
    got = rig.receiver.on("/ok")
    assert len(got) == 2 and got[0].headers["webhook-id"] == got[1].headers["webhook-id"]


def test_a_redelivered_outbox_event_creates_no_second_delivery(rig):
    ep = rig.subs.create(rig.receiver.url("/ok"), ["order.placed"])
    rig.emit()
    with rig.engine.connect() as conn:
        row = conn.execute(select(outbox)).one()
    event = OutboxEvent(row.id, row.event_id, row.type, row.aggregate_id, row.payload, 0, row.created_at)
    fanout = WebhookFanout(rig.engine, rig.clock)
    fanout.handle(event)
    fanout.handle(event)  # the outbox delivers at least once: a second run must not double the delivery
    assert len(rig.subs.deliveries(ep["id"])) == 1


@pytest.mark.parametrize("url", ["http://10.1.2.3/hook", "http://169.254.169.254/latest/meta-data",
                                 "http://localhost:9/hook", "http://[::1]/hook", "ftp://example.com/x",
                                 "http://192.168.0.7/hook"])
def test_the_ssrf_guard_refuses_internal_targets_that_are_not_allow_listed(url):
    guard = TargetGuard(frozenset())
    with pytest.raises(Exception) as err:
        guard.check(url)
    assert type(err.value).__name__ == "TargetRefused"


@pytest.fixture
def client(db_url):
    container = build_container(Settings(database_url=db_url, webhook_allowed_hosts="127.0.0.1"))
    _, admin = new_key(container.engine, "admin")
    _, shop = new_key(container.engine, "storefront")
    with TestClient(create_app(container)) as c:
        c.container = container
        c.admin = {"Authorization": f"Bearer {admin}"}
        c.shop = {"Authorization": f"Bearer {shop}"}
        yield c


def test_the_admin_api_creates_lists_and_disables_endpoints(client):
    r = client.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/hook", "events": ["order.placed"]},
                    headers=client.admin)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["id"] and body["secret"].startswith("whsec_")
    listed = client.get("/v1/webhook-endpoints", headers=client.admin).json()
    assert [e["id"] for e in listed] == [body["id"]] and "secret" not in listed[0]
    assert client.get(f"/v1/webhook-endpoints/{body['id']}/deliveries", headers=client.admin).json() == []
    r = client.post(f"/v1/webhook-endpoints/{body['id']}/disable", headers=client.admin)
    assert r.json()["status"] == "disabled"
    assert client.get("/v1/webhook-endpoints/we_nope", headers=client.admin).status_code == 404
    assert client.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/", "events": ["order.placed"]},
                       headers=client.shop).status_code == 403


def test_the_admin_api_names_the_field_it_refuses(client):
    r = client.post("/v1/webhook-endpoints", json={"url": "http://10.0.0.8/hook", "events": ["order.placed"]},
                    headers=client.admin)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "url"
    r = client.post("/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/", "events": ["order.exploded"]},
                    headers=client.admin)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"].startswith("events")


def test_the_cli_adds_lists_and_shows_deliveries(tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from shopfloor.cli.main import app
    from shopfloor.store.migrate import upgrade_database

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgrade_database(url)
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", url)
    monkeypatch.setenv("SHOPFLOOR_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")
    runner = CliRunner()
    r = runner.invoke(app, ["webhooks", "add", "http://127.0.0.1:9/hook", "--event", "order.placed", "--json"])
    assert r.exit_code == 0, r.output
    ep = json.loads(r.output)
    assert ep["secret"].startswith("whsec_")
    r = runner.invoke(app, ["webhooks", "list", "--json"])
    assert [e["id"] for e in json.loads(r.output)] == [ep["id"]]
    r = runner.invoke(app, ["webhooks", "deliveries", ep["id"], "--json"])
    assert r.exit_code == 0 and json.loads(r.output) == []
    r = runner.invoke(app, ["webhooks", "add", "http://10.0.0.1/x", "--event", "order.placed"])
    assert r.exit_code == 2 and "url:" in r.output


def test_tower_alerts_and_promise_degradations_reach_their_subscribers(rig):
    from shopfloor.store.tower import TowerRepository

    ep = rig.subs.create(rig.receiver.url("/ok"), ["tower.alert", "promise.degraded"])
    tower = TowerRepository(rig.engine)
    tower.add_alert(at=rig.clock.now(), source="rules", metric="checkout_success_rate", kind="below_band",
                    message="checkout success fell")
    tower.degrade_promises("W1", "carrier strike", 2, rig.clock.now() + timedelta(days=1), rig.clock.now())
    rig.run()
    got = [Webhook(ep["secret"]).verify(g.body, g.headers) for g in rig.receiver.on("/ok")]
    assert sorted(g["type"] for g in got) == ["promise.degraded", "tower.alert"]
    alert = next(g for g in got if g["type"] == "tower.alert")
    assert alert["data"]["metric"] == "checkout_success_rate"


def test_an_order_handed_to_a_carrier_is_published_as_order_shipped(rig):
    from shopfloor.fulfillment.stats import FulfillmentEvent
    from shopfloor.promise.service import build_promise_service
    from shopfloor.config import Settings
    from tests.support.store import seed

    seed(rig.engine, {"W1": ("north", "DE", ["1"])}, {"TEA-1": 499}, {("TEA-1", "W1"): 5})
    with rig.engine.begin() as conn:
        from shopfloor.store.tables import orders as orders_t
        conn.execute(orders_t.insert().values(id="ord_1", status="handed_off", ship_to={}, payment={}, total=0,
                                              currency="EUR", created_at=rig.clock.now(), updated_at=rig.clock.now()))
    ep = rig.subs.create(rig.receiver.url("/ok"), ["order.shipped"])
    promise = build_promise_service(Settings(database_url="sqlite://"), rig.engine, rig.clock)
    at = rig.clock.now()
    promise.ingest([FulfillmentEvent("f1", "ord_1", "handed_to_carrier", at, "W1", carrier="dhl"),
                    FulfillmentEvent("f2", "not_ours", "handed_to_carrier", at, "W1", carrier="dhl")])
    rig.run()
    [got] = rig.receiver.on("/ok")
    body = Webhook(ep["secret"]).verify(got.body, got.headers)
    assert body["type"] == "order.shipped" and body["data"]["order_id"] == "ord_1"
    assert body["data"]["carrier"] == "dhl"
