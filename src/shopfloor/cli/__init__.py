"""The ``shopfloor`` command line. Each area registers its commands in its own module of this package."""

from __future__ import annotations

import sys

from .main import app


def _said(exc: BaseException) -> str | None:
    """A one-line account of an error that comes from the user's files or machine rather than from a bug: a path
    the system refuses (too long, not writable, a directory), a file that is not UTF-8 text, input nested deeper
    than Python can read. None for anything else."""
    if isinstance(exc, UnicodeDecodeError):
        return (f"a file given is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                "save it as UTF-8")
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        if isinstance(exc.filename, str) and len(exc.filename) > 120:
            where = f" ({exc.filename[:60]}...{exc.filename[-40:]})"
        return f"{exc.strerror}{where}"
    if isinstance(exc, RecursionError):
        return "the input is nested too deeply to read (JSON or YAML nested thousands of levels)"
    return None


def main() -> None:
    """The console entry point: the app, with errors about the user's files or machine said in one line (exit 2)
    wherever a command did not catch them itself; anything else still shows its traceback (a bug to report)."""
    try:
        app()
    except (OSError, UnicodeDecodeError, RecursionError) as exc:
        said = _said(exc)
        if said is None:
            raise
        print(f"error: {said}", file=sys.stderr)
        raise SystemExit(2) from None


__all__ = ["app", "main"]
