"""Persistence for the promise area: idempotent event ingest, keyed statistics, stock reads.

Ingest transactions first bump the ``stats_seq`` counter row, which serialises statistic writers on every backend
(SQLite writers are serialised anyway; on PostgreSQL the row lock does it). Writers therefore never lose each
other's updates, and readers refresh incrementally: every state row carries the ``seq`` of its last write.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping, Sequence

from sqlalchemy import Connection, Engine, bindparam, func, select, update

from ..domain.catalog import Warehouse
from ..domain.errors import InvalidInput
from ..domain.stock import StockLevel
from ..fulfillment.stats import (
    FulfillmentEvent,
    FulfillmentStats,
    OrderTrack,
    StatsConfig,
    cal_key,
    from_hours,
    state_from_dict,
    to_hours,
)
from .engine import dialect_insert
from .raw import RawStatements, in_list
from .analytics import record_receipt, refresh_journeys
from .analytics_tables import return_restocks
from .promise_tables import fulfillment_events, fulfillment_orders, fulfillment_stats, promise_meta
from .orders_repo import enqueue_event
from .tables import orders, skus, stock, warehouses

SEQ = "stats_seq"


_UPSERTS: dict[tuple[str, str, str, tuple[str, ...]], Any] = {}


def _upsert(conn: Connection, table, rows: list[dict[str, Any]], key: str) -> None:
    if not rows:
        return
    cols = tuple(c for c in rows[0] if c != key)
    cache_key = (conn.dialect.name, table.name, key, cols)
    stmt = _UPSERTS.get(cache_key)
    if stmt is None:  # built once per shape: the checkout's promise bookkeeping upserts in every group commit
        base = dialect_insert(conn, table)
        stmt = _UPSERTS[cache_key] = base.on_conflict_do_update(
            index_elements=[key], set_={c: getattr(base.excluded, c) for c in cols})
    conn.execute(stmt, rows)


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    duplicates: int
    overdue_resolved: int = 0
    restocked_units: int = 0  # units of inspected returns put back on hand by this call
    accepted_by_type: tuple[tuple[str, int], ...] = ()  # the new events by type, for the metrics


_bump_seq = update(promise_meta).where(promise_meta.c.name == SEQ).values(value=promise_meta.c.value + 1)
_read_seq = select(promise_meta.c.value).where(promise_meta.c.name == SEQ)


def _build_promise_statement(shape: tuple) -> Any:
    """The checkout's promise bookkeeping statements (see :meth:`SqlFulfillmentStore.record_promises_in`), built
    from the same tables: ``(name, dialect name)``, or ``(look-up, length of its IN list)``."""
    name, arg = shape
    if name == "bump_seq":
        return _bump_seq
    if name == "read_seq":
        return _read_seq
    if name == "create_seq":
        return dialect_insert(arg, promise_meta).values(name=SEQ, value=0).on_conflict_do_nothing()
    if name in _UPSERT_COLUMNS:
        table, key, cols = _UPSERT_COLUMNS[name]
        base = dialect_insert(arg, table)
        return base.on_conflict_do_update(index_elements=[key], set_={c: getattr(base.excluded, c) for c in cols})
    col, other = ((fulfillment_orders.c.order_id, fulfillment_orders.c.track) if name == "tracks"
                  else (fulfillment_stats.c.key, fulfillment_stats.c.state))
    return select(col, other).where(col.in_([bindparam(f"b_{i}", type_=col.type) for i in range(arg)]))


_UPSERT_COLUMNS = {
    "save_tracks": (fulfillment_orders, "order_id", ("track", "promise_due_at", "updated_at")),
    "save_states": (fulfillment_stats, "key", ("state", "seq", "updated_at")),
}
_raw_promise = RawStatements(_build_promise_statement)


class SqlFulfillmentStore:
    """Fulfillment events in, keyed statistics out, on SQLite or PostgreSQL (Core, parameterised)."""

    def __init__(self, engine: Engine, config: StatsConfig | None = None, inspection_delay_h: float = 24.0) -> None:
        self.engine = engine
        self.config = config or StatsConfig()
        self.inspection_delay_h = inspection_delay_h

    # ------------------------------------------------------------------ helpers
    def _next_seq(self, conn: Connection) -> int:
        conn.execute(dialect_insert(conn, promise_meta).values(name=SEQ, value=0).on_conflict_do_nothing())
        conn.execute(_bump_seq)
        return int(conn.execute(_read_seq).scalar_one())

    def _load_states(self, conn: Connection, keys: Iterable[str]) -> dict[str, Any]:
        keys = sorted(set(keys))
        out: dict[str, Any] = {}
        for i in range(0, len(keys), 500):
            rows = conn.execute(select(fulfillment_stats.c.key, fulfillment_stats.c.state)
                                .where(fulfillment_stats.c.key.in_(keys[i:i + 500])))
            for key, text in rows:
                out[key] = state_from_dict(json.loads(text))
        return out

    def _save_states(self, conn: Connection, states: Mapping[str, Any], seq: int, now: datetime) -> None:
        rows = [{"key": k, "state": json.dumps(v.to_dict(), separators=(",", ":")), "seq": seq, "updated_at": now}
                for k, v in sorted(states.items())]
        _upsert(conn, fulfillment_stats, rows, "key")

    def _load_tracks(self, conn: Connection, order_ids: Iterable[str]) -> dict[str, OrderTrack]:
        ids = sorted(set(order_ids))
        out: dict[str, OrderTrack] = {}
        for i in range(0, len(ids), 500):
            for oid, text in conn.execute(select(fulfillment_orders.c.order_id, fulfillment_orders.c.track)
                                          .where(fulfillment_orders.c.order_id.in_(ids[i:i + 500]))):
                out[oid] = OrderTrack.from_json(text)
        return out

    def _save_tracks(self, conn: Connection, tracks: Iterable[OrderTrack], now: datetime) -> None:
        rows = []
        for t in tracks:
            check = t.next_check_h
            rows.append({"order_id": t.order_id, "track": t.to_json(),
                         "promise_due_at": from_hours(check) if check is not None else None, "updated_at": now})
        _upsert(conn, fulfillment_orders, rows, "order_id")

    def _warehouse_regions(self, conn: Connection, ids: Iterable[str]) -> dict[str, str]:
        ids = sorted(set(ids))
        return dict(conn.execute(select(warehouses.c.id, warehouses.c.region).where(warehouses.c.id.in_(ids))).all())

    # ------------------------------------------------------------------ writes
    def ingest(self, events: Sequence[FulfillmentEvent], now: datetime) -> IngestResult:
        """Store new events (by ``event_id``; repeats are counted and ignored) and fold them into the statistics,
        in one transaction. Events may arrive in any order. Overdue recorded promises are resolved as misses."""
        with self.engine.begin() as conn:
            self._check_returns(conn, events)
            seq = self._next_seq(conn)
            new: list[FulfillmentEvent] = []
            for ev in events:
                res = conn.execute(dialect_insert(conn, fulfillment_events).values(
                    event_id=ev.event_id, order_id=ev.order_id, type=ev.type, at=ev.at, warehouse=ev.warehouse,
                    carrier=ev.carrier, country=ev.country, postal_code=ev.postal_code, region=ev.region,
                    placed_at=ev.placed_at, origin_region=ev.origin_region, received_at=now,
                    sku=ev.sku, qty=ev.qty, reason=ev.reason, restock=ev.restock,
                ).on_conflict_do_nothing().returning(fulfillment_events.c.event_id))
                # RETURNING, not rowcount: psycopg reports -1 for INSERT ... ON CONFLICT DO NOTHING.
                if res.first() is not None:
                    new.append(ev)
            self._queue_restocks(conn, [e for e in new if e.type == "returned" and e.restock])
            restocked = self._apply_due_restocks(conn, now)
            accepted = len(new)
            by_type = tuple(sorted(Counter(e.type for e in new).items()))
            new = [e for e in new if e.type != "returned"]  # returns are rows for the analytics, not statistics
            refresh_journeys(conn, {e.order_id for e in new})
            tracks = self._load_tracks(conn, [e.order_id for e in new])
            regions = self._warehouse_regions(conn, [e.warehouse for e in new])
            keys: set[str] = set()
            for ev in new:
                probe = tracks.get(ev.order_id) or OrderTrack(ev.order_id)
                probe = OrderTrack.from_json(probe.to_json())
                probe.warehouse = probe.warehouse or ev.warehouse
                probe.origin_region = probe.origin_region or ev.origin_region or regions.get(ev.warehouse)
                probe.dest_region = probe.dest_region or ev.region or ev.country
                probe.carrier = probe.carrier or ev.carrier
                keys.update(FulfillmentStats.keys_for(probe))
            overdue = self._overdue(conn, now)
            for t in overdue:
                if t.promise_conf is not None:
                    keys.add(cal_key(t.promise_conf))
            stats = FulfillmentStats(self.config, self._load_states(conn, keys))
            for ev in sorted(new, key=lambda e: (e.at, e.event_id)):
                track = tracks.setdefault(ev.order_id, OrderTrack(ev.order_id))
                stats.apply(track, ev, origin_region=regions.get(ev.warehouse))
            now_h = to_hours(now)
            resolved = 0
            for t in overdue:
                if t.order_id in tracks:
                    t = tracks[t.order_id]
                if stats.resolve_promise(t, now_h):
                    resolved += 1
                tracks[t.order_id] = t
            self._save_tracks(conn, tracks.values(), now)
            self._save_states(conn, stats.states, seq, now)
            _publish_shipped(conn, [e for e in new if e.type == "handed_to_carrier"], now)
        return IngestResult(accepted, len(events) - accepted, resolved, restocked, by_type)

    # ------------------------------------------------------------------ returns
    def _check_returns(self, conn: Connection, events: Sequence[FulfillmentEvent]) -> None:
        """Every returned SKU must be in the catalog, and a restocking return's warehouse must be known: the
        first that is not is refused (422 naming the event's field) before anything is written."""
        returns = [(i, e) for i, e in enumerate(events) if e.type == "returned"]
        if not returns:
            return
        known_skus = {r[0] for r in conn.execute(select(skus.c.sku).where(
            skus.c.sku.in_(sorted({e.sku for _, e in returns}))))}
        known_wh = {r[0] for r in conn.execute(select(warehouses.c.id).where(
            warehouses.c.id.in_(sorted({e.warehouse for _, e in returns}))))}
        for i, e in returns:
            if e.sku not in known_skus:
                raise InvalidInput(f"events.{i}.sku: unknown SKU {e.sku!r} (event {e.event_id})",
                                   [{"field": f"events.{i}.sku", "event_id": e.event_id, "sku": e.sku}])
            if e.restock and e.warehouse not in known_wh:
                raise InvalidInput(f"events.{i}.warehouse: unknown warehouse {e.warehouse!r} for a restocking "
                                   f"return (event {e.event_id})",
                                   [{"field": f"events.{i}.warehouse", "event_id": e.event_id}])

    def _queue_restocks(self, conn: Connection, returns: Sequence[FulfillmentEvent]) -> None:
        if not returns:
            return
        delay = timedelta(hours=self.inspection_delay_h)
        conn.execute(return_restocks.insert(), [
            {"event_id": e.event_id, "sku": e.sku, "warehouse": e.warehouse, "qty": int(e.qty),
             "available_at": e.at + delay, "applied_at": None} for e in returns])

    def _apply_due_restocks(self, conn: Connection, now: datetime) -> int:
        """Put inspected returns back on hand: each due row raises its stock row (created at need) and becomes a
        receipt dated when it left inspection. Rows are taken in (sku, warehouse) order, the fixed lock order."""
        rr = return_restocks
        due = conn.execute(select(rr.c.event_id, rr.c.sku, rr.c.warehouse, rr.c.qty, rr.c.available_at)
                           .where(rr.c.applied_at.is_(None), rr.c.available_at <= now)
                           .order_by(rr.c.sku, rr.c.warehouse, rr.c.event_id).limit(5000)).all()
        units = 0
        for event_id, sku, wid, qty, available_at in due:
            claimed = conn.execute(update(rr).where(rr.c.event_id == event_id, rr.c.applied_at.is_(None))
                                   .values(applied_at=now))
            if claimed.rowcount != 1:  # another writer applied it first
                continue
            raised = conn.execute(update(stock).where(stock.c.sku == sku, stock.c.warehouse == wid)
                                  .values(on_hand=stock.c.on_hand + qty, updated_at=now))
            if raised.rowcount == 0:
                conn.execute(stock.insert().values(sku=sku, warehouse=wid, on_hand=qty, reserved=0, updated_at=now))
            record_receipt(conn, sku, wid, int(qty), available_at, "return")
            units += int(qty)
        return units

    def apply_due_restocks(self, now: datetime) -> int:
        """Put every return whose inspection is over back on hand; returns the units restocked."""
        with self.engine.begin() as conn:
            return self._apply_due_restocks(conn, now)

    def _overdue(self, conn: Connection, now: datetime) -> list[OrderTrack]:
        rows = conn.execute(select(fulfillment_orders.c.track)
                            .where(fulfillment_orders.c.promise_due_at.is_not(None),
                                   fulfillment_orders.c.promise_due_at < now)
                            .order_by(fulfillment_orders.c.order_id).limit(5000))
        return [OrderTrack.from_json(t) for (t,) in rows]

    def record_promise(self, order_id: str, window: Any, now: datetime) -> None:
        """Remember the promise shown for ``order_id`` (a ``DeliveryWindow``) for calibration feedback."""
        with self.engine.begin() as conn:
            self.record_promises_in(conn, [(order_id, window)], now)

    def record_promises_in(self, conn: Connection, items: Sequence[tuple[str, Any]], now: datetime, *,
                           new_orders: bool = False) -> None:
        """:meth:`record_promise` for many orders in the caller's transaction (the checkout's group commit, once
        per batch): the same reads and writes as the ingest's, on the DBAPI cursor with SQL compiled once.
        ``new_orders``: the orders were created in this very transaction (the checkout writer's hook), so no
        track can exist for them yet and the look-up of their tracks is skipped."""
        if not items:
            return
        dialect = conn.dialect.name
        seq = self._next_seq_raw(conn)
        if new_orders:
            tracks: dict[str, OrderTrack] = {}
        else:
            order_ids = in_list(sorted({oid for oid, _ in items}))
            tracks = {oid: OrderTrack.from_json(text) for oid, text in _raw_promise.fetchall(
                conn, ("tracks", len(order_ids)), {f"b_{i}": v for i, v in enumerate(order_ids)})}
        keys = in_list(sorted({cal_key(w.confidence) for _, w in items}))
        states = {key: state_from_dict(json.loads(text)) for key, text in _raw_promise.fetchall(
            conn, ("states", len(keys)), {f"b_{i}": v for i, v in enumerate(keys)})}
        stats = FulfillmentStats(self.config, states)
        now_h = to_hours(now)
        for order_id, window in items:
            track = tracks.setdefault(order_id, OrderTrack(order_id))
            window.attach_to(track)
            stats.record_residual(track)
            stats.resolve_promise(track, now_h)
        track_rows = []
        for t in tracks.values():
            check = t.next_check_h
            track_rows.append({"order_id": t.order_id, "track": t.to_json(),
                               "promise_due_at": from_hours(check) if check is not None else None, "updated_at": now})
        _raw_promise.run(conn, ("save_tracks", dialect), track_rows)
        _raw_promise.run(conn, ("save_states", dialect), [
            {"key": k, "state": json.dumps(v.to_dict(), separators=(",", ":")), "seq": seq, "updated_at": now}
            for k, v in sorted(stats.states.items())])

    @staticmethod
    def _next_seq_raw(conn: Connection) -> int:
        """:meth:`_next_seq` on the DBAPI cursor: the counter row exists after the first bump, so the insert is
        only tried when the update found nothing."""
        if _raw_promise.execute(conn, ("bump_seq", None), {}) == 0:
            _raw_promise.execute(conn, ("create_seq", conn.dialect.name), {})
            _raw_promise.execute(conn, ("bump_seq", None), {})
        return int(_raw_promise.fetchall(conn, ("read_seq", None), {})[0][0])

    # ------------------------------------------------------------------ reads
    def _reader(self):
        return self.engine.connect().execution_options(sqlite_begin="DEFERRED")

    def current_seq(self) -> int:
        with self._reader() as conn:
            v = conn.execute(select(promise_meta.c.value).where(promise_meta.c.name == SEQ)).scalar()
            return int(v or 0)

    def load_changed(self, after_seq: int) -> tuple[int, dict[str, Any]]:
        """States written after ``after_seq``, and the highest seq seen."""
        with self._reader() as conn:
            rows = conn.execute(select(fulfillment_stats.c.key, fulfillment_stats.c.state, fulfillment_stats.c.seq)
                                .where(fulfillment_stats.c.seq > after_seq)).all()
        top = after_seq
        out = {}
        for key, text, seq in rows:
            out[key] = state_from_dict(json.loads(text))
            top = max(top, int(seq))
        return top, out

    def event_count(self) -> int:
        with self._reader() as conn:
            return int(conn.execute(select(func.count()).select_from(fulfillment_events)).scalar_one())

    def track(self, order_id: str) -> OrderTrack | None:
        with self._reader() as conn:
            return self._load_tracks(conn, [order_id]).get(order_id)


class SqlStatsSource:
    """The engine's ``StatsSource`` over the database: an in-memory copy refreshed incrementally (at most every
    ``refresh_s`` seconds, and only the rows whose seq moved), so the hot path rarely touches the database."""

    def __init__(self, store: SqlFulfillmentStore, refresh_s: float = 2.0, clock: Any = None) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self.clock = clock
        self._stats = FulfillmentStats(store.config)
        self._seq = 0
        self._checked = float("-inf")
        self._lock = threading.Lock()

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < self.refresh_s:
            return
        with self._lock:
            if not force and now - self._checked < self.refresh_s:
                return
            self._checked = now
            if self.store.current_seq() == self._seq:
                return
            top, changed = self.store.load_changed(self._seq)
            states = dict(self._stats.states)
            states.update(changed)
            self._stats = FulfillmentStats(self.store.config, states)
            self._seq = top

    def current(self) -> FulfillmentStats:
        self.refresh()
        return self._stats

    def record_promise(self, order_id: str, window: Any) -> None:
        from datetime import timezone

        now = self.clock.now() if self.clock else datetime.now(timezone.utc)
        self.store.record_promise(order_id, window, now)


class SqlStockReader:
    """Stock levels per SKU (one indexed query) and warehouses (cached for ``warehouse_ttl_s``).

    The checkout asks for one SKU's levels on every order. Through a pooled SQLAlchemy connection that single
    indexed read spent about two thirds of its time in check-out, BEGIN, ROLLBACK and check-in, so it runs on a few
    kept DBAPI connections in autocommit mode instead (each SELECT its own snapshot, as in a fresh transaction),
    with its SQL compiled once from the same table. When every kept connection is busy, or one fails, the read
    takes the pooled path as before.
    """

    def __init__(self, engine: Engine, warehouse_ttl_s: float = 30.0, kept_connections: int = 4) -> None:
        self.engine = engine
        self.ttl = warehouse_ttl_s
        self._whs: dict[str, Warehouse] = {}
        self._loaded = float("-inf")
        self._stmt = select(stock.c.sku, stock.c.warehouse, stock.c.on_hand, stock.c.reserved)
        # Built once: a fresh ``where`` per call cost SQLAlchemy a cache-key walk on the checkout's hot path.
        self._one = self._stmt.where(stock.c.sku == bindparam("b_sku"))
        compiled = self._one.compile(dialect=engine.dialect)
        self._raw_sql = compiled.string
        self._raw_params = (lambda sku: (sku,)) if compiled.positional else (lambda sku: {"b_sku": sku})
        self._max_kept = kept_connections
        self._idle: list[Any] = []  # kept DBAPI connections not in use (list append/pop are atomic)
        self._n_kept = 0
        self._kept_lock = threading.Lock()
        self._closed = False

    def stock_levels(self, sku: str) -> Sequence[StockLevel]:
        rows = self._kept_read(sku)
        if rows is None:
            with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
                rows = conn.execute(self._one, {"b_sku": sku}).all()
        return [StockLevel(r[0], r[1], int(r[2]), int(r[3])) for r in rows]

    def _kept_read(self, sku: str) -> list | None:
        """The rows through a kept connection, or None (none free, or it failed: the caller takes the pool)."""
        conn = self._take()
        if conn is None:
            return None
        try:
            cur = conn.cursor()
            try:
                cur.execute(self._raw_sql, self._raw_params(sku))
                rows = cur.fetchall()
            finally:
                cur.close()
        except Exception:  # a lost connection, a locked database: drop it, answer from the pool
            self._discard(conn)
            return None
        if self._closed:
            self._discard(conn)
        else:
            self._idle.append(conn)
        return rows

    def _take(self) -> Any:
        try:
            return self._idle.pop()
        except IndexError:
            pass
        with self._kept_lock:
            if self._closed or self._n_kept >= self._max_kept:
                return None
            self._n_kept += 1
        try:
            raw = self.engine.raw_connection()
            raw.detach()  # ours from now on: it no longer counts against (or returns to) the pool
            conn = raw.dbapi_connection
            if self.engine.dialect.name != "sqlite":  # SQLite's connections already run without implicit BEGIN
                conn.rollback()  # whatever the first connect left open
                conn.autocommit = True
            return conn
        except Exception:
            with self._kept_lock:
                self._n_kept -= 1
            return None

    def _discard(self, conn: Any) -> None:
        with self._kept_lock:
            self._n_kept -= 1
        try:
            conn.close()
        except Exception:  # noqa: BLE001 - already broken
            pass

    def close(self) -> None:
        """Close the kept connections (one in use is closed when its read ends)."""
        self._closed = True
        while self._idle:
            try:
                self._discard(self._idle.pop())
            except IndexError:
                break

    def stock_levels_many(self, skus: Sequence[str]) -> dict[str, list[StockLevel]]:
        """Levels of many SKUs in one query (listing pages)."""
        out: dict[str, list[StockLevel]] = {s: [] for s in skus}
        uniq = sorted(set(skus))
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            for i in range(0, len(uniq), 500):
                for r in conn.execute(self._stmt.where(stock.c.sku.in_(uniq[i:i + 500]))):
                    out[r[0]].append(StockLevel(r[0], r[1], int(r[2]), int(r[3])))
        return out

    def warehouses(self) -> Mapping[str, Warehouse]:
        now = time.monotonic()
        if now - self._loaded > self.ttl:
            with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
                rows = conn.execute(select(warehouses.c.id, warehouses.c.region, warehouses.c.country,
                                           warehouses.c.postal_prefixes)).all()
            self._whs = {r[0]: Warehouse(r[0], r[1], r[2], tuple(r[3] or ())) for r in rows}
            self._loaded = now
        return self._whs


def _publish_shipped(conn: Connection, handed: Sequence[FulfillmentEvent], now: datetime) -> None:
    """``OrderShipped`` (``order.shipped`` to webhook subscribers) for this shop's orders handed to a carrier, in
    the ingest's transaction. Feed events of orders the shop does not hold (a backtest's, a marketplace's) publish
    nothing."""
    if not handed:
        return
    ours = {r[0] for r in conn.execute(select(orders.c.id).where(orders.c.id.in_(sorted({e.order_id for e in handed}))))}
    for ev in handed:
        if ev.order_id in ours:
            enqueue_event(conn, "OrderShipped", ev.order_id, {
                "order_id": ev.order_id, "warehouse": ev.warehouse, "carrier": ev.carrier,
                "shipped_at": ev.at.isoformat()}, now)
