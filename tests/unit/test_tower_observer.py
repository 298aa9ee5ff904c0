"""The buy path's funnel stages: a sold-out refusal is recorded apart from a failed checkout."""

from __future__ import annotations

from datetime import datetime, timezone

from prometheus_client import CollectorRegistry

from shopfloor.domain.clock import FixedClock
from shopfloor.tower.metrics import FunnelMetrics
from shopfloor.tower.monitor import DEFAULT_METRICS
from shopfloor.tower.observer import FunnelObserver
from shopfloor.tower.funnel import checkout_success_rate

NOW = datetime(2026, 11, 27, 12, 0, 30, tzinfo=timezone.utc)


class RecordingBuffer:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, rows) -> None:
        self.rows.extend(rows)

    def stages(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r["stage"]] = out.get(r["stage"], 0) + r["count"]
        return out


def observer() -> tuple[FunnelObserver, RecordingBuffer]:
    buffer = RecordingBuffer()
    return FunnelObserver(FunnelMetrics(CollectorRegistry()), buffer, FixedClock(NOW)), buffer


def test_a_sold_out_refusal_is_recorded_as_refused_not_as_a_failure():
    obs, buffer = observer()
    obs.checkout_finished(409, 0.01, {"error": {"code": "out_of_stock", "message": "sold out"}}, None, False)
    assert buffer.stages() == {"checkout_attempt": 1, "checkout_refused": 1}


def test_other_conflicts_and_declines_are_not_counted_as_refusals():
    obs, buffer = observer()
    obs.checkout_finished(409, 0.01, {"error": {"code": "idempotency_in_progress"}}, None, False)
    obs.checkout_finished(402, 0.01, {"error": {"code": "payment_declined"}}, {"processor": "p", "outcome": "declined"},
                          False)
    assert "checkout_refused" not in buffer.stages() and buffer.stages()["checkout_attempt"] == 2


def test_the_success_rate_leaves_refusals_out():
    assert checkout_success_rate(attempts=10, succeeded=6, refused=2) == 0.75
    assert checkout_success_rate(attempts=3, succeeded=0, refused=3) is None  # nothing could have succeeded


def test_the_anomaly_monitor_judges_checkouts_without_refusals():
    rows = {"checkout_attempt": {"count": 10}, "checkout_succeeded": {"count": 6}, "checkout_refused": {"count": 2}}
    assert DEFAULT_METRICS["checkout_success_rate"](rows) == 0.75


def test_the_observers_rollup_rows_are_what_aggregating_its_events_gives():
    from shopfloor.tower.funnel import minute_of
    from shopfloor.tower.service import aggregate_events

    obs, buffer = observer()
    obs.checkout_finished(201, 0.25, {}, {"processor": "p1", "outcome": "approved"}, True)
    expected = aggregate_events([(NOW, stage, latency) for stage, latency in (
        ("checkout_attempt", 250.0), ("promise_lookup", None), ("reservation_ok", None), ("payment_ok", None),
        ("checkout_succeeded", 250.0))])
    key = lambda r: r["stage"]  # noqa: E731
    assert sorted(buffer.rows, key=key) == sorted(expected, key=key)
    assert all(r["minute"] == minute_of(NOW) for r in buffer.rows)


def test_the_observer_counts_each_outcome_on_its_own_labelled_metric():
    obs, _ = observer()
    for status, payment in ((201, {"processor": "p1", "outcome": "approved"}), (201, {"processor": "p1",
                            "outcome": "approved"}), (402, {"processor": "p2", "outcome": "declined"})):
        obs.checkout_finished(status, 0.01, {}, payment, False)
    registry = obs.metrics.registry
    value = registry.get_sample_value
    assert value("shopfloor_checkout_attempts_total", {"outcome": "accepted"}) == 2
    assert value("shopfloor_checkout_attempts_total", {"outcome": "declined"}) == 1
    assert value("shopfloor_checkout_payments_total", {"processor": "p1", "outcome": "approved"}) == 2
    assert value("shopfloor_reservations_total", {"outcome": "reserved"}) == 3
