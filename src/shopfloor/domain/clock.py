"""Clocks. Code that needs "now" takes a clock so tests and backtests can replay time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    """Wall-clock time, always UTC and timezone-aware."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FixedClock:
    """A clock that only moves when told to. For tests and replays."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware datetime")
        self._at = at

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = at

    def advance(self, **kwargs: float) -> datetime:
        self._at = self._at + timedelta(**kwargs)
        return self._at


class OutOfUtcRange(ValueError):
    """A time whose UTC equivalent falls outside the years 1 to 9999 that ``datetime`` can hold."""


def ensure_utc(value: datetime) -> datetime:
    """Interpret naive datetimes as UTC and convert aware ones to UTC. A time whose UTC equivalent is before year 1
    or after year 9999 (``0001-01-01T00:30:00+01:00``) raises :class:`OutOfUtcRange`, a ``ValueError``."""
    tz = value.tzinfo
    if tz is timezone.utc:  # already UTC (every clock reading): converting would give an equal copy
        return value
    if tz is None:
        return value.replace(tzinfo=timezone.utc)
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise OutOfUtcRange(f"{value.isoformat()} is outside years 1 to 9999 once converted to UTC") from None
