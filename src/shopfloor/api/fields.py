"""Field types shared by the routes' request bodies.

Times are converted to UTC while the body is validated, so that a time the store cannot hold (year 1 at
``+01:00`` is in year 0 in UTC; 9999-12-31 at ``-01:00`` is in year 10000) is a 422 naming its field instead of an
``OverflowError`` (a 500) wherever it is converted later.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime
from pydantic_core import PydanticCustomError

from ..domain.clock import ensure_utc


def _to_utc(value: datetime) -> datetime:
    try:
        return ensure_utc(value)
    except ValueError:
        raise PydanticCustomError(
            "datetime_range", "{value} is outside the times that can be stored (years 1 to 9999 in UTC)",
            {"value": value.isoformat()}) from None


#: A timezone-aware time, converted to UTC.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
#: A time, converted to UTC; one without an offset is read as UTC.
UtcOrNaiveDatetime = Annotated[datetime, AfterValidator(_to_utc)]


def years_between(first: int, last: int):
    """A validator (for after :data:`UtcDatetime`) refusing times outside ``first``-01-01 to ``last``-12-31 UTC."""
    lo = datetime(first, 1, 1, tzinfo=timezone.utc)
    hi = datetime(last + 1, 1, 1, tzinfo=timezone.utc)

    def check(value: datetime) -> datetime:
        if not lo <= value < hi:
            raise PydanticCustomError(
                "datetime_range", "{value} is outside the accepted range, years {first} to {last} (UTC)",
                {"value": value.isoformat(), "first": first, "last": last})
        return value

    return AfterValidator(check)
