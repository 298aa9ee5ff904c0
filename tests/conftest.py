"""Shared fixtures: fresh, migrated databases on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import os
import uuid

import pytest

POSTGRES_URL = os.environ.get("SHOPFLOOR_TEST_POSTGRES_URL", "")
REQUIRE_POSTGRES = os.environ.get("SHOPFLOOR_REQUIRE_POSTGRES") == "1"


def _postgres_admin_url() -> str:
    from shopfloor.store.engine import normalise_url

    return normalise_url(POSTGRES_URL)


def _create_postgres_database(template: str | None = None) -> str:
    """Create a throwaway database on the test server (optionally a copy of ``template``) and return its URL."""
    import sqlalchemy as sa

    name = f"sf_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(_postgres_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            suffix = f' TEMPLATE "{template}"' if template else ""
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"{suffix}')
    finally:
        admin.dispose()
    base = POSTGRES_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def _migrated_templates(tmp_path_factory):
    """Migrate once per test process; each test then gets a copy (a file copy, or CREATE DATABASE ... TEMPLATE),
    which is much cheaper than running every migration for every test."""
    from shopfloor.store.migrate import upgrade_database

    sqlite_file = tmp_path_factory.mktemp("template") / "template.db"
    upgrade_database(f"sqlite:///{sqlite_file}")
    pg_template = None
    if POSTGRES_URL:
        try:
            pg_url = _create_postgres_database()
            upgrade_database(pg_url)
            pg_template = pg_url.rsplit("/", 1)[1]
        except Exception:  # noqa: BLE001 - the per-test fixture reports (fails or skips) the real problem
            pg_template = None
    yield {"sqlite": sqlite_file, "postgres": pg_template}
    if pg_template:
        base = POSTGRES_URL.rsplit("/", 1)[0]
        _drop_postgres_database(f"{base}/{pg_template}")


def _drop_postgres_database(url: str) -> None:
    import sqlalchemy as sa

    name = url.rsplit("/", 1)[1]
    admin = sa.create_engine(_postgres_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path, _migrated_templates):
    """A fresh, migrated database URL, once per backend."""
    import shutil

    from shopfloor.store.migrate import upgrade_database

    if request.param == "sqlite":
        target = tmp_path / "shopfloor.db"
        shutil.copyfile(_migrated_templates["sqlite"], target)
        yield f"sqlite:///{target}"
        return
    if not POSTGRES_URL:
        if REQUIRE_POSTGRES:
            pytest.fail("SHOPFLOOR_TEST_POSTGRES_URL is required under CI but not set")
        pytest.skip("PostgreSQL tests need SHOPFLOOR_TEST_POSTGRES_URL")
    try:
        url = _create_postgres_database(_migrated_templates["postgres"])
    except Exception as exc:  # pragma: no cover - depends on the machine
        if REQUIRE_POSTGRES:
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is unreachable under CI: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    if _migrated_templates["postgres"] is None:
        upgrade_database(url)
    yield url
    _drop_postgres_database(url)
