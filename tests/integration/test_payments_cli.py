"""`shopfloor payments status` reads what the server processes persisted."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from shopfloor.bootstrap import build_payments
from shopfloor.cli.main import app
from shopfloor.config import Settings
from shopfloor.domain.clock import SystemClock
from shopfloor.payments import PaymentAttempt
from shopfloor.simulators import FaultPatch
from shopfloor.store.engine import make_engine


def test_payments_status_reports_breakers_error_rates_and_ledger_counts(db_url, monkeypatch):
    settings = Settings(
        database_url=db_url,
        payments_runtime_cache_ttl_s=0.0,
        payments_breaker_min_calls=3,
        payments_sim_faults={"primary": {"latency_ms": 0}, "secondary": {"latency_ms": 0}},
    )
    engine = make_engine(db_url)
    # wired as the server wires it: on SQLite the simulated gateways keep their ledger in their own file
    svc = build_payments(settings, engine, SystemClock(), registry=CollectorRegistry())
    try:
        svc.set_faults("primary", FaultPatch(down=True))
        for i in range(5):
            assert svc.authorize_inline(PaymentAttempt(f"k{i}", f"o{i}", 100, "USD", "tok")).approved
        svc.router.flush_health()
    finally:
        svc.close()
        engine.dispose()
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", db_url)
    result = CliRunner().invoke(app, ["payments", "status", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    by_name = {p["processor"]: p for p in data["processors"]}
    assert data["order"] == ["primary", "secondary"]
    assert set(by_name["primary"]["breakers"].values()) == {"open"}
    assert by_name["primary"]["recent_error_rate"] == 1.0
    assert by_name["primary"]["faults"]["down"] is True
    assert by_name["secondary"]["ledger"]["authorized"] == 5
    assert by_name["secondary"]["recent_error_rate"] == 0.0

    table = CliRunner().invoke(app, ["payments", "status"])
    assert table.exit_code == 0 and "primary" in table.stdout and "open" in table.stdout


def test_payments_status_rejects_bad_options_with_one_line(db_url, monkeypatch):
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", db_url)
    result = CliRunner().invoke(app, ["payments", "status", "--max-age", "0"])
    assert result.exit_code == 2 and "--max-age" in result.output and "Traceback" not in result.output


def test_payments_status_names_an_unreachable_database(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", f"sqlite:///{tmp_path}/missing/none.db")
    result = CliRunner().invoke(app, ["payments", "status"])
    assert result.exit_code == 2 and "database" in result.output and "Traceback" not in result.output


def test_cli_commands_that_call_no_processor_leave_no_breaker_behind(db_url, monkeypatch):
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", db_url)
    runner = CliRunner()
    for _ in range(3):  # each builds the payments service and closes it, as every command with a store does
        assert runner.invoke(app, ["outbox", "status", "--json"]).exit_code == 0
    data = json.loads(runner.invoke(app, ["payments", "status", "--json"]).stdout)
    assert [p["breakers"] for p in data["processors"]] == [{}, {}]
