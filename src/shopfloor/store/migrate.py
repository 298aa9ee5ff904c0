"""Alembic, driven from code: ``shopfloor db upgrade`` and server start call ``upgrade_database``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from .engine import create_sqlite_file_privately, normalise_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    """Alembic's configuration for the shipped migrations; with ``url``, for that database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def upgrade_database(url: str, revision: str = "head") -> None:
    """Bring the schema at ``url`` up to ``revision`` (idempotent). A new SQLite file is created owner-only."""
    create_sqlite_file_privately(url)
    command.upgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    create_sqlite_file_privately(url)  # connecting creates a missing SQLite file, which the store then lives in
    eng = create_engine(normalise_url(url))
    try:
        with eng.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        eng.dispose()


def head_revision() -> str:
    """The newest migration this code ships."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
