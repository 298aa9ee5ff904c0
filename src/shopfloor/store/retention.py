"""Retention of per-minute rollup tables: delete the oldest minutes a bounded span at a time."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Sequence

from sqlalchemy import Engine, Table, delete, func, select


def purge_minutes_before(engine: Engine, tables: Sequence[Table], before: datetime,
                         max_span: timedelta = timedelta(days=1)) -> int:
    """Delete the rows of ``tables`` (each with a ``minute`` column leading its primary key) whose minute is before
    ``before``: at most ``max_span`` from the oldest minute among them per call, in one transaction, so that the
    first purge of a long history holds the write lock briefly and later calls go on from there. Returns the rows
    deleted (0 when nothing is that old)."""
    with engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
        starts = [conn.execute(select(func.min(t.c.minute))).scalar() for t in tables]
    starts = [m if m.tzinfo else m.replace(tzinfo=before.tzinfo) for m in starts if m is not None]
    if not starts or min(starts) >= before:
        return 0
    cutoff = min(before, min(starts) + max_span)
    with engine.begin() as conn:
        return sum(conn.execute(delete(t).where(t.c.minute < cutoff)).rowcount for t in tables)
