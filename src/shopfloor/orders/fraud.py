"""Fraud screening for the worker: gathers recent history from the orders table and applies the pure rules in
:mod:`shopfloor.domain.fraud`. Runs after acceptance, never in the checkout request."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, select

from ..config import Settings
from ..domain.clock import Clock, ensure_utc
from ..domain.fraud import FraudAssessment, FraudPolicy, OrderFacts, Velocity, assess_order
from ..store.tables import orders


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


def _same_customer(customer_id: str):
    """Orders whose customer, as :func:`customer_of` reads it (the first non-empty of ``payment.customer_id``,
    ``ship_to.email``, ``ship_to.customer_id``, lower-cased), is ``customer_id``."""
    first = func.coalesce(*(func.nullif(doc[field].as_string(), "") for doc, field in (
        (orders.c.payment, "customer_id"), (orders.c.ship_to, "email"), (orders.c.ship_to, "customer_id"))))
    return func.lower(first) == customer_id


def _count(conn, *where) -> int:
    return int(conn.execute(select(func.count()).select_from(orders).where(*where)).scalar_one())


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
            # The velocity rules only need counts: the database counts the window's orders by the same card and
            # by the same customer. Reading the rows instead cost ~10 ms per screened order once a card had been
            # used a few hundred times, i.e. during a card-testing burst, when screening must keep up.
            in_window = and_(orders.c.created_at >= since, orders.c.created_at <= facts.placed_at,
                             orders.c.id != order_id)
            velocity = Velocity(
                1 + (_count(conn, in_window, _same_customer(facts.customer_id)) if facts.customer_id else 0),
                1 + (_count(conn, in_window, orders.c.payment["token"].as_string() == facts.token)
                     if facts.token else 0),
            )
            typical = conn.execute(
                select(orders.c.total)
                .where(orders.c.currency == facts.currency, orders.c.id != order_id)
                .order_by(orders.c.created_at.desc())
                .limit(self._history_orders)
            ).scalars().all()
            conn.rollback()
        return assess_order(facts, (), [int(a) for a in typical], self.policy, velocity=velocity)
