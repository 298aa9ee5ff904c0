"""The campaign calendar: known traffic events (a sale, a newsletter, a TV spot) that capacity plans pre-scale for.

A calendar is a list of :class:`CampaignEvent` rows: ``start``, ``end`` (UTC), ``kind`` and an optional
``uplift`` (expected traffic during the event as a multiple of the traffic without it; above 0, at most 100). Read
one with :func:`read_events` from CSV (header ``start,end,kind,uplift``) or from YAML/JSON (a list of mappings, or a
mapping with an ``events`` list).

When an event has no uplift, the planner learns it from the past events of the same kind that have already ended
(:func:`learn_uplift`): for each, the mean traffic during the event over the mean traffic of the hour before it;
the median over those events is the kind's uplift. A kind with no past event and no given uplift is not
pre-scaled for (the reactive floor and the surge detector still act).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

MINUTES_PER_DAY = 1440
#: The largest uplift a calendar may give: x100 the usual traffic is already more than a sale or a TV spot
#: brings; beyond it a value is a typo (1e308 overflowed the replica count).
MAX_UPLIFT = 100.0


class CalendarError(ValueError):
    """A calendar that cannot be used. ``field`` names the offending column (and ``row`` the 1-based row)."""

    def __init__(self, field: str, message: str, row: int | None = None) -> None:
        where = f"row {row}: " if row is not None else ""
        super().__init__(f"{field}: {where}{message}")
        self.field = field
        self.row = row
        self.message = f"{where}{message}"


@dataclass(frozen=True)
class CampaignEvent:
    """One known event. ``uplift`` is ``None`` when it should be learned from past events of the same ``kind``."""

    start: datetime
    end: datetime
    kind: str
    uplift: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "kind": self.kind,
            "uplift": self.uplift,
        }


def _parse_time(value: Any, field: str, row: int, tz: str) -> datetime:
    import pandas as pd

    if isinstance(value, datetime):
        ts = pd.Timestamp(value)
    else:
        try:
            ts = pd.Timestamp(str(value).strip())
        except Exception:
            raise CalendarError(field, f"{value!r} is not a timestamp", row) from None
    if ts is pd.NaT or pd.isna(ts):
        raise CalendarError(field, f"{value!r} is not a timestamp", row)
    if ts.tzinfo is None:
        try:
            ts = ts.tz_localize(tz)
        except Exception as exc:
            raise CalendarError("tz", f"unknown time zone {tz!r} ({exc})") from exc
    return ts.tz_convert("UTC").to_pydatetime()


def events_from_rows(rows: Iterable[dict[str, Any]], *, tz: str = "UTC") -> list[CampaignEvent]:
    """Validate raw rows (``start``, ``end``, ``kind``, optional ``uplift``) into events sorted by start."""
    events: list[CampaignEvent] = []
    for i, raw in enumerate(rows, start=1):
        if not isinstance(raw, dict):
            raise CalendarError("events", "each event must be a mapping with start, end, kind", i)
        for col in ("start", "end", "kind"):
            if raw.get(col) in (None, ""):
                raise CalendarError(col, f"missing {col!r}", i)
        start = _parse_time(raw["start"], "start", i, tz)
        end = _parse_time(raw["end"], "end", i, tz)
        if end <= start:
            raise CalendarError("end", f"must be after start (end {end.isoformat()}, start {start.isoformat()})", i)
        kind = str(raw["kind"]).strip()
        if not kind:
            raise CalendarError("kind", "must not be empty", i)
        uplift_raw = raw.get("uplift")
        uplift: float | None = None
        if uplift_raw not in (None, ""):
            try:
                uplift = float(uplift_raw)
            except (TypeError, ValueError):
                raise CalendarError("uplift", f"{uplift_raw!r} is not a number", i) from None
            if not (math.isfinite(uplift) and 0 < uplift <= MAX_UPLIFT):
                raise CalendarError("uplift", f"must be a multiple of normal traffic above 0 and at most {MAX_UPLIFT:g}"
                                    f", got {uplift_raw!r}", i)
        events.append(CampaignEvent(start=start, end=end, kind=kind, uplift=uplift))
    events.sort(key=lambda e: (e.start, e.end, e.kind))
    return events


def read_events(path: str | Path, *, tz: str = "UTC") -> list[CampaignEvent]:
    """Read a calendar file: ``.csv`` (header ``start,end,kind[,uplift]``), ``.json``, ``.yaml``/``.yml``.

    Naive timestamps are taken to be in ``tz``. Raises :class:`CalendarError` naming the field (and row).
    """
    path = Path(path)
    if not path.is_file():
        raise CalendarError("events", f"file not found: {path}")
    suffix = path.suffix.lower()
    try:
        text = path.read_text()
    except OSError as exc:
        raise CalendarError("events", f"cannot read {path}: {exc}") from exc
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        missing = [c for c in ("start", "end", "kind") if c not in (reader.fieldnames or [])]
        if missing:
            raise CalendarError(missing[0], f"missing column {missing[0]!r} in {path}")
        rows: Sequence[Any] = list(reader)
    elif suffix in (".json", ".yaml", ".yml"):
        try:
            if suffix == ".json":
                doc = json.loads(text)
            else:
                import yaml

                doc = yaml.safe_load(text)
        except Exception as exc:
            raise CalendarError("events", f"cannot parse {path}: {exc}") from exc
        if isinstance(doc, dict):
            doc = doc.get("events")
        if not isinstance(doc, list):
            raise CalendarError("events", f"{path} must hold a list of events (or a mapping with an 'events' list)")
        rows = doc
    else:
        raise CalendarError("events", f"{path}: use a .csv, .json, .yaml or .yml file")
    return events_from_rows(rows, tz=tz)


@dataclass(frozen=True)
class MinuteEvent:
    """An event on a trace's minute grid: minute indices ``[start, end)`` (0 = first minute of the trace)."""

    start: int
    end: int
    kind: str
    uplift: float | None = None


def events_on_grid(events: Sequence[CampaignEvent], grid_start: datetime, n_minutes: int) -> list[MinuteEvent]:
    """The events that overlap a grid of ``n_minutes`` minutes starting at ``grid_start`` (UTC), as indices."""
    if grid_start.tzinfo is None:
        raise CalendarError("grid_start", "must be timezone-aware (UTC)")
    g0 = grid_start.astimezone(timezone.utc)
    out = []
    for e in events:
        s = math.floor((e.start - g0).total_seconds() / 60.0)
        t = math.ceil((e.end - g0).total_seconds() / 60.0)
        if t <= 0 or s >= n_minutes:
            continue
        out.append(MinuteEvent(start=s, end=t, kind=e.kind, uplift=e.uplift))
    return out


def event_uplift(history: np.ndarray, event: MinuteEvent) -> float | None:
    """Observed uplift of one past event in ``history`` (minute counts from index 0), or None if unmeasurable.

    Mean traffic during the event over the mean of the 60 minutes before it: the same baseline the planner has
    when it pre-scales (the day before is no baseline for an event that recurs daily).
    """
    s, e = max(event.start, 0), min(event.end, len(history))
    if e <= s or event.start < 60:
        return None
    during = float(history[s:e].mean())
    base = float(history[event.start - 60 : event.start].mean())
    # One request of pseudo-count: a near-empty baseline does not turn into an absurd multiple.
    return (during + 1.0) / (base + 1.0)


def learn_uplift(history: np.ndarray, past_events: Sequence[MinuteEvent], kind: str) -> float | None:
    """Median observed uplift of the past events of ``kind`` (those that ended within ``history``)."""
    values = [
        u
        for ev in past_events
        if ev.kind == kind and ev.end <= len(history)
        for u in [event_uplift(history, ev)]
        if u is not None
    ]
    return float(np.median(values)) if values else None


__all__ = [
    "CalendarError",
    "CampaignEvent",
    "MinuteEvent",
    "event_uplift",
    "events_from_rows",
    "events_on_grid",
    "learn_uplift",
    "read_events",
]
