"""Fraud screening for the worker: gathers recent history from the orders table and applies the pure rules in
:mod:`shopfloor.domain.fraud`. Runs after acceptance, never in the checkout request."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, false, func, or_, select

from ..config import Settings
from ..domain.clock import Clock, ensure_utc
from ..domain.fraud import FraudAssessment, FraudPolicy, OrderFacts, RecentOrder, assess_order
from ..store.tables import orders

#: Recent orders read for the velocity rules (a bound, so a flash sale cannot make screening unbounded).
MAX_RECENT_ORDERS = 5000


def policy_from_settings(settings: Settings) -> FraudPolicy:
    return FraudPolicy(
        hold_threshold=settings.fraud_hold_threshold,
        velocity_window_s=settings.fraud_velocity_window_s,
        max_orders_per_customer=settings.fraud_velocity_max_per_customer,
        max_orders_per_token=settings.fraud_velocity_max_per_token,
        amount_outlier_factor=settings.fraud_amount_outlier_factor,
    )


def _country(value: Any) -> str | None:
    return str(value).upper() if value else None


def customer_of(ship_to: Mapping[str, Any], payment: Mapping[str, Any]) -> str | None:
    value = payment.get("customer_id") or ship_to.get("email") or ship_to.get("customer_id")
    return str(value).lower() if value else None


def facts_from_order(order: Mapping[str, Any]) -> OrderFacts:
    """Facts from an ``orders`` row (or the same shape as a dict).

    Looked up: customer = ``payment.customer_id`` or ``ship_to.email``; card = ``payment.token``; countries =
    ``ship_to.country``, ``payment.billing_country`` (or ``payment.billing_address.country``),
    ``payment.card_country``. Missing facts simply do not fire their rule.
    """
    ship_to = order.get("ship_to") or {}
    payment = order.get("payment") or {}
    billing = payment.get("billing_country") or (payment.get("billing_address") or {}).get("country")
    return OrderFacts(
        order_id=str(order["id"]),
        amount=int(order["total"]),
        currency=str(order["currency"]),
        placed_at=ensure_utc(order["created_at"]),
        customer_id=customer_of(ship_to, payment),
        token=payment.get("token"),
        ship_country=_country(ship_to.get("country")),
        billing_country=_country(billing),
        card_country=_country(payment.get("card_country")),
    )


def _same_buyer_or_card(customer_id: str | None, token: str | None):
    """SQL filter for the orders the velocity rules can count: same card token or same customer (any of the fields
    :func:`customer_of` reads, compared case-insensitively). A superset is fine (the rules re-check in Python); it
    keeps the read to a handful of rows instead of decoding every order of the window, which under a burst meant
    thousands of JSON documents per screened order. Without a customer or a token nothing can match."""
    conditions = []
    if token:
        conditions.append(orders.c.payment["token"].as_string() == token)
    if customer_id:
        conditions.extend(func.lower(doc[field].as_string()) == customer_id for doc, field in (
            (orders.c.payment, "customer_id"), (orders.c.ship_to, "email"), (orders.c.ship_to, "customer_id")))
    return or_(*conditions) if conditions else false()


class FraudScreen:
    """``assess(order_id)`` -> :class:`FraudAssessment` (score, hold flag, reasons)."""

    def __init__(self, engine: Engine, policy: FraudPolicy, clock: Clock, *, history_orders: int = 500) -> None:
        self._engine = engine
        self.policy = policy
        self._clock = clock
        self._history_orders = history_orders

    def assess(self, order_id: str) -> FraudAssessment:
        with self._engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            row = conn.execute(select(orders).where(orders.c.id == order_id)).mappings().first()
            if row is None:
                conn.rollback()
                raise LookupError(f"order {order_id} not found")
            facts = facts_from_order(row)
            since = facts.placed_at - timedelta(seconds=self.policy.velocity_window_s)
            # The few fields the rules read, extracted by the database: whole payment / ship-to documents
            # decoded in Python cost ~10 ms per screened order once a card was used a few hundred times.
            recent_rows = conn.execute(
                select(orders.c.id, orders.c.created_at,
                       orders.c.payment["token"].as_string().label("token"),
                       orders.c.payment["customer_id"].as_string().label("p_customer"),
                       orders.c.ship_to["email"].as_string().label("s_email"),
                       orders.c.ship_to["customer_id"].as_string().label("s_customer"))
                .where(orders.c.created_at >= since, orders.c.created_at <= facts.placed_at,
                       _same_buyer_or_card(facts.customer_id, facts.token))
                .order_by(orders.c.created_at.desc())
                .limit(MAX_RECENT_ORDERS)
            ).mappings().all()
            typical = conn.execute(
                select(orders.c.total)
                .where(orders.c.currency == facts.currency, orders.c.id != order_id)
                .order_by(orders.c.created_at.desc())
                .limit(self._history_orders)
            ).scalars().all()
            conn.rollback()
        recent = [
            RecentOrder(
                order_id=r["id"],
                placed_at=ensure_utc(r["created_at"]),
                customer_id=customer_of({"email": r["s_email"], "customer_id": r["s_customer"]},
                                        {"customer_id": r["p_customer"]}),
                token=r["token"],
            )
            for r in recent_rows
        ]
        return assess_order(facts, recent, [int(a) for a in typical], self.policy)
