"""Shared CLI output helpers: JSON for scripts, rich for people, and clean error exits."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def fail(message: str, code: int = 2) -> NoReturn:
    """Exit with a one-line error naming the problem (never a traceback)."""
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)  # one line, even in a narrow terminal
    raise typer.Exit(code)


def require_store(database_url: str) -> None:
    """Exit with a clean error unless ``database_url`` holds a shopfloor store at this code's schema (commands that
    read or change an existing store; `serve`, `worker` and `db upgrade` migrate instead)."""
    from pathlib import Path

    from ..store.migrate import current_revision, head_revision

    shown = where(database_url)
    if database_url.startswith("sqlite:///"):
        path = database_url.split("sqlite:///", 1)[1].split("?", 1)[0]
        if path and path != ":memory:" and not Path(path).exists():
            fail(f"database_url: no store at {shown}; run `shopfloor db upgrade` (or `shopfloor serve`) first, or "
                 "point SHOPFLOOR_DATABASE_URL at your store")
    try:
        current = current_revision(database_url)
    except Exception as exc:  # noqa: BLE001 - unreachable server, bad URL, missing driver
        fail(f"database_url: cannot open {shown}: {db_error(exc, database_url)}")
    head = head_revision()
    if current != head:
        state = "has no shopfloor schema" if current is None else f"is at schema {current}, this code needs {head}"
        fail(f"database_url: {shown} {state}; run `shopfloor db upgrade`")


def load_settings():
    """Settings from the environment (``SHOPFLOOR_*``), checked as far as the container needs them, or a one-line
    error naming every variable that is wrong."""
    import re

    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from ..bootstrap import check_settings
    from ..config import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        problems = [f"SHOPFLOOR_{str(e['loc'][0]).upper() if e['loc'] else '?'}: "
                    f"{e['msg'].removeprefix('Value error, ')}" for e in exc.errors()]
        fail("settings: " + "; ".join(problems))
    except SettingsError as exc:  # a structured variable (a JSON map or list) that is not JSON
        field = re.search(r'field "([^"]+)"', str(exc))
        name = f"SHOPFLOOR_{field.group(1).upper()}" if field else "a SHOPFLOOR_* variable"
        fail(f"settings: {name}: not valid JSON (this setting takes a JSON object or list)")
    try:
        check_settings(settings)
    except ValueError as exc:
        fail(f"settings: {exc}")
    return settings


def where(database_url: str) -> str:
    """The database for messages: a SQLite file's absolute path, a server's URL without its password or query
    string (:func:`shopfloor.config.redact_url`)."""
    from pathlib import Path

    from ..config import redact_url

    if database_url.startswith("sqlite:///"):
        path = database_url.split("sqlite:///", 1)[1].split("?", 1)[0]
        if path and path != ":memory:":
            return str(Path(path).resolve())
    return redact_url(database_url)


def db_error(exc: BaseException, database_url: str, width: int = 160) -> str:
    """``exc`` from opening ``database_url``, in one line for :func:`fail`: its class and first line, or only its
    class when the URL does not parse cleanly (``u:p@ss@host``: the driver's message quotes a piece of the
    password as the host)."""
    if where(database_url).endswith(":..."):  # redact_url could show only the scheme
        return f"{type(exc).__name__} (the URL does not parse; percent-encode @ : / ? # in a password)"
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:width]}"


def upgrade_or_fail(database_url: str) -> None:
    """Bring the store at ``database_url`` to the current schema (creating it), or exit with one line naming the
    database and the cause (an unreachable server, a missing driver): what `serve`, `worker` and `db upgrade` do
    first."""
    from ..store.migrate import upgrade_database

    try:
        upgrade_database(database_url)
    except Exception as exc:  # noqa: BLE001 - show a one-line error, not a traceback
        fail(f"database_url: cannot open {where(database_url)}: {db_error(exc, database_url, 200)}")


def open_store():
    """Settings from the environment and the container for an existing, current store; clean errors otherwise."""
    from ..bootstrap import build_container

    settings = load_settings()
    require_store(settings.database_url)
    return build_container(settings)


#: Plot formats the commands write (matplotlib picks the format from the file name's extension).
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def check_output_path(path, option: str, *, directory: bool = False, suffixes: tuple[str, ...] | None = None):
    """Exit with a one-line error naming ``option`` unless ``path`` can be written: a file where a file is wanted
    (``directory=True``: a directory), whose parent exists or can be created, ending in one of ``suffixes`` when
    given (e.g. :data:`PLOT_SUFFIXES`). Checks only, creates nothing: call it before any work, so a bad path never
    costs a run or leaves half of the outputs behind. Returns ``path`` as a ``Path``."""
    import os
    from pathlib import Path

    p = Path(path)
    if not str(path).strip():
        fail(f"{option}: give a path")
    if suffixes is not None and p.suffix.lower() not in suffixes:
        fail(f"{option}: {path}: use a file name ending in {', '.join(suffixes)} (the extension picks the format)")
    if p.exists():
        if directory and not p.is_dir():
            fail(f"{option}: {path} is a file; give a directory (it is created if missing)")
        if not directory and p.is_dir():
            fail(f"{option}: {path} is a directory; give a file name")
        if not os.access(p, os.W_OK):
            fail(f"{option}: {path} is not writable")
        return p
    ancestor = p.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        fail(f"{option}: cannot create {path}: {ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        fail(f"{option}: cannot create {path}: {ancestor} is not writable")
    return p
