"""Commands that read or change an existing store say how to fix a missing or old schema (never a traceback)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from shopfloor.cli.main import app
from shopfloor.store.engine import normalise_url


def _said(result) -> str:
    return " ".join(result.output.split())  # rich wraps long lines

COMMANDS = [["outbox", "status"], ["keys", "list"], ["restock", "plan", "--json"], ["payments", "status"],
            ["capacity", "plan", "--json"], ["forecast", "--from-db", "--horizon", "7", "--out", "x.parquet"]]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_a_missing_sqlite_store_is_named_and_not_created(tmp_path, monkeypatch, args):
    path = tmp_path / "nothing-here.db"
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2, r.output
    assert "no store at" in _said(r) and "shopfloor db upgrade" in _said(r) and "Traceback" not in r.output
    assert not path.exists()


def test_a_store_without_the_schema_or_behind_it_is_refused_and_a_current_one_works(db_url, monkeypatch):
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", db_url)
    runner = CliRunner()
    assert runner.invoke(app, ["outbox", "status", "--json"]).exit_code == 0  # migrated by the fixture
    engine = create_engine(normalise_url(db_url))
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0001_foundation'"))
    engine.dispose()
    r = runner.invoke(app, ["keys", "list"])
    assert r.exit_code == 2 and "is at schema 0001_foundation" in _said(r) and "shopfloor db upgrade" in _said(r)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
    engine.dispose()
    r = runner.invoke(app, ["outbox", "status"])
    assert r.exit_code == 2 and "has no shopfloor schema" in _said(r)


def test_an_unreachable_server_is_named_without_its_password(monkeypatch):
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", "postgresql://postgres:s3cret-pw@127.0.0.1:1/nowhere")
    r = CliRunner().invoke(app, ["keys", "list"])
    assert r.exit_code == 2 and "cannot open postgresql://postgres:***@127.0.0.1:1/nowhere" in _said(r)
    assert "s3cret-pw" not in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("args", [["keys", "list"], ["payments", "status"], ["db", "upgrade"]],
                         ids=lambda a: " ".join(a))
@pytest.mark.parametrize("url", ["postgresql://postgres@127.0.0.1:1/nowhere?password=s3cret-pw",
                                 "postgresql://postgres:s3c@ret-pw@127.0.0.1:1/nowhere",
                                 "postgres:/postgres:s3cret-pw@127.0.0.1:1/nowhere"],
                         ids=["query-password", "unescaped-at", "one-slash"])
def test_no_part_of_a_database_password_is_printed_whatever_the_url_looks_like(monkeypatch, args, url):
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", url)
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2 and "database_url" in _said(r).lower(), r.output
    assert "s3c" not in r.output and "ret-pw" not in r.output and "Traceback" not in r.output


def test_redact_url_masks_the_password_and_drops_the_query_string():
    from shopfloor.config import redact_url

    assert redact_url("postgresql+psycopg://shop:pw@db.internal:5432/shop?sslmode=require&password=x") == \
        "postgresql+psycopg://shop:***@db.internal:5432/shop"
    assert redact_url("redis://:pw@cache:6379/0") == "redis://:***@cache:6379/0"
    assert redact_url("postgresql://shop:p@ss@db/shop") == "postgresql:..."
    assert redact_url("postgresql://shop:pw@db:port/shop") == "postgresql:..."
    assert redact_url("s3cret") == "..."


SETTINGS_COMMANDS = COMMANDS + [["serve"], ["worker"], ["db", "upgrade"], ["demo", "--once"],
                                ["keys", "create", "--scope", "admin"], ["rules", "run", "--once"]]


@pytest.mark.parametrize("args", SETTINGS_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_a_bad_setting_is_named_before_anything_starts(tmp_path, monkeypatch, args):
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", f"sqlite:///{tmp_path / 'shop.db'}")
    monkeypatch.setenv("SHOPFLOOR_BUY_PATH_THREADS", "lots")
    monkeypatch.setenv("SHOPFLOOR_TOWER_RULES_INTERVAL_S", "-1")
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2, r.output
    said = _said(r)
    assert said.startswith("error: settings: SHOPFLOOR_BUY_PATH_THREADS: Input should be a valid integer"), said
    assert "SHOPFLOOR_TOWER_RULES_INTERVAL_S: Input should be greater than 0" in said
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert not (tmp_path / "shop.db").exists() and not (tmp_path / "var").exists()  # nothing created or started


@pytest.mark.parametrize("variable, value, said", [
    ("SHOPFLOOR_PROMISE_REGION_MAP", "not-json", "SHOPFLOOR_PROMISE_REGION_MAP: not valid JSON"),
    ("SHOPFLOOR_PAYMENTS_SIM_FAULTS", '{"primary": {"down": "maybe"}}',
     "SHOPFLOOR_PAYMENTS_SIM_FAULTS: ['primary'].down: Input should be a valid boolean"),
    ("SHOPFLOOR_SHIPPING_PROVISIONAL_RATES", '{"US": {"amount": -5}}',
     "SHOPFLOOR_SHIPPING_PROVISIONAL_RATES['US'] needs integer amount, currency and days"),
    ("SHOPFLOOR_SHIPPING_PROVISIONAL_RATES", '{"US": {"amount": 500, "currency": "USD", "days": 3}}',
     "SHOPFLOOR_SHIPPING_PROVISIONAL_RATES: the provisional rate table needs a '*' row"),
], ids=["region-map-json", "sim-faults", "rates-row", "rates-default-row"])
def test_a_bad_structured_setting_is_named_before_the_server_starts(tmp_path, monkeypatch, variable, value, said):
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", f"sqlite:///{tmp_path / 'shop.db'}")
    monkeypatch.setenv(variable, value)
    r = CliRunner().invoke(app, ["serve"])
    assert r.exit_code == 2, r.output
    assert _said(r).startswith(f"error: settings: {said}"), _said(r)
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert not (tmp_path / "shop.db").exists()
