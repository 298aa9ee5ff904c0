"""Field types shared by the routes' request bodies.

Times are converted to UTC while the body is validated, so that a time the store cannot hold (year 1 at
``+01:00`` is in year 0 in UTC; 9999-12-31 at ``-01:00`` is in year 10000) is a 422 naming its field instead of an
``OverflowError`` (a 500) wherever it is converted later.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from ..validation import UtcDatetime, utc_time

__all__ = ["UtcDatetime", "UtcOrNaiveDatetime", "years_between"]

#: A time, converted to UTC; one without an offset is read as UTC.
UtcOrNaiveDatetime = Annotated[datetime, AfterValidator(utc_time)]


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
