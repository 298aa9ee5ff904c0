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


def _create_postgres_database() -> str:
    """Create a throwaway database on the test server and return its URL."""
    import sqlalchemy as sa

    name = f"sf_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(_postgres_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()
    base = POSTGRES_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


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
def db_url(request, tmp_path):
    """A fresh, migrated database URL, once per backend."""
    from shopfloor.store.migrate import upgrade_database

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shopfloor.db'}"
        upgrade_database(url)
        yield url
        return
    if not POSTGRES_URL:
        if REQUIRE_POSTGRES:
            pytest.fail("SHOPFLOOR_TEST_POSTGRES_URL is required under CI but not set")
        pytest.skip("PostgreSQL tests need SHOPFLOOR_TEST_POSTGRES_URL")
    try:
        url = _create_postgres_database()
    except Exception as exc:  # pragma: no cover - depends on the machine
        if REQUIRE_POSTGRES:
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is unreachable under CI: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    upgrade_database(url)
    yield url
    _drop_postgres_database(url)
