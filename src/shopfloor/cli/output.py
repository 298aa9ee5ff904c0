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
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)
