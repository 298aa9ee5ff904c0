"""What a valid fulfillment event is: the one definition ``POST /v1/fulfillment/events`` and
``shopfloor fulfillment import`` both hold events to.

``EventIn`` is an event as a feed sends it (the API's JSON object, a file's row), checked field by field;
``missing_return_fields`` names what a ``returned`` event lacks; ``EventWindow`` refuses times too far from the
clock (settings ``fulfillment_max_future_h`` and ``fulfillment_max_age_days``). ``to_event`` turns a valid one into
the ``FulfillmentEvent`` the statistics and the store take. The events' times are ``shopfloor.validation``'s
``UtcDatetime`` (timezone-aware, converted to UTC), the same type as every API route's times.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ..validation import UtcDatetime
from .stats import EVENT_TYPES, RETURN_REASONS, FulfillmentEvent

#: What an ``event_id`` and an ``order_id`` may hold.
ID_PATTERN = r"^[A-Za-z0-9_.:\-/]+$"
#: ``country``: an ISO 3166 alpha-2 code, either case.
COUNTRY_PATTERN = r"^[A-Za-z]{2}$"
#: Units one ``returned`` event may carry.
RETURN_QTY_MAX = 100_000
#: Fields a ``returned`` event must have (other types need none of them).
RETURN_FIELDS = ("sku", "qty", "reason")
#: What the API answers for a NUL character anywhere in a body (PostgreSQL's text cannot hold one).
NUL_MESSAGE = "text may not contain the NUL character (\\u0000)"


# One fulfillment event as a feed sends it. Every rule is checked here but the fields a ``returned`` event needs
# (``missing_return_fields``) and how far its times may be from the clock (``EventWindow``), which the API answers
# in its own shape (``invalid_input``). No docstring: it would become the API schema's description.
class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(min_length=1, max_length=120, pattern=ID_PATTERN)
    order_id: str = Field(min_length=1, max_length=120, pattern=ID_PATTERN)
    type: Literal[EVENT_TYPES]
    at: UtcDatetime
    warehouse: str = Field(min_length=1, max_length=64)
    carrier: str | None = Field(default=None, min_length=1, max_length=64)
    country: str | None = Field(default=None, pattern=COUNTRY_PATTERN)
    postal_code: str | None = Field(default=None, min_length=1, max_length=16)
    region: str | None = Field(default=None, min_length=1, max_length=64)
    placed_at: UtcDatetime | None = None
    origin_region: str | None = Field(default=None, min_length=1, max_length=64)
    # ``returned`` events only: what came back, why, and whether it goes back on hand after inspection.
    sku: str | None = Field(default=None, min_length=1, max_length=64)
    qty: int | None = Field(default=None, ge=1, le=RETURN_QTY_MAX, strict=True)
    reason: Literal[RETURN_REASONS] | None = None
    restock: bool | None = None

    @field_validator("event_id", "order_id", "warehouse", "carrier", "country", "postal_code", "region",
                     "origin_region", "sku")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        # The API refuses a NUL character before the body reaches this model (the same message); a file does not.
        if value is not None and "\x00" in value:
            raise PydanticCustomError("nul_character", NUL_MESSAGE)
        return value

    @model_validator(mode="after")
    def _destination(self) -> "EventIn":
        # A return comes back to a warehouse; it needs no destination.
        if self.type != "returned" and self.country is None and self.region is None:
            raise ValueError("an event needs a destination: country (with postal_code) or region")
        return self

    def missing_return_fields(self) -> list[str]:
        """Fields a ``returned`` event lacks (none for other types)."""
        if self.type != "returned":
            return []
        return [name for name in RETURN_FIELDS if getattr(self, name) is None]

    def to_event(self) -> FulfillmentEvent:
        """The event the statistics and the store take (check :meth:`missing_return_fields` first)."""
        return FulfillmentEvent(**self.model_dump())


#: The fields an event has, in order (a file's columns are these).
EVENT_FIELDS = tuple(EventIn.model_fields)
#: The fields an event must have.
REQUIRED_FIELDS = tuple(name for name, f in EventIn.model_fields.items() if f.is_required())


@dataclass(frozen=True, slots=True)
class OutOfWindow:
    """An event time too far from the clock: ``field`` (``at`` or ``placed_at``), its value, and the bound it
    crosses (``bound`` is ``latest`` or ``earliest``, ``limit`` its time). ``text`` says so, value first."""

    field: str
    when: datetime
    bound: str
    limit: datetime
    text: str


@dataclass(frozen=True, slots=True)
class EventWindow:
    """The times an event may carry, around a clock reading ``now``: at most ``max_future_h`` hours ahead (a feed
    dated in year 9999 would break every later promise) and ``max_age_days`` days back (one event from 1970 skews
    every duration it takes part in). Settings ``fulfillment_max_future_h`` and ``fulfillment_max_age_days``."""

    now: datetime
    max_future_h: float
    max_age_days: float
    #: How the messages name the clock.
    clock: str = "the server's clock"

    @classmethod
    def from_settings(cls, settings, now: datetime, clock: str = "the server's clock") -> "EventWindow":
        return cls(now, settings.fulfillment_max_future_h, settings.fulfillment_max_age_days, clock)

    @property
    def latest(self) -> datetime:
        return self.now + timedelta(hours=self.max_future_h)

    @property
    def earliest(self) -> datetime:
        return self.now - timedelta(days=self.max_age_days)

    def check(self, event: EventIn | FulfillmentEvent) -> OutOfWindow | None:
        """The first of ``at`` and ``placed_at`` outside the window, or None."""
        latest, earliest = self.latest, self.earliest
        for name in ("at", "placed_at"):
            when = getattr(event, name)
            if when is None:
                continue
            if when > latest:
                return OutOfWindow(name, when, "latest", latest, (
                    f"{when.isoformat()} is in the future (more than {self.max_future_h:g} h ahead of "
                    f"{self.clock})"))
            if when < earliest:
                return OutOfWindow(name, when, "earliest", earliest, (
                    f"{when.isoformat()} is too far in the past (more than {self.max_age_days:g} days before "
                    f"{self.clock}; see fulfillment_max_age_days)"))
        return None
