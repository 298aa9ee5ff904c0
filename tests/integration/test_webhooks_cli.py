"""`shopfloor webhooks` in an 80-column terminal (ids shown whole, so they can be copied), and
SHOPFLOOR_WEBHOOK_ALLOWED_HOSTS written as a JSON list like the other list settings."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from rich.console import Console
from typer.testing import CliRunner

import shopfloor.cli.webhooks_cmd as webhooks_cmd
from shopfloor.cli.main import app
from shopfloor.config import Settings
from shopfloor.store.integrations_tables import webhook_deliveries
from shopfloor.store.migrate import upgrade_database

runner = CliRunner()


@pytest.fixture
def store(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'hooks.db'}"
    upgrade_database(url)
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", url)
    monkeypatch.setenv("SHOPFLOOR_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")
    monkeypatch.setattr(webhooks_cmd, "console", Console(width=80, color_system=None))
    return url


def _add(url: str, *events: str) -> dict:
    r = runner.invoke(app, ["webhooks", "add", url, *[a for e in events for a in ("--event", e)], "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_webhooks_list_shows_every_endpoint_id_whole_at_80_columns(store):
    eps = [_add("http://127.0.0.1:9/a/rather/long/path/for/the/subscriber/endpoint", "order.placed",
                "promise.degraded", "order.cancelled"),
           _add("http://127.0.0.1:9/hook", "stock.low")]
    r = runner.invoke(app, ["webhooks", "list"])
    assert r.exit_code == 0, r.output
    assert max(len(line) for line in r.output.splitlines()) <= 80
    words = r.output.split()
    for ep in eps:
        assert ep["id"] in words, r.output
    assert {"order.placed", "promise.degraded", "order.cancelled", "stock.low"} <= set(words)


def test_webhooks_deliveries_show_each_delivery_id_whole_at_80_columns(store):
    ep = _add("http://127.0.0.1:9/hook", "order.placed")
    now = datetime(2026, 12, 1, 10, tzinfo=timezone.utc)
    delivery_id = "wd_" + "0123456789abcdef" * 2
    eng = sa.create_engine(store)
    with eng.begin() as conn:
        conn.execute(webhook_deliveries.insert().values(
            id=delivery_id, endpoint_id=ep["id"], message_id="msg_1", event_type="order.placed", payload={},
            status="failed", attempts=3, next_attempt_at=now, last_status_code=503,
            last_error="the subscriber answered 503 Service Unavailable three times", created_at=now,
            updated_at=now))
    eng.dispose()
    r = runner.invoke(app, ["webhooks", "deliveries", ep["id"]])
    assert r.exit_code == 0, r.output
    assert max(len(line) for line in r.output.splitlines()) <= 80
    assert delivery_id in r.output.split(), r.output
    said = " ".join(r.output.split())
    assert "3 attempt(s), last answer HTTP 503" in said and "answered 503 Service Unavailable three times" in said


@pytest.mark.parametrize("value, hosts", [
    ('["127.0.0.1"]', {"127.0.0.1"}),
    ('["127.0.0.1", "Hooks.Local"]', {"127.0.0.1", "hooks.local"}),
    ("127.0.0.1, hooks.local", {"127.0.0.1", "hooks.local"}),
    ("[]", set()),
])
def test_webhook_allowed_hosts_take_a_json_list_or_commas(monkeypatch, value, hosts):
    monkeypatch.setenv("SHOPFLOOR_WEBHOOK_ALLOWED_HOSTS", value)
    assert Settings().webhook_allowed_host_set == hosts


def test_webhook_allowed_hosts_that_are_broken_json_are_named(store, monkeypatch):
    monkeypatch.setenv("SHOPFLOOR_WEBHOOK_ALLOWED_HOSTS", '["127.0.0.1"')
    r = runner.invoke(app, ["webhooks", "list"])
    assert r.exit_code == 2
    assert "SHOPFLOOR_WEBHOOK_ALLOWED_HOSTS: not a JSON list of host names" in " ".join(r.output.split())
