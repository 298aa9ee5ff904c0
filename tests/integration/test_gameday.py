"""A short game day against the real server and worker processes, on SQLite and PostgreSQL: every fault of the
default schedule is injected (lost processor responses, primary down, rate service blackholed, two kill -9 of the
server, one of the worker, one of the simulator process that serves the processors) and every guarantee holds
afterwards."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from shopfloor.cli.main import app
from shopfloor.gameday import CHECKS, DEFAULT_SCHEDULE, run_gameday

pytestmark = pytest.mark.slow


def test_a_short_game_day_keeps_every_guarantee(db_url, tmp_path):
    result = run_gameday(db_url, seconds=12, shoppers=4, drain_timeout_s=150, workdir=tmp_path)
    report = result.to_dict()
    assert report["checks"] == {k: 0 for k in CHECKS}, json.dumps(report, default=str)[:3000]
    assert result.passed
    assert [f["action"] for f in result.faults] == [f.action for f in DEFAULT_SCHEDULE]
    assert sum(1 for f in result.faults if "restart_s" in f) == 2  # both kills of the server came back
    (kill,) = [f for f in result.faults if f["action"] == "processor_kill"]
    assert kill["back_after_s"] >= kill["down_s"] > 0  # the processors were really gone, then back on their ledger
    t = result.totals
    assert t["accepted"] > 50 and t["flash_sold"] <= t["flash_units"]
    assert t["retried_through_outages"] >= 1  # shoppers really met the killed server and retried their key
    assert result.drain["settled"], result.drain
    assert len(result.timeline) >= 12 and sum(s["accepted"] for s in result.timeline) == t["accepted"]


def test_gameday_cli_validates_its_options(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["gameday", "--seconds", "3"])
    assert r.exit_code == 2 and "--seconds" in r.output
    r = runner.invoke(app, ["gameday", "--database-url", "mysql://x/y"])
    assert r.exit_code == 2 and "unsupported database 'mysql'" in r.output
    r = runner.invoke(app, ["gameday", "--schedule", "/nonexistent/plan.yaml"])
    assert r.exit_code == 2 and "--schedule" in r.output and "cannot read" in r.output
    bad = tmp_path / "plan.yaml"
    bad.write_text("- {at: 0.5, action: processor, target: primary, patch: {down: maybe}}\n")
    r = runner.invoke(app, ["gameday", "--schedule", str(bad)])
    assert r.exit_code == 2 and "faults[0].patch.down" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["gameday", "--help"])
    assert r.exit_code == 0 and "charged twice" in r.output


def test_a_game_day_with_a_slow_webhook_subscriber_still_feeds_the_fast_one(tmp_path):
    """Two subscribers to order.placed/order.paid, one answering only after 20 s (past the 15 s timeout): every
    guarantee holds, the outbox drains, and the fast subscriber receives every accepted order."""
    result = run_gameday(None, seconds=12, shoppers=4, drain_timeout_s=150, workdir=tmp_path, slow_subscriber_s=20)
    report = result.to_dict()
    assert report["checks"] == {**{k: 0 for k in CHECKS}, "webhook_fast_subscriber_missing": 0}, \
        json.dumps(report, default=str)[:3000]
    assert result.drain["settled"]
    sub = result.subscribers
    assert sub["fast"]["unique_messages"] >= result.totals["accepted"]
    assert sub["slow"]["requests"] >= 1
