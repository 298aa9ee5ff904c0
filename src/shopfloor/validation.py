"""Field types shared by the HTTP API's models and the packages that validate the same data (fulfillment events):
times converted to UTC, refused by name when their UTC equivalent cannot be stored; and how a path that is not a
readable file is said."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime
from pydantic_core import PydanticCustomError

from .domain.clock import ensure_utc


def utc_time(value: datetime) -> datetime:
    """``value`` converted to UTC (one without an offset is read as UTC); a ``datetime_range`` validation error
    naming it when its UTC equivalent leaves the years 1 to 9999 a ``datetime`` (and so the store) can hold: year 1
    at ``+01:00`` is in year 0 in UTC. For ``AfterValidator``."""
    try:
        return ensure_utc(value)
    except ValueError:
        raise PydanticCustomError(
            "datetime_range", "{value} is outside the times that can be stored (years 1 to 9999 in UTC)",
            {"value": value.isoformat()}) from None


#: A clock time followed by a UTC offset or ``Z`` (``00:00:00Z``, ``00:00:00.000+0000``, ``00:00 -0400``), for
#: ``re.search``: tells a written offset from the day of a bare date (``2024-01-04`` ends in ``-04``).
TIME_WITH_UTC_OFFSET = r"\d:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"

#: A timezone-aware time, converted to UTC.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(utc_time)]


def not_a_file(path) -> str:
    """Why ``path`` (which is not a file) cannot be read, as the end of a sentence naming it."""
    from pathlib import Path

    return "is a directory, not a file" if Path(path).is_dir() else "does not exist"
