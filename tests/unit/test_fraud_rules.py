"""Explainable fraud rules (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from shopfloor.domain.fraud import FraudPolicy, OrderFacts, RecentOrder, Velocity, assess_order, velocity_of

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
POLICY = FraudPolicy(hold_threshold=60, max_orders_per_customer=3, max_orders_per_token=2, min_history_for_outliers=5)


def facts(**kw):
    base = dict(order_id="o", amount=5000, currency="USD", placed_at=T0, customer_id="c@x", token="tok",
                ship_country="US", billing_country="US", card_country="US")
    return OrderFacts(**{**base, **kw})


def recent(n, *, customer="c@x", token="other", minutes_ago=5):
    return [RecentOrder(f"r{i}", T0 - timedelta(minutes=minutes_ago), customer, token) for i in range(n)]


def test_an_ordinary_order_scores_zero_and_is_not_held():
    a = assess_order(facts(), recent(1), [5000] * 10, POLICY)
    assert a.score == 0 and not a.hold and a.reasons == ()


def test_customer_velocity_fires_above_the_limit_inside_the_window_only():
    assert assess_order(facts(), recent(2), [], POLICY).score == 0  # 3 orders = the limit
    a = assess_order(facts(), recent(3), [], POLICY)
    assert [r.rule for r in a.reasons] == ["customer_velocity"] and a.reasons[0].data["orders"] == 4
    assert assess_order(facts(), recent(3, minutes_ago=120), [], POLICY).score == 0


def test_card_velocity_counts_orders_with_the_same_token_across_customers():
    a = assess_order(facts(), recent(2, customer="someone-else", token="tok"), [], POLICY)
    assert [r.rule for r in a.reasons] == ["card_velocity"] and "3 orders with this card" in a.reasons[0].detail


def test_amount_outliers_need_enough_history_and_compare_with_the_median():
    assert assess_order(facts(amount=100_000), [], [5000] * 4, POLICY).score == 0
    a = assess_order(facts(amount=100_000), [], [4000, 5000, 6000, 5000, 5000], POLICY)
    assert a.reasons[0].rule == "amount_outlier" and a.reasons[0].data["factor"] == 20.0


def test_country_mismatches_are_reasons_and_missing_countries_are_not():
    a = assess_order(facts(billing_country="FR", card_country="NG"), [], [], POLICY)
    assert {r.rule for r in a.reasons} == {"billing_country_mismatch", "card_country_mismatch"}
    assert assess_order(facts(billing_country=None, card_country=None), [], [], POLICY).score == 0
    assert assess_order(facts(billing_country="us"), [], [], POLICY).score == 0


def test_a_high_score_holds_the_order_and_the_score_is_capped():
    a = assess_order(
        facts(amount=90_000, billing_country="FR", card_country="NG"),
        recent(5, token="tok"),
        [5000] * 10,
        POLICY,
    )
    assert a.hold and a.score == 100
    assert a.to_json()["reasons"][0]["rule"] == "customer_velocity"


def test_the_order_itself_is_not_counted_twice():
    mine = [RecentOrder("o", T0, "c@x", "tok")]
    assert assess_order(facts(), mine + recent(2), [], POLICY).score == 0


def test_counts_from_the_store_score_like_the_same_orders_counted_here():
    """A store that counts the window itself passes ``velocity``; the score is the one the orders would give."""
    counted = velocity_of(facts(), recent(3) + recent(2, customer="x", token="tok"), POLICY)
    assert counted == Velocity(customer_orders=4, token_orders=3)
    by_rows = assess_order(facts(), recent(3) + recent(2, customer="x", token="tok"), [], POLICY)
    by_counts = assess_order(facts(), [], [], POLICY, velocity=counted)
    assert by_counts == by_rows and {r.rule for r in by_counts.reasons} == {"customer_velocity", "card_velocity"}
