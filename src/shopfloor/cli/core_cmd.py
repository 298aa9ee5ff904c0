"""Core commands: db, keys, serve, worker, outbox, demo, bench."""

from __future__ import annotations

import typer

from ..config import Settings
from .output import console

db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply Alembic migrations to SHOPFLOOR_DATABASE_URL (idempotent)."""
    from ..store.migrate import upgrade_database

    settings = Settings()
    upgrade_database(settings.database_url)
    console.print("[green]database is at the latest schema[/]")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
