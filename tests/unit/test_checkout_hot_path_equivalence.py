"""The checkout hot path's shortcuts give what the general code gives."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from shopfloor.domain.clock import ensure_utc
from shopfloor.domain.promise import PromiseStatus
from shopfloor.domain.stock import OrderLineRequest, merge_lines
from shopfloor.orders.service import combine_promises
from shopfloor.promise.engine import Promise
from shopfloor.tower.service import FunnelBuffer, aggregate_events


def _promise(deliver_by, ship_by, provisional, reasons, status=PromiseStatus.IN_STOCK):
    return Promise("SKU1", 2, status, "wh1", ship_by, deliver_by, deliver_by, 0.9, provisional, reasons, 5)


@pytest.mark.parametrize("p", [
    _promise(date(2026, 12, 9), date(2026, 12, 7), False, ("b", "a", "b")),
    _promise(date(2026, 12, 9), None, True, ()),
    _promise(None, None, False, ("x",), PromiseStatus.UNAVAILABLE),
])
def test_a_one_line_order_combines_as_the_general_fold_does(p):
    # Two copies of the same line fold to the same order-level fields as the line alone.
    general = combine_promises([p, p])
    assert combine_promises([p]) == {**general, "lines": [p.to_dict()]}


def test_merging_one_line_keeps_it_and_merging_several_still_sums():
    one = [OrderLineRequest("A", 2)]
    assert merge_lines(one) == one and merge_lines(tuple(one)) == one
    assert merge_lines([OrderLineRequest("A", 1), OrderLineRequest("B", 1), OrderLineRequest("A", 2)]) == [
        OrderLineRequest("A", 3), OrderLineRequest("B", 1)]
    assert merge_lines(iter(one)) == one


def test_ensure_utc_returns_utc_values_as_they_are_and_converts_the_others():
    from datetime import timedelta

    utc = datetime(2026, 12, 4, 7, 0, tzinfo=timezone.utc)
    assert ensure_utc(utc) is utc
    assert ensure_utc(datetime(2026, 12, 4, 7, 0)) == utc
    assert ensure_utc(datetime(2026, 12, 4, 8, 0, tzinfo=timezone(timedelta(hours=1)))) == utc
    assert ensure_utc(datetime(2026, 12, 4, 8, 0, tzinfo=timezone(timedelta(hours=1)))).tzinfo is timezone.utc


class _Repo:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add_funnel_counts(self, rows):
        self.rows.extend(rows)
        return len(rows)


def test_funnel_stages_fold_into_the_cells_rows_fold_into():
    minute = datetime(2026, 12, 4, 7, 5, tzinfo=timezone.utc)
    stages = [("checkout_attempt", 12.5), ("promise_lookup", None), ("checkout_succeeded", 12.5)]
    by_rows, by_stages = FunnelBuffer(_Repo(), flush_interval_s=60), FunnelBuffer(_Repo(), flush_interval_s=60)
    for _ in range(3):
        by_rows.add(aggregate_events([(minute, s, l) for s, l in stages]))
        by_stages.add_stages(minute, stages)
    assert by_rows._pending == by_stages._pending
    by_rows.flush(), by_stages.flush()
    assert by_rows.repo.rows == by_stages.repo.rows
