"""Repository for per-minute request rollups (and the recent order counts the cache-warm fallback uses)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Iterable, Mapping

from sqlalchemy import Connection, Engine, func, select

from .capacity_tables import request_minutes
from .engine import dialect_insert
from .retention import purge_minutes_before
from .tables import order_lines, orders


def floor_minute(at: datetime) -> datetime:
    """The UTC minute containing ``at`` (which must be timezone-aware)."""
    if at.tzinfo is None:
        raise ValueError("naive datetime passed to the store; use timezone-aware UTC")
    return at.astimezone(timezone.utc).replace(second=0, microsecond=0)


def _upsert(conn: Connection, rows: list[dict]):
    t = request_minutes
    stmt = dialect_insert(conn, t).values(rows)
    return stmt.on_conflict_do_update(
        index_elements=[t.c.minute, t.c.route],
        set_={
            "count": t.c.count + stmt.excluded.count,
            "errors": t.c.errors + stmt.excluded.errors,
            "latency_ms_sum": t.c.latency_ms_sum + stmt.excluded.latency_ms_sum,
        },
    )


def record_requests(
    bind: Engine | Connection,
    minute: datetime,
    route: str,
    *,
    count: int = 1,
    errors: int = 0,
    latency_ms_sum: float = 0.0,
) -> None:
    """Add ``count`` requests (``errors`` of them failed, ``latency_ms_sum`` total latency) to a minute's rollup.

    One ``INSERT ... ON CONFLICT DO UPDATE`` statement, so concurrent writers (several workers, several replicas)
    add up instead of overwriting each other. ``route`` is the route template, never the raw path (bounded
    cardinality). The HTTP middleware calls this, ideally batched per process every few seconds.
    """
    record_request_batch(
        bind,
        [{"minute": minute, "route": route, "count": count, "errors": errors, "latency_ms_sum": latency_ms_sum}],
    )


def purge_request_rollups(engine: Engine, before: datetime, max_span: timedelta = timedelta(days=1)) -> int:
    """Delete request rollups of minutes before ``before``, at most ``max_span`` of the oldest per call."""
    return purge_minutes_before(engine, (request_minutes,), before, max_span)


def record_request_batch(bind: Engine | Connection, rollups: Iterable[Mapping]) -> int:
    """Upsert-increment many ``{minute, route, count, errors, latency_ms_sum}`` rollups; returns rows sent.

    Rows with the same (minute, route) are merged first (PostgreSQL refuses to touch one row twice in a statement).
    """
    merged: dict[tuple[datetime, str], dict] = {}
    for r in rollups:
        count, errors = int(r.get("count", 1)), int(r.get("errors", 0))
        if count < 0 or errors < 0 or errors > count:
            raise ValueError("need 0 <= errors <= count")
        key = (floor_minute(r["minute"]), str(r["route"]))
        row = merged.setdefault(
            key, {"minute": key[0], "route": key[1], "count": 0, "errors": 0, "latency_ms_sum": 0.0}
        )
        row["count"] += count
        row["errors"] += errors
        row["latency_ms_sum"] += float(r.get("latency_ms_sum", 0.0))
    if not merged:
        return 0
    rows = sorted(merged.values(), key=lambda x: (x["minute"], x["route"]))  # fixed lock order
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            conn.execute(_upsert(conn, rows))
    else:
        bind.execute(_upsert(bind, rows))
    return len(rows)


def request_totals(bind: Engine | Connection, since: datetime, until: datetime) -> list[tuple[datetime, int]]:
    """Total requests per minute over all routes for ``since <= minute < until``, oldest first.

    Minutes without a row had no recorded requests (callers put them on a full grid as zeros).
    """
    t = request_minutes
    q = (
        select(t.c.minute, func.sum(t.c.count))
        .where(t.c.minute >= floor_minute(since), t.c.minute < until)
        .group_by(t.c.minute)
        .order_by(t.c.minute)
    )
    if isinstance(bind, Engine):
        with bind.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            rows = conn.execute(q).all()
    else:
        rows = bind.execute(q).all()
    return [(m, int(c)) for m, c in rows]


def request_rollup(bind: Engine | Connection, minute: datetime, route: str) -> dict | None:
    """One minute's rollup for one route (or None)."""
    t = request_minutes
    q = select(t).where(t.c.minute == floor_minute(minute), t.c.route == route)
    if isinstance(bind, Engine):
        with bind.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            row = conn.execute(q).mappings().first()
    else:
        row = bind.execute(q).mappings().first()
    return dict(row) if row else None


def recent_order_units(bind: Engine | Connection, since: datetime) -> Counter:
    """Units ordered per ``sku/country`` (or ``sku`` when the order has no country) since ``since``."""
    q = (
        select(order_lines.c.sku, order_lines.c.qty, orders.c.ship_to)
        .select_from(order_lines.join(orders, orders.c.id == order_lines.c.order_id))
        .where(orders.c.created_at >= since)
    )
    if isinstance(bind, Engine):
        with bind.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            rows = conn.execute(q).all()
    else:
        rows = bind.execute(q).all()
    units: Counter = Counter()
    for sku, qty, ship_to in rows:
        country = (ship_to or {}).get("country") if isinstance(ship_to, dict) else None
        units[f"{sku}/{str(country).upper()}" if country else str(sku)] += int(qty)
    return units


class RequestRollupBuffer:
    """Thread-safe in-process accumulator for request rollups, flushed as one upsert batch.

    The HTTP middleware calls :meth:`add` per request (a dict update under a lock, no I/O) and something periodic
    (the app's lifespan task, every few seconds) calls :meth:`flush`, so the database sees one statement per
    flush instead of one per request. On a failed flush the counts are put back and retried next time.
    """

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._rows: dict[tuple[datetime, str], list[float]] = {}

    def add(self, at: datetime, route: str, *, error: bool = False, latency_ms: float = 0.0) -> None:
        key = (floor_minute(at), route)
        with self._lock:
            row = self._rows.get(key)
            if row is None:
                self._rows[key] = [1, int(error), float(latency_ms)]
            else:
                row[0] += 1
                row[1] += int(error)
                row[2] += float(latency_ms)

    def observer(self, clock, *, error_status: int = 500):
        """An observer for ``api.middleware.RequestMetricsMiddleware``: ``(route, method, status, seconds)``.

        Records the request in the minute ``clock.now()`` falls in; statuses >= ``error_status`` count as errors.
        """

        def observe(route: str, method: str, status: int, seconds: float) -> None:
            self.add(clock.now(), route, error=status >= error_status, latency_ms=seconds * 1000.0)

        return observe

    def pending(self) -> int:
        with self._lock:
            return len(self._rows)

    def flush(self, bind: Engine | Connection) -> int:
        """Write everything accumulated so far; returns the number of (minute, route) rows written."""
        with self._lock:
            rows, self._rows = self._rows, {}
        if not rows:
            return 0
        batch = [
            {"minute": m, "route": r, "count": int(c), "errors": int(e), "latency_ms_sum": lat}
            for (m, r), (c, e, lat) in rows.items()
        ]
        try:
            return record_request_batch(bind, batch)
        except Exception:
            with self._lock:
                for key, (c, e, lat) in rows.items():
                    row = self._rows.setdefault(key, [0, 0, 0.0])
                    row[0] += c
                    row[1] += e
                    row[2] += lat
            raise
