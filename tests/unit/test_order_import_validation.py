"""Validation of bulk order files, pure: errors by row and field, grouping lines into orders, Shopify's export."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone

import pytest

from shopfloor.integrations import ImportFileError, LONG_COLUMNS, plan_import, to_minor_units


def _rows(text: str):
    reader = csv.DictReader(io.StringIO(text))
    return list(reader.fieldnames), list(reader)


LONG = """external_id,created_at,sku,qty,unit_price,currency,country,postal_code
A1,2026-11-01T10:00:00Z,TEA-1,2,499,EUR,DE,10115
A1,2026-11-01T10:00:00Z,MUG-1,1,1200,EUR,DE,10115
A2,2026-11-02T08:30:00+01:00,TEA-1,1,499,eur,de,80331
"""


def test_lines_of_one_external_id_become_one_order():
    plan = plan_import(*_rows(LONG), "long")
    assert plan.errors == [] and plan.rows == 3
    a1, a2 = plan.orders
    assert (a1.external_id, len(a1.lines), a1.total) == ("A1", 2, 2 * 499 + 1200)
    assert a2.created_at == datetime(2026, 11, 2, 7, 30, tzinfo=timezone.utc) and a2.currency == "EUR"


def test_every_bad_field_is_reported_with_its_row():
    bad = LONG + "A3,yesterday,TEA 1,0,4.99,EURO,Germany,10115\n,2026-11-01T10:00:00,X,1,1,EUR,DE,1\n"
    plan = plan_import(*_rows(bad), "long")
    got = {(e.row, e.field) for e in plan.errors}
    assert {(4, "created_at"), (4, "sku"), (4, "qty"), (4, "unit_price"), (4, "currency"), (4, "country"),
            (5, "external_id"), (5, "created_at")} <= got
    assert [o.external_id for o in plan.orders] == ["A1", "A2"]
    assert plan.invalid_orders == 1


def test_a_naive_time_is_refused_because_it_could_be_any_zone():
    plan = plan_import(*_rows(LONG.replace("2026-11-01T10:00:00Z", "2026-11-01T10:00:00", 1)), "long")
    assert [(e.row, e.field) for e in plan.errors][:1] == [(1, "created_at")]
    assert "UTC offset" in plan.errors[0].message


def test_lines_of_one_order_that_disagree_are_an_error_on_the_later_row():
    plan = plan_import(*_rows(LONG.replace("1200,EUR,DE,10115", "1200,USD,DE,10115")), "long")
    assert [(e.row, e.field) for e in plan.errors] == [(2, "currency")]
    assert [o.external_id for o in plan.orders] == ["A2"]


def test_a_file_missing_a_column_is_refused_naming_it():
    cols = [c for c in LONG_COLUMNS if c != "qty"]
    with pytest.raises(ImportFileError, match="qty"):
        plan_import(cols, [], "long")


SHOPIFY = """Name,Email,Financial Status,Currency,Total,Created at,Lineitem quantity,Lineitem name,Lineitem price,Lineitem sku,Shipping Zip,Shipping Country,Cancelled at,Id
#1001,a@example.com,paid,EUR,21.98,2026-11-30 09:15:02 -0500,2,Green tea,4.99,TEA-1,'10115,DE,,5511118291001
#1001,,,,,,1,Mug,12.00,MUG-1,,,,
#1002,b@example.com,paid,JPY,1200,2026-11-30 10:00:00 +0900,1,Tea,1200,TEA-1,100-0001,JP,,5511118291002
#1003,c@example.com,refunded,EUR,4.99,2026-11-30 11:00:00 -0500,1,Tea,4.99,TEA-1,10115,DE,2026-11-30 12:00:00 -0500,5511118291003
"""


def test_shopify_export_rows_are_grouped_by_order_name_and_keyed_by_id():
    plan = plan_import(*_rows(SHOPIFY), "shopify")
    assert plan.errors == []
    first, second = plan.orders
    assert first.external_id == "5511118291001" and first.postal_code == "10115"
    assert [(l.sku, l.qty, l.unit_price) for l in first.lines] == [("TEA-1", 2, 499), ("MUG-1", 1, 1200)]
    assert first.created_at == datetime(2026, 11, 30, 14, 15, 2, tzinfo=timezone.utc)
    assert second.lines[0].unit_price == 1200 and second.currency == "JPY"  # no minor units in yen
    assert plan.not_imported == 1  # the cancelled order is not demand


def test_money_is_converted_to_minor_units_without_floats():
    assert to_minor_units("19.99", "USD") == 1999
    assert to_minor_units("0.1", "EUR") == 10
    with pytest.raises(ValueError):
        to_minor_units("1.999", "EUR")
    with pytest.raises(ValueError):
        to_minor_units("12.5", "JPY")
