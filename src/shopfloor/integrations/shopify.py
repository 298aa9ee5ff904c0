"""Shopify webhooks in: shop configuration, the receiving step (verify, store raw, answer fast) and the processing
step (an outbox handler).

Receiving does only what must happen before the 200: check ``X-Shopify-Hmac-Sha256`` (base64 HMAC-SHA256 of the
raw body, constant-time, against every secret of the shop so a rotation never drops deliveries), refuse a delivery
whose ``X-Shopify-Triggered-At`` is too old, and store the raw body with an outbox event in one transaction.
A delivery whose webhook id or event id was seen before is answered 200 and not stored again. Processing then runs
on the worker: ``orders/create`` imports the order (stock per the shop's policy), ``orders/cancelled`` cancels it
and gives its stock back (a cancellation that arrives before its order waits, with status ``waiting``, and is
applied when the order arrives),
``inventory_levels/update`` sets the stock level of the mapped warehouse unless a newer level was already applied,
``products/update`` fills the inventory-item -> SKU mapping.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping, Sequence

from sqlalchemy import Engine, delete, select, update

from ..domain.clock import Clock, OutOfUtcRange, ensure_utc
from ..domain.errors import DomainError, InvalidInput, NotFound
from ..orders.outbox import OutboxEvent
from ..store.engine import dialect_insert
from ..store.integrations_tables import (
    shopify_deliveries,
    shopify_inventory_items,
    shopify_inventory_levels,
    shopify_pending_cancellations,
    shopify_shops,
)
from ..store.orders_repo import enqueue_event
from ..store.tables import skus, stock, warehouses
from .orders_in import STOCK_POLICIES, ImportedLine, ImportedOrder, OrderWriter, publish_stock_low, to_minor_units

log = logging.getLogger(__name__)

TOPICS = ("orders/create", "orders/cancelled", "inventory_levels/update", "products/update")
DELIVERY_RECEIVED = "ShopifyDeliveryReceived"


class WebhookUnauthorized(DomainError):
    code = "invalid_signature"
    status = 401


class StaleDelivery(DomainError):
    code = "stale_delivery"
    status = 400


def shopify_hmac(secret: str, body: bytes) -> str:
    """The ``X-Shopify-Hmac-Sha256`` value Shopify sends for ``body``."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify_shopify_hmac(secrets: Sequence[str], body: bytes, header: str | None) -> bool:
    """True when ``header`` matches ``body`` under any of ``secrets`` (every one compared in constant time)."""
    if not header:
        return False
    given = header.strip().encode()
    ok = False
    for secret in secrets:
        ok |= hmac.compare_digest(shopify_hmac(secret, body).encode(), given)
    return ok


def channel_of(shop: str) -> str:
    return f"shopify:{shop}"


def _parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time in UTC (naive read as UTC); ``ValueError`` when it is not one, or when its UTC equivalent
    is outside years 1 to 9999 (:class:`~shopfloor.domain.clock.OutOfUtcRange`)."""
    if not value:
        return None
    return ensure_utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def parse_webhook_body(body: bytes) -> tuple[str, dict[str, Any]]:
    """The body as text and as a JSON object; ``InvalidInput`` (422 naming ``body``) when it is not one: not UTF-8,
    not JSON, NaN or Infinity (Python's reader takes them; JSON has no such values), nested deeper than the reader
    can follow, or not an object."""
    problem = "a Shopify webhook body is a JSON object"
    try:
        text = body.decode("utf-8")
        payload = json.loads(text, parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"body: not UTF-8 (byte {exc.start}); {problem}", [{"field": "body"}]) from None
    except RecursionError:
        raise InvalidInput(f"body: the JSON is nested too deeply; {problem}", [{"field": "body"}]) from None
    except ValueError as exc:
        raise InvalidInput(f"body: not JSON ({exc}); {problem}", [{"field": "body"}]) from None
    if not isinstance(payload, dict):
        raise InvalidInput(f"body: {problem}", [{"field": "body"}])
    return text, payload


@dataclass(frozen=True, slots=True)
class Receipt:
    status: str  # accepted | duplicate
    delivery_id: int | None


class ShopifyIntegration:
    """Configuration, receiving and processing of one store's Shopify shops."""

    name = "shopify_inbound"
    event_types = frozenset({DELIVERY_RECEIVED})

    def __init__(self, engine: Engine, clock: Clock, writer: OrderWriter, *, max_age_s: float = 6 * 3600) -> None:
        self.engine = engine
        self.clock = clock
        self.writer = writer
        self.max_age_s = max_age_s
        self._insert_delivery = dialect_insert(engine, shopify_deliveries).on_conflict_do_nothing()

    # --- configuration ---------------------------------------------------------------------------------------

    def configure(self, shop: str, secrets: Sequence[str], locations: Mapping[str, str], stock_policy: str
                  ) -> tuple[dict[str, Any], bool]:
        if stock_policy not in STOCK_POLICIES:
            raise InvalidInput(f"stock_policy: choose one of {', '.join(STOCK_POLICIES)}",
                               [{"field": "stock_policy"}])
        now = self.clock.now()
        with self.engine.begin() as conn:
            known = {r[0] for r in conn.execute(select(warehouses.c.id).where(
                warehouses.c.id.in_(sorted(set(locations.values())))))}
            for loc, wh in sorted(locations.items()):
                if wh not in known:
                    raise InvalidInput(f"locations.{loc}: no warehouse {wh}",
                                       [{"field": f"locations.{loc}", "warehouse": wh}])
            values = {"secrets": list(secrets), "locations": dict(locations), "stock_policy": stock_policy,
                      "updated_at": now}
            created = conn.execute(update(shopify_shops).where(shopify_shops.c.shop == shop)
                                   .values(**values)).rowcount == 0
            if created:
                conn.execute(shopify_shops.insert().values(shop=shop, **values))
        return self.describe(shop), created

    def describe(self, shop: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = self._shop(conn, shop)
        return {"shop": row.shop, "locations": row.locations, "stock_policy": row.stock_policy,
                "secrets": len(row.secrets), "updated_at": row.updated_at.isoformat()}

    def map_inventory_item(self, shop: str, inventory_item_id: str, sku: str) -> dict[str, Any]:
        now = self.clock.now()
        with self.engine.begin() as conn:
            self._shop(conn, shop)
            self._upsert_items(conn, shop, {inventory_item_id: sku}, now)
        return {"shop": shop, "inventory_item_id": inventory_item_id, "sku": sku}

    def _shop(self, conn, shop: str):
        row = conn.execute(select(shopify_shops).where(shopify_shops.c.shop == shop)).first()
        if row is None:
            raise NotFound(f"shop: no Shopify shop {shop} is configured", [{"field": "shop", "shop": shop}])
        return row

    @staticmethod
    def _upsert_items(conn, shop: str, items: Mapping[str, str], now: datetime) -> None:
        stmt = dialect_insert(conn, shopify_inventory_items)
        stmt = stmt.on_conflict_do_update(index_elements=["shop", "inventory_item_id"],
                                          set_={"sku": stmt.excluded.sku, "updated_at": stmt.excluded.updated_at})
        conn.execute(stmt, [{"shop": shop, "inventory_item_id": k, "sku": v, "updated_at": now}
                            for k, v in items.items()])

    # --- receiving -------------------------------------------------------------------------------------------

    def receive(self, shop: str, body: bytes, headers: Mapping[str, str]) -> Receipt:
        """Verify and store one delivery; raises 401/400/404/422 domain errors. Never processes it inline."""
        with self.engine.connect() as conn:
            row = conn.execute(select(shopify_shops.c.secrets).where(shopify_shops.c.shop == shop)).first()
        # An unknown shop gets the same 401 as a bad signature: nothing tells a prober which shops exist.
        if row is None or not verify_shopify_hmac(row.secrets, body, headers.get("x-shopify-hmac-sha256")):
            raise WebhookUnauthorized("X-Shopify-Hmac-Sha256: the signature does not match this shop's secrets",
                                      [{"field": "X-Shopify-Hmac-Sha256"}])
        topic = headers.get("x-shopify-topic") or ""
        webhook_id = headers.get("x-shopify-webhook-id") or ""
        event_id = headers.get("x-shopify-event-id") or None
        for name, value in (("X-Shopify-Topic", topic), ("X-Shopify-Webhook-Id", webhook_id)):
            if not value or len(value) > 100:
                raise InvalidInput(f"{name}: the header is required (at most 100 characters)", [{"field": name}])
        if event_id is not None and len(event_id) > 100:
            raise InvalidInput("X-Shopify-Event-Id: at most 100 characters", [{"field": "X-Shopify-Event-Id"}])
        now = self.clock.now()
        try:
            triggered = _parse_time(headers.get("x-shopify-triggered-at"))
        except OutOfUtcRange as exc:
            raise InvalidInput(f"X-Shopify-Triggered-At: {exc}", [{"field": "X-Shopify-Triggered-At"}]) from None
        except ValueError:
            raise InvalidInput("X-Shopify-Triggered-At: not an ISO 8601 time",
                               [{"field": "X-Shopify-Triggered-At"}]) from None
        if triggered is not None and (now - triggered).total_seconds() > self.max_age_s:
            raise StaleDelivery(f"X-Shopify-Triggered-At: the delivery is older than {self.max_age_s:.0f} s",
                                [{"field": "X-Shopify-Triggered-At", "triggered_at": triggered.isoformat(),
                                  "max_age_s": self.max_age_s}])
        text, _ = parse_webhook_body(body)
        with self.engine.begin() as conn:
            delivery_id = conn.execute(self._insert_delivery.values(
                shop=shop, webhook_id=webhook_id, event_id=event_id, topic=topic, triggered_at=triggered,
                body=text, status="received", outcome=None, received_at=now,
            ).returning(shopify_deliveries.c.id)).scalar()
            if delivery_id is None:  # the webhook id or the event id was seen before
                return Receipt("duplicate", None)
            enqueue_event(conn, DELIVERY_RECEIVED, f"shopify:{shop}",
                          {"delivery_id": delivery_id, "shop": shop, "topic": topic}, now)
        return Receipt("accepted", delivery_id)

    # --- processing (outbox handler) -------------------------------------------------------------------------

    def handle(self, event: OutboxEvent) -> None:
        delivery_id = int(event.payload["delivery_id"])
        with self.engine.begin() as conn:
            d = conn.execute(select(shopify_deliveries).where(shopify_deliveries.c.id == delivery_id)).first()
            if d is None or d.status != "received":
                return  # processed by an earlier run of this handler
            shop = self._shop(conn, d.shop)
            payload = json.loads(d.body)
            try:
                status, outcome = self._apply(conn, shop, d.topic, payload, delivery_id)
            except (KeyError, TypeError, ValueError) as exc:
                status, outcome = "ignored", f"malformed {d.topic} payload: {type(exc).__name__}: {exc}"
            conn.execute(update(shopify_deliveries).where(shopify_deliveries.c.id == delivery_id)
                         .values(status=status, outcome=outcome[:2000]))

    def _apply(self, conn, shop, topic: str, payload: dict[str, Any], delivery_id: int) -> tuple[str, str]:
        if topic == "orders/create":
            order = self._order(shop, payload)
            channel = channel_of(shop.shop)
            res = self.writer.write([order], channel=channel, policy=shop.stock_policy, publish=True, conn=conn)
            if res.already:
                return "processed", f"order {order.external_id} was imported before"
            order_id = res.order_ids[order.external_id]
            if self._apply_pending_cancellation(conn, shop.shop, order.external_id):
                return "processed", f"order {order.external_id} imported as {order_id} and cancelled (its " \
                                    "cancellation arrived first)"
            return "processed", f"order {order.external_id} imported as {order_id}"
        if topic == "orders/cancelled":
            external_id = str(payload["id"])
            reason = str(payload.get("cancel_reason") or "cancelled on Shopify")[:300]
            order_id = self.writer.cancel(conn, channel_of(shop.shop), external_id, reason)
            if order_id is None:
                conn.execute(dialect_insert(conn, shopify_pending_cancellations).on_conflict_do_nothing().values(
                    shop=shop.shop, external_id=external_id, delivery_id=delivery_id, reason=reason,
                    received_at=self.clock.now()))
                return "waiting", f"order {external_id} is not imported yet; cancelled when it arrives"
            return "processed", f"order {order_id} cancelled"
        if topic == "inventory_levels/update":
            return self._inventory_level(conn, shop, payload)
        if topic == "products/update":
            items = {str(v["inventory_item_id"]): str(v["sku"]) for v in payload.get("variants", [])
                     if v.get("sku") and v.get("inventory_item_id") is not None}
            if items:
                self._upsert_items(conn, shop.shop, items, self.clock.now())
            return "processed", f"{len(items)} inventory item(s) mapped"
        return "ignored", f"topic {topic} is not handled"

    def _apply_pending_cancellation(self, conn, shop: str, external_id: str) -> bool:
        """Apply a cancellation that was waiting for this order; its delivery becomes ``processed``. A shop's
        deliveries are one outbox aggregate (``shopify:{shop}``), handled one at a time in order, so the
        cancellation's handler and the order's never run side by side and miss each other."""
        pc = shopify_pending_cancellations.c
        row = conn.execute(select(pc.delivery_id, pc.reason).where(pc.shop == shop, pc.external_id == external_id)
                           ).first()
        if row is None:
            return False
        order_id = self.writer.cancel(conn, channel_of(shop), external_id, row.reason)
        conn.execute(delete(shopify_pending_cancellations).where(pc.shop == shop, pc.external_id == external_id))
        conn.execute(update(shopify_deliveries).where(shopify_deliveries.c.id == row.delivery_id).values(
            status="processed", outcome=f"order {order_id} cancelled when the order arrived"))
        return True

    def _order(self, shop, p: dict[str, Any]) -> ImportedOrder:
        currency = str(p.get("currency") or p.get("presentment_currency") or "USD").upper()
        address = p.get("shipping_address") or p.get("billing_address") or {}
        lines = []
        for item in p["line_items"]:
            sku = str(item.get("sku") or "").strip()
            if not sku:
                raise ValueError(f"line item {item.get('id')} has no sku")
            lines.append(ImportedLine(sku, int(item["quantity"]), to_minor_units(item["price"], currency)))
        if not lines:
            raise ValueError("the order has no line items")
        location = p.get("location_id")
        return ImportedOrder(
            external_id=str(p["id"]), created_at=_parse_time(p.get("created_at")) or self.clock.now(),
            currency=currency, country=str(address.get("country_code") or "").upper()[:2],
            postal_code=str(address.get("zip") or "")[:16], lines=tuple(lines),
            warehouse=shop.locations.get(str(location)) if location is not None else None)

    def _inventory_level(self, conn, shop, p: dict[str, Any]) -> tuple[str, str]:
        item, location = str(p["inventory_item_id"]), str(p["location_id"])
        available = int(p["available"]) if p.get("available") is not None else 0
        updated_at = _parse_time(p.get("updated_at")) or self.clock.now()
        lv = shopify_inventory_levels.c
        current = conn.execute(select(lv.level_updated_at).where(
            lv.shop == shop.shop, lv.inventory_item_id == item, lv.location_id == location)).scalar()
        if current is not None and current >= updated_at:
            return "ignored", f"a newer level ({current.isoformat()}) was already applied"
        values = {"available": available, "level_updated_at": updated_at}
        if current is None:
            conn.execute(shopify_inventory_levels.insert().values(
                shop=shop.shop, inventory_item_id=item, location_id=location, **values))
        else:
            conn.execute(update(shopify_inventory_levels).where(
                lv.shop == shop.shop, lv.inventory_item_id == item, lv.location_id == location).values(**values))
        sku = conn.execute(select(shopify_inventory_items.c.sku).where(
            shopify_inventory_items.c.shop == shop.shop, shopify_inventory_items.c.inventory_item_id == item)).scalar()
        warehouse = shop.locations.get(location)
        if sku is None or warehouse is None:
            return "ignored", (f"inventory item {item} has no SKU mapping" if sku is None
                               else f"location {location} is not mapped to a warehouse")
        return "processed", self._set_level(conn, sku, warehouse, max(available, 0))

    def _set_level(self, conn, sku: str, warehouse: str, available: int) -> str:
        """On-hand becomes what the channel reports available plus what is reserved here, so that what can be sold
        from this warehouse is exactly what the channel reports."""
        now = self.clock.now()
        s = stock.c
        prev = conn.execute(select(s.on_hand - s.reserved).where(s.sku == sku, s.warehouse == warehouse)).scalar()
        res = conn.execute(update(stock).where(s.sku == sku, s.warehouse == warehouse).values(
            on_hand=s.reserved + available, updated_at=now))
        if res.rowcount == 1 and prev is not None:
            publish_stock_low(conn, sku, warehouse, int(prev), available, self.writer.stock_low_at, now)
        if res.rowcount == 0:
            if conn.execute(select(skus.c.sku).where(skus.c.sku == sku)).first() is None:
                return f"{sku} is not in the catalog; level not applied"
            conn.execute(stock.insert().values(sku=sku, warehouse=warehouse, on_hand=available, reserved=0,
                                               updated_at=now))
        return f"{sku}@{warehouse}: {available} available"
