"""One definition of a valid fulfillment event (``shopfloor.fulfillment.EventIn`` and ``EventWindow``) serves both
``POST /v1/fulfillment/events`` and ``shopfloor fulfillment import``: every bad event below is refused both ways,
naming the same field, and a valid file imports what the API stores."""

from __future__ import annotations

import ast
import csv
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pydantic import TypeAdapter, ValidationError
from typer.testing import CliRunner

from shopfloor.api.app import create_app
from shopfloor.bootstrap import build_container
from shopfloor.config import Settings
from shopfloor.store.promise_tables import fulfillment_events
from tests.support.store import new_key, seed

SRC = Path(__file__).resolve().parents[2] / "src" / "shopfloor"
# The command reads the real clock, so the events are dated around it (and the API is given the same clock).
NOW = datetime.now(timezone.utc).replace(microsecond=0)
AT = (NOW - timedelta(days=2)).isoformat()
PICKED = {"event_id": "e1", "order_id": "o1", "type": "picked", "at": AT, "warehouse": "w1", "carrier": "dhl",
          "country": "GB", "postal_code": "M1 1AE"}
RETURNED = {"event_id": "r1", "order_id": "o1", "type": "returned", "at": AT, "warehouse": "w1", "sku": "S1",
            "qty": 2, "reason": "fit", "restock": True}
LONG = "x" * 200

# (what is wrong, the event, the field the API names, what the command says). None: no value (JSON null, an empty
# cell). The command names the row (row 2: the CSV's first line after the header) and the field first.
BAD = [
    ("an event id with a space", {**PICKED, "event_id": "e 1"}, "event_id"),
    ("an order id longer than 120 characters", {**PICKED, "order_id": "o" * 121}, "order_id"),
    ("an order id with a letter outside ASCII", {**PICKED, "order_id": "commande-é"}, "order_id"),
    ("no type", {**PICKED, "type": None}, "type"),
    ("an unknown type", {**PICKED, "type": "teleported"}, "type"),
    ("no time", {**PICKED, "at": None}, "at"),
    ("a time that is not a time", {**PICKED, "at": "garbage"}, "at"),
    ("a time with surrounding spaces", {**PICKED, "at": f" {AT} "}, "at"),
    ("a time in a format other than ISO 8601", {**PICKED, "at": "2026/12/01 10:00+00:00"}, "at"),
    ("a time without a UTC offset", {**PICKED, "at": "2026-11-01T10:00:00"}, "at"),
    ("a time in year 0 once in UTC", {**PICKED, "at": "0001-01-01T00:30:00+01:00"}, "at"),
    ("a time days ahead of the clock", {**PICKED, "at": (NOW + timedelta(days=3)).isoformat()}, "at"),
    ("a time more than a year before the clock", {**PICKED, "at": (NOW - timedelta(days=400)).isoformat()}, "at"),
    ("an order placed more than a year ago", {**PICKED, "placed_at": (NOW - timedelta(days=400)).isoformat()},
     "placed_at"),
    ("an order placed days from now", {**PICKED, "placed_at": (NOW + timedelta(days=3)).isoformat()}, "placed_at"),
    ("an order placed at a time that is not one", {**PICKED, "placed_at": "yesterday"}, "placed_at"),
    ("no warehouse", {**PICKED, "warehouse": None}, "warehouse"),
    ("a warehouse longer than 64 characters", {**PICKED, "warehouse": LONG}, "warehouse"),
    ("a NUL character in a warehouse", {**PICKED, "warehouse": "w\x001"}, "warehouse"),
    ("a carrier longer than 64 characters", {**PICKED, "carrier": LONG}, "carrier"),
    ("a three-letter country", {**PICKED, "country": "GBR"}, "country"),
    ("a country with a digit", {**PICKED, "country": "G1"}, "country"),
    ("a postal code longer than 16 characters", {**PICKED, "postal_code": LONG}, "postal_code"),
    ("a region longer than 64 characters", {**PICKED, "region": LONG}, "region"),
    ("an origin region longer than 64 characters", {**PICKED, "origin_region": LONG}, "origin_region"),
    ("a qty that is not a number on any event", {**PICKED, "qty": "abc"}, "qty"),
    ("a return without a sku", {**RETURNED, "sku": None}, "sku"),
    ("a return without a qty", {**RETURNED, "qty": None}, "qty"),
    ("a return without a reason", {**RETURNED, "reason": None}, "reason"),
    ("a return of no units", {**RETURNED, "qty": 0}, "qty"),
    ("a return of more than 100,000 units", {**RETURNED, "qty": 100_001}, "qty"),
    ("a return of half a unit", {**RETURNED, "qty": 2.5}, "qty"),
    ("a return of 2.0 units", {**RETURNED, "qty": 2.0}, "qty"),
    ("a return of 1e3 units", {**RETURNED, "qty": "1e3"}, "qty"),
    ("a return for a reason not on the list", {**RETURNED, "reason": "wrong colour"}, "reason"),
    ("a return neither restocked nor not", {**RETURNED, "restock": "maybe"}, "restock"),
    ("a return sku longer than 64 characters", {**RETURNED, "sku": LONG}, "sku"),
]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _write_csv(path: Path, events: list[dict]) -> Path:
    columns = list(dict.fromkeys(name for e in events for name in e))
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows([_cell(e.get(name)) for name in columns] for e in events)
    return path


def _said(result) -> str:
    return " ".join(result.output.split())


def _stored(url: str) -> list[dict]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(fulfillment_events))]
    finally:
        engine.dispose()


@pytest.fixture
def both_ways(db_url, tmp_path, monkeypatch):
    """``(post, run)``: post events to the API, run the import on a CSV of them; one store, the real clock."""
    container = build_container(Settings(database_url=db_url))
    seed(container.engine, {"w1": ("eu-west", "GB", ["M"])}, {"S1": 1200}, {("S1", "w1"): 5}, now=NOW)
    headers = {"Authorization": f"Bearer {new_key(container.engine, 'ingest')[1]}"}
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", db_url)
    monkeypatch.setenv("SHOPFLOOR_RETURNS_INSPECTION_DELAY_H", "0")
    with TestClient(create_app(container)) as client:
        def post(events: list[dict]):
            return client.post("/v1/fulfillment/events", json={"events": events}, headers=headers)

        def run(events: list[dict], name: str = "events.csv"):
            path = _write_csv(tmp_path / name, events)
            return CliRunner().invoke(_cli_app(), ["fulfillment", "import", str(path), "--json"])

        yield post, run


def _cli_app():
    from shopfloor.cli.main import app

    return app


@pytest.mark.parametrize("event,field", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_the_api_and_the_import_refuse_the_same_bad_event_naming_the_same_field(both_ways, db_url, event, field):
    post, run = both_ways
    r = post([event])
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["details"][0]["field"] == f"events.0.{field}", error
    assert error["message"].startswith(f"events.0.{field}: "), error
    result = run([event])
    assert result.exit_code == 2, result.output
    assert f"events.csv: row 2: {field} " in _said(result) or f"events.csv: row 2: {field}: " in _said(result)
    assert "Traceback" not in result.output
    assert _stored(db_url) == []


def test_an_event_with_no_destination_is_refused_both_ways_for_the_same_reason(both_ways, db_url):
    post, run = both_ways
    event = {**PICKED, "country": None, "postal_code": None}
    r = post([event])
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "events.0", r.text
    assert "an event needs a destination: country (with postal_code) or region" in r.json()["error"]["message"]
    result = run([event])
    assert result.exit_code == 2
    assert "row 2: an event needs a destination: country (with postal_code) or region" in _said(result)
    assert _stored(db_url) == []


def test_a_field_the_api_does_not_know_is_refused_as_a_column_the_import_does_not_know(both_ways, db_url):
    post, run = both_ways
    event = {**PICKED, "notes": "fragile"}
    r = post([event])
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "events.0.notes", r.text
    result = run([event])
    assert result.exit_code == 2 and "events.csv: unknown column(s) 'notes'" in _said(result), result.output
    assert _stored(db_url) == []


def test_a_bad_row_after_good_ones_names_its_row_and_writes_nothing(both_ways, db_url):
    _, run = both_ways
    good = [{**PICKED, "event_id": f"e{i}"} for i in range(5)]
    result = run([*good, {**PICKED, "event_id": "e9", "country": "GBR"}])
    assert result.exit_code == 2 and "row 7: country 'GBR' is not a two-letter country code" in _said(result)
    assert _stored(db_url) == []


def test_a_valid_file_imports_and_stores_what_the_api_stores_for_the_same_events(both_ways, db_url, tmp_path):
    post, run = both_ways
    events = [
        {**PICKED, "placed_at": (NOW - timedelta(days=3)).isoformat()},
        {**PICKED, "event_id": "e2", "type": "delivered", "at": (NOW - timedelta(days=1)).isoformat(),
         "country": None, "postal_code": None, "region": "GB-north", "origin_region": "eu-west"},
        {**PICKED, "event_id": "e3", "at": (NOW - timedelta(days=2)).isoformat().replace("+00:00", "+02:00")},
        {**PICKED, "event_id": "e4", "at": str(int((NOW - timedelta(hours=5)).timestamp()))},  # Unix time
        RETURNED,
        {**RETURNED, "event_id": "r2", "restock": False, "reason": "damaged", "qty": 100_000},
        {**RETURNED, "event_id": "r3", "restock": "yes"},
        {**RETURNED, "event_id": "r4", "restock": None},
    ]
    result = run(events)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["accepted"] == len(events)
    r = post([{**e, "event_id": f"api-{e['event_id']}"} for e in events])
    assert r.status_code == 200 and r.json() == {"accepted": len(events), "duplicates": 0}, r.text
    rows = {row["event_id"]: {k: v for k, v in row.items() if k not in ("event_id", "received_at")}
            for row in _stored(db_url)}
    for e in events:
        assert rows[e["event_id"]] == rows[f"api-{e['event_id']}"], e["event_id"]
    assert rows["r2"]["restock"] is False and rows["r3"]["restock"] is True and rows["r4"]["restock"] is None
    # the same events as Parquet (typed columns, nulls where a CSV has empty cells) are the same events
    frame = pd.DataFrame(events)
    frame["restock"] = frame["restock"].map({True: True, False: False, "yes": True, None: None})
    frame.to_parquet(tmp_path / "events.parquet")
    again = CliRunner().invoke(_cli_app(), ["fulfillment", "import", str(tmp_path / "events.parquet"), "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout) == {"file": str(tmp_path / "events.parquet"), "accepted": 0,
                                        "duplicates": len(events)}


def test_the_api_route_takes_its_event_model_from_the_fulfillment_package():
    from shopfloor.api.routes import promise as routes
    from shopfloor.fulfillment import EventIn

    assert routes.EventIn is EventIn
    assert routes.EventBatch.model_fields["events"].annotation == list[EventIn]


def test_the_fulfillment_package_imports_nothing_from_the_api_layer():
    sources = sorted((SRC / "fulfillment").glob("*.py"))
    assert sources, f"no Python files in {SRC / 'fulfillment'}"  # a moved package fails here instead of passing
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                assert not (node.level == 0 and module.startswith("shopfloor.api")), path.name
                assert not (node.level >= 2 and module.split(".")[0] == "api"), path.name
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("shopfloor.api") for a in node.names), path.name


def test_the_api_times_are_the_fulfillment_events_times_and_convert_to_utc_as_before():
    from shopfloor.api.fields import UtcDatetime, UtcOrNaiveDatetime
    from shopfloor.fulfillment import EventIn
    from shopfloor.validation import utc_time

    # the events' times go through the same conversion as every route's
    assert any(getattr(m, "func", None) is utc_time for m in EventIn.model_fields["at"].metadata)
    aware, lax = TypeAdapter(UtcDatetime), TypeAdapter(UtcOrNaiveDatetime)
    assert aware.validate_python("2026-05-01T10:00:00+02:00") == datetime(2026, 5, 1, 8, tzinfo=timezone.utc)
    assert lax.validate_python("2026-05-01T10:00:00") == datetime(2026, 5, 1, 10, tzinfo=timezone.utc)
    with pytest.raises(ValidationError) as naive:
        aware.validate_python("2026-05-01T10:00:00")
    assert naive.value.errors()[0]["type"] == "timezone_aware"
    for adapter in (aware, lax):
        with pytest.raises(ValidationError) as out:
            adapter.validate_python("0001-01-01T00:30:00+01:00")
        error = out.value.errors()[0]
        assert error["type"] == "datetime_range" and "outside the times that can be stored" in error["msg"]
