"""Shopify webhooks in, over HTTP into the real app: HMAC, dedupe, stale deliveries, orders, cancellations and
inventory levels (fixtures are payloads in Shopify's documented shape, under tests/data/shopify)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from shopfloor.api.app import create_app
from shopfloor.bootstrap import build_container, build_worker
from shopfloor.config import Settings
from shopfloor.domain.clock import FixedClock
from shopfloor.integrations import shopify_hmac
from shopfloor.store.forecast_queries import daily_sku_region_demand as daily_demand
from shopfloor.store.integrations_tables import shopify_deliveries
from shopfloor.store.tables import stock
from tests.support.store import new_key, seed

DATA = Path(__file__).parent.parent / "data" / "shopify"
NOW = datetime(2026, 11, 30, 17, 0, tzinfo=timezone.utc)
SHOP = "acme.myshopify.com"
SECRET, OLD_SECRET = "shpss_new_secret_0001", "shpss_old_secret_0000"


def fixture(name: str) -> bytes:
    return (DATA / f"{name}.json").read_bytes()


@pytest.fixture
def client(db_url):
    clock = FixedClock(NOW)
    container = build_container(Settings(database_url=db_url, shopify_webhook_max_age_s=3600), clock=clock)
    seed(container.engine, {"W1": ("north", "DE", ["1"]), "W2": ("south", "DE", ["8"])},
         {"TEA-1": 499, "MUG-1": 1200},
         {("TEA-1", "W1"): 10, ("TEA-1", "W2"): 4, ("MUG-1", "W2"): 5}, now=NOW)
    _, admin = new_key(container.engine, "admin")
    with TestClient(create_app(container)) as c:
        c.container, c.clock = container, clock
        c.admin = {"Authorization": f"Bearer {admin}"}
        c.worker = build_worker(container)
        r = c.put(f"/v1/integrations/shopify/{SHOP}", headers=c.admin, json={
            "secrets": [SECRET, OLD_SECRET], "locations": {"71234567890": "W1"}, "stock_policy": "consume"})
        assert r.status_code == 201, r.text
        yield c
        c.worker.close()


def deliver(client, topic: str, body: bytes, *, webhook_id: str, event_id: str | None = None,
            secret: str = SECRET, triggered_at: datetime | str | None = None, hmac: str | None = None):
    if not isinstance(triggered_at, str):
        triggered_at = (triggered_at or NOW - timedelta(seconds=3)).isoformat()
    headers = {"Content-Type": "application/json", "X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": SHOP,
               "X-Shopify-Webhook-Id": webhook_id, "X-Shopify-API-Version": "2025-10",
               "X-Shopify-Hmac-Sha256": hmac or shopify_hmac(secret, body), "X-Shopify-Triggered-At": triggered_at}
    if event_id:
        headers["X-Shopify-Event-Id"] = event_id
    return client.post(f"/v1/integrations/shopify/{SHOP}/webhooks", content=body, headers=headers)


def levels(client) -> dict[tuple[str, str], tuple[int, int]]:
    with client.container.engine.connect() as conn:
        return {(r.sku, r.warehouse): (int(r.on_hand), int(r.reserved)) for r in conn.execute(sa.select(stock))}


def test_an_order_created_on_shopify_is_imported_with_its_lines_and_consumes_stock(client):
    r = deliver(client, "orders/create", fixture("orders_create"), webhook_id="wh-1", event_id="ev-1")
    assert r.status_code == 200 and r.json() == {"status": "accepted"}
    assert levels(client)[("TEA-1", "W1")] == (10, 0)  # nothing happens before the worker processes it
    client.worker.drain()
    [order] = client.get("/v1/orders", params={"external_id": "5511118291234"}, headers=client.admin).json()
    assert order["source"]["channel"] == f"shopify:{SHOP}"
    assert order["total"] == 3 * 499 + 1200 and order["currency"] == "EUR"
    assert [(l["sku"], l["qty"], l["warehouse"], l["unit_price"]) for l in order["lines"]] == [
        ("TEA-1", 3, "W1", 499), ("MUG-1", 1, "W2", 1200)]
    assert order["created_at"] == "2026-11-30T14:15:02+00:00"
    same = client.get(f"/v1/orders/{order['order_id']}", headers=client.admin).json()
    assert same["status"] == "handed_off" and same["ship_to"] == {"country": "DE", "postal_code": "10115"}
    assert levels(client)[("TEA-1", "W1")] == (7, 0) and levels(client)[("MUG-1", "W2")] == (4, 0)


def test_an_imported_order_counts_as_demand_history(client):
    deliver(client, "orders/create", fixture("orders_create"), webhook_id="wh-1")
    client.worker.drain()
    frame = daily_demand(client.container.engine)
    tea = frame[frame["unique_id"].astype(str).str.contains("TEA-1")]
    assert tea["y"].sum() == 3


def test_a_duplicate_delivery_is_answered_200_and_imported_once(client):
    body = fixture("orders_create")
    assert deliver(client, "orders/create", body, webhook_id="wh-1", event_id="ev-1").json()["status"] == "accepted"
    # The same webhook retried, and the same event through a second subscription (new webhook id).
    assert deliver(client, "orders/create", body, webhook_id="wh-1", event_id="ev-1").json()["status"] == "duplicate"
    assert deliver(client, "orders/create", body, webhook_id="wh-2", event_id="ev-1").json()["status"] == "duplicate"
    client.worker.drain()
    assert len(client.get("/v1/orders", params={"external_id": "5511118291234"}, headers=client.admin).json()) == 1
    assert levels(client)[("TEA-1", "W1")] == (7, 0)


def test_the_same_order_in_a_new_event_is_still_imported_once(client):
    body = fixture("orders_create")
    deliver(client, "orders/create", body, webhook_id="wh-1", event_id="ev-1")
    deliver(client, "orders/create", body, webhook_id="wh-9", event_id="ev-9")
    client.worker.drain()
    assert len(client.get("/v1/orders", params={"external_id": "5511118291234"}, headers=client.admin).json()) == 1


def test_a_bad_hmac_is_refused_with_401_and_nothing_is_stored(client):
    body = fixture("orders_create")
    r = deliver(client, "orders/create", body, webhook_id="wh-1", secret="someone_elses_secret")
    assert r.status_code == 401 and r.json()["error"]["details"][0]["field"] == "X-Shopify-Hmac-Sha256"
    tampered = body.replace(b'"quantity": 3', b'"quantity": 300')
    assert deliver(client, "orders/create", tampered, webhook_id="wh-2", hmac=shopify_hmac(SECRET, body)).status_code == 401
    r = client.post(f"/v1/integrations/shopify/{SHOP}/webhooks", content=body,
                    headers={"X-Shopify-Topic": "orders/create", "X-Shopify-Webhook-Id": "wh-3"})
    assert r.status_code == 401
    with client.container.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(shopify_deliveries)).scalar() == 0


def test_a_delivery_signed_with_the_previous_secret_is_accepted_during_rotation(client):
    r = deliver(client, "orders/create", fixture("orders_create"), webhook_id="wh-1", secret=OLD_SECRET)
    assert r.status_code == 200


def test_an_unknown_shop_gets_the_same_401(client):
    body = fixture("orders_create")
    r = client.post("/v1/integrations/shopify/nobody.myshopify.com/webhooks", content=body, headers={
        "X-Shopify-Topic": "orders/create", "X-Shopify-Webhook-Id": "wh-1",
        "X-Shopify-Hmac-Sha256": shopify_hmac(SECRET, body)})
    assert r.status_code == 401


def test_a_delivery_triggered_too_long_ago_is_refused(client):
    r = deliver(client, "orders/create", fixture("orders_create"), webhook_id="wh-1",
                triggered_at=NOW - timedelta(hours=2))
    assert r.status_code == 400 and r.json()["error"]["code"] == "stale_delivery"
    assert r.json()["error"]["details"][0]["field"] == "X-Shopify-Triggered-At"


def test_a_missing_topic_or_a_body_that_is_not_json_is_a_422_naming_it(client):
    body = b"not json"
    r = deliver(client, "", body, webhook_id="wh-1")
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "X-Shopify-Topic"
    r = deliver(client, "orders/create", body, webhook_id="wh-1")
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "body"


@pytest.mark.parametrize("when", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"])
def test_a_signed_delivery_triggered_at_a_time_outside_years_1_to_9999_in_utc_is_a_422_naming_the_header(
        client, when):
    r = deliver(client, "orders/create", fixture("orders_create"), webhook_id="wh-1", triggered_at=when)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["details"][0]["field"] == "X-Shopify-Triggered-At"
    assert error["message"].startswith("X-Shopify-Triggered-At: ") and "years 1 to 9999" in error["message"]


@pytest.mark.parametrize("body,says", [
    (b"[" * 20_000 + b"]" * 20_000, "nested too deeply"),  # 40 KB: well under the body limit
    (b'{"id": 1, "deep": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", "nested too deeply"),
    (b'{"id": 1, "total_price": NaN}', "NaN"),
    (b'{"id": 1, "total_price": Infinity}', "Infinity"),
    (b'{"id": 1, "total_price": -Infinity}', "-Infinity"),
    (b'{"id": "\xff"}', "not UTF-8"),
])
def test_a_signed_body_nested_too_deeply_or_holding_nan_or_infinity_is_a_422_and_not_stored(client, body, says):
    r = deliver(client, "orders/create", body, webhook_id="wh-1")
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["details"][0]["field"] == "body" and error["message"].startswith("body: ")
    assert says in error["message"]
    with client.container.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(shopify_deliveries)).scalar() == 0


def test_an_oversized_body_is_refused_before_it_is_read(client):
    big = b'{"pad": "' + b"x" * 2_000_000 + b'"}'
    r = deliver(client, "orders/create", big, webhook_id="wh-1")
    assert r.status_code == 413


def test_a_cancelled_order_is_cancelled_here_and_leaves_demand_history(client):
    deliver(client, "orders/create", fixture("orders_create"), webhook_id="wh-1")
    client.worker.drain()
    deliver(client, "orders/cancelled", fixture("orders_cancelled"), webhook_id="wh-2")
    client.worker.drain()
    [order] = client.get("/v1/orders", params={"external_id": "5511118291234"}, headers=client.admin).json()
    assert order["status"] == "cancelled"
    assert daily_demand(client.container.engine).empty


def test_a_cancellation_puts_consumed_stock_back_once_even_when_delivered_twice(client):
    deliver(client, "orders/create", fixture("orders_create"), webhook_id="wh-1", event_id="ev-1")
    client.worker.drain()
    assert levels(client)[("TEA-1", "W1")] == (7, 0) and levels(client)[("MUG-1", "W2")] == (4, 0)
    # The same cancellation twice under new webhook and event ids (a second subscription, a replay by Shopify).
    deliver(client, "orders/cancelled", fixture("orders_cancelled"), webhook_id="wh-2", event_id="ev-2")
    client.worker.drain()
    deliver(client, "orders/cancelled", fixture("orders_cancelled"), webhook_id="wh-3", event_id="ev-3")
    client.worker.drain()
    assert levels(client)[("TEA-1", "W1")] == (10, 0) and levels(client)[("MUG-1", "W2")] == (5, 0)
    from shopfloor.store.tables import outbox, reservations

    with client.container.engine.connect() as conn:
        states = {r.sku: r.state for r in conn.execute(sa.select(reservations.c.sku, reservations.c.state))}
        cancelled_events = conn.execute(sa.select(sa.func.count()).select_from(outbox).where(
            outbox.c.type == "OrderCancelled")).scalar()
    assert states == {"TEA-1": "restocked", "MUG-1": "restocked"} and cancelled_events == 1


def test_a_cancellation_before_its_order_waits_and_is_applied_when_the_order_arrives(client):
    deliver(client, "orders/cancelled", fixture("orders_cancelled"), webhook_id="wh-1", event_id="ev-1")
    client.worker.drain()
    with client.container.engine.connect() as conn:
        status = conn.execute(sa.select(shopify_deliveries.c.status).where(
            shopify_deliveries.c.webhook_id == "wh-1")).scalar()
    assert status == "waiting"
    deliver(client, "orders/create", fixture("orders_create"), webhook_id="wh-2", event_id="ev-2")
    client.worker.drain()
    [order] = client.get("/v1/orders", params={"external_id": "5511118291234"}, headers=client.admin).json()
    assert order["status"] == "cancelled"
    assert levels(client)[("TEA-1", "W1")] == (10, 0) and levels(client)[("MUG-1", "W2")] == (5, 0)
    with client.container.engine.connect() as conn:
        statuses = dict(conn.execute(sa.select(shopify_deliveries.c.webhook_id, shopify_deliveries.c.status)).all())
    assert statuses == {"wh-1": "processed", "wh-2": "processed"}
    # A late replay of the cancellation changes nothing more.
    deliver(client, "orders/cancelled", fixture("orders_cancelled"), webhook_id="wh-3", event_id="ev-3")
    client.worker.drain()
    assert levels(client)[("TEA-1", "W1")] == (10, 0) and levels(client)[("MUG-1", "W2")] == (5, 0)


def test_a_reserve_policy_reserves_and_a_cancellation_releases_once(client):
    client.put(f"/v1/integrations/shopify/{SHOP}", headers=client.admin, json={
        "secrets": [SECRET], "locations": {"71234567890": "W1"}, "stock_policy": "reserve"})
    deliver(client, "orders/create", fixture("orders_create"), webhook_id="wh-1")
    client.worker.drain()
    assert levels(client)[("TEA-1", "W1")] == (10, 3)
    deliver(client, "orders/cancelled", fixture("orders_cancelled"), webhook_id="wh-2")
    client.worker.drain()
    assert levels(client)[("TEA-1", "W1")] == (10, 0)
    deliver(client, "orders/cancelled", fixture("orders_cancelled"), webhook_id="wh-3")
    client.worker.drain()
    assert levels(client)[("TEA-1", "W1")] == (10, 0) and levels(client)[("MUG-1", "W2")] == (5, 0)


def _level(available: int, updated_at: str) -> bytes:
    p = json.loads(fixture("inventory_levels_update"))
    p["available"], p["updated_at"] = available, updated_at
    return json.dumps(p).encode()


def test_inventory_levels_need_the_item_mapping_that_products_update_fills(client):
    deliver(client, "inventory_levels/update", _level(42, "2026-11-30T11:00:00-05:00"), webhook_id="wh-1")
    client.worker.drain()
    assert levels(client)[("TEA-1", "W1")] == (10, 0)  # unmapped item: nothing changes
    deliver(client, "products/update", fixture("products_update"), webhook_id="wh-2")
    deliver(client, "inventory_levels/update", _level(42, "2026-11-30T11:05:00-05:00"), webhook_id="wh-3")
    client.worker.drain()
    assert levels(client)[("TEA-1", "W1")] == (42, 0)


def test_an_older_inventory_level_arriving_late_never_overwrites_a_newer_one(client):
    r = client.put(f"/v1/integrations/shopify/{SHOP}/inventory-items/46011118291001", headers=client.admin,
                   json={"sku": "TEA-1"})
    assert r.status_code == 200
    deliver(client, "inventory_levels/update", _level(30, "2026-11-30T11:10:00-05:00"), webhook_id="wh-new")
    deliver(client, "inventory_levels/update", _level(99, "2026-11-30T11:00:00-05:00"), webhook_id="wh-old")
    client.worker.drain()
    assert levels(client)[("TEA-1", "W1")] == (30, 0)
    with client.container.engine.connect() as conn:
        outcome = conn.execute(sa.select(shopify_deliveries.c.outcome).where(
            shopify_deliveries.c.webhook_id == "wh-old")).scalar()
    assert "newer level" in outcome


def test_shop_configuration_names_the_field_it_refuses(client):
    r = client.put(f"/v1/integrations/shopify/{SHOP}", headers=client.admin, json={
        "secrets": [SECRET], "locations": {"1": "NOPE"}, "stock_policy": "consume"})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "locations.1"
    r = client.put(f"/v1/integrations/shopify/{SHOP}", headers=client.admin, json={
        "secrets": [SECRET], "stock_policy": "hoard"})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "stock_policy"
    r = client.put(f"/v1/integrations/shopify/{SHOP}", json={"secrets": [SECRET]})
    assert r.status_code == 401
    body = client.get("/v1/orders", params={"external_id": "x"}, headers=client.admin)
    assert body.status_code == 200 and body.json() == []


def test_a_level_dropping_to_the_threshold_publishes_stock_low(client):
    from shopfloor.store.tables import outbox

    client.put(f"/v1/integrations/shopify/{SHOP}/inventory-items/46011118291001", headers=client.admin,
               json={"sku": "TEA-1"})
    deliver(client, "inventory_levels/update", _level(3, "2026-11-30T11:10:00-05:00"), webhook_id="wh-1")
    client.worker.drain()
    with client.container.engine.connect() as conn:
        [payload] = conn.execute(sa.select(outbox.c.payload).where(outbox.c.type == "StockLow")).scalars().all()
    assert payload == {"sku": "TEA-1", "warehouse": "W1", "available": 3, "threshold": 5}
