"""The ``shopfloor`` command line. Each area registers its commands in its own module of this package."""

from __future__ import annotations

from .main import app


def main() -> None:
    app()


__all__ = ["app", "main"]
