"""Explainable fraud rules: each rule that fires adds points and a reason; the score decides ``on_hold``.

Pure logic: the caller passes the order's facts and the recent history it needs.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class FraudPolicy:
    """Thresholds and the points each rule adds (the score is capped at 100)."""

    hold_threshold: int = 60
    velocity_window_s: int = 3600
    max_orders_per_customer: int = 5
    max_orders_per_token: int = 3
    amount_outlier_factor: float = 5.0
    min_history_for_outliers: int = 20
    points_customer_velocity: int = 35
    points_token_velocity: int = 45
    points_amount_outlier: int = 30
    points_billing_mismatch: int = 25
    points_card_country_mismatch: int = 20


@dataclass(frozen=True)
class OrderFacts:
    order_id: str
    amount: int
    currency: str
    placed_at: datetime
    customer_id: str | None = None
    token: str | None = None
    ship_country: str | None = None
    billing_country: str | None = None
    card_country: str | None = None


@dataclass(frozen=True)
class RecentOrder:
    order_id: str
    placed_at: datetime
    customer_id: str | None
    token: str | None


@dataclass(frozen=True)
class FraudReason:
    rule: str
    points: int
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FraudAssessment:
    score: int
    hold: bool
    threshold: int
    reasons: tuple[FraudReason, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "hold": self.hold,
            "threshold": self.threshold,
            "reasons": [
                {"rule": r.rule, "points": r.points, "detail": r.detail, **({"data": r.data} if r.data else {})}
                for r in self.reasons
            ],
        }


def _same_country(a: str | None, b: str | None) -> bool | None:
    if not a or not b:
        return None
    return a.strip().upper() == b.strip().upper()


@dataclass(frozen=True)
class Velocity:
    """Orders in the velocity window, this one included: by the same customer and with the same card."""

    customer_orders: int
    token_orders: int


def velocity_of(facts: OrderFacts, recent: Sequence[RecentOrder], policy: FraudPolicy) -> Velocity:
    """Count ``recent`` (other orders, any customer) inside the window by this order's customer and card."""
    window_start = facts.placed_at - timedelta(seconds=policy.velocity_window_s)
    in_window = [
        r for r in recent if r.order_id != facts.order_id and window_start <= r.placed_at <= facts.placed_at
    ]
    return Velocity(
        1 + sum(1 for r in in_window if facts.customer_id and r.customer_id == facts.customer_id),
        1 + sum(1 for r in in_window if facts.token and r.token == facts.token),
    )


def assess_order(
    facts: OrderFacts,
    recent: Sequence[RecentOrder],
    typical_amounts: Sequence[int],
    policy: FraudPolicy,
    *,
    velocity: Velocity | None = None,
) -> FraudAssessment:
    """Score one order.

    ``recent``: other orders placed shortly before (any customer; the rules filter by customer and token inside
    the velocity window). A store that counts them itself passes ``velocity`` instead (``recent`` is then not
    read). ``typical_amounts``: totals of recent orders in the same currency, for the outlier rule.
    """
    reasons: list[FraudReason] = []
    if velocity is None:
        velocity = velocity_of(facts, recent, policy)

    if facts.customer_id:
        n = velocity.customer_orders
        if n > policy.max_orders_per_customer:
            reasons.append(
                FraudReason(
                    "customer_velocity",
                    policy.points_customer_velocity,
                    f"{n} orders by this customer within {policy.velocity_window_s} s "
                    f"(more than {policy.max_orders_per_customer})",
                    {"orders": n, "window_s": policy.velocity_window_s},
                )
            )
    if facts.token:
        n = velocity.token_orders
        if n > policy.max_orders_per_token:
            reasons.append(
                FraudReason(
                    "card_velocity",
                    policy.points_token_velocity,
                    f"{n} orders with this card within {policy.velocity_window_s} s "
                    f"(more than {policy.max_orders_per_token})",
                    {"orders": n, "window_s": policy.velocity_window_s},
                )
            )

    if len(typical_amounts) >= policy.min_history_for_outliers:
        median = statistics.median(typical_amounts)
        if median > 0 and facts.amount > policy.amount_outlier_factor * median:
            reasons.append(
                FraudReason(
                    "amount_outlier",
                    policy.points_amount_outlier,
                    f"amount {facts.amount} is {facts.amount / median:.1f}x the typical order ({median:.0f})",
                    {"amount": facts.amount, "typical": median, "factor": round(facts.amount / median, 2)},
                )
            )

    if _same_country(facts.ship_country, facts.billing_country) is False:
        reasons.append(
            FraudReason(
                "billing_country_mismatch",
                policy.points_billing_mismatch,
                f"ships to {facts.ship_country} but bills to {facts.billing_country}",
                {"ship_country": facts.ship_country, "billing_country": facts.billing_country},
            )
        )
    if _same_country(facts.ship_country, facts.card_country) is False:
        reasons.append(
            FraudReason(
                "card_country_mismatch",
                policy.points_card_country_mismatch,
                f"ships to {facts.ship_country} with a card issued in {facts.card_country}",
                {"ship_country": facts.ship_country, "card_country": facts.card_country},
            )
        )

    score = min(100, sum(r.points for r in reasons))
    return FraudAssessment(score, score >= policy.hold_threshold, policy.hold_threshold, tuple(reasons))
