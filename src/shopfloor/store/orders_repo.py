"""Buy-path persistence: stock, orders, reservations, idempotency records and the outbox.

Every function takes an open ``Connection`` so callers decide the transaction (the unit of work). Statements are
built once with bind parameters so SQLAlchemy's compiled cache is hit on every call.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from typing import Any, Iterable, NamedTuple, Sequence

from sqlalchemy import Connection, bindparam, func, insert, select, update

from ..domain.catalog import Warehouse
from ..domain.stock import Allocation, StockLevel, lock_order
from .analytics import record_receipt
from .analytics_tables import stock_refusals
from .raw import RawStatements, in_list
from .tables import (
    idempotency_keys,
    order_lines,
    orders,
    outbox,
    reservations,
    skus,
    stock,
    warehouses,
)

_reserve_stmt = (
    update(stock)
    .where(
        stock.c.sku == bindparam("b_sku"),
        stock.c.warehouse == bindparam("b_wh"),
        stock.c.on_hand - stock.c.reserved >= bindparam("b_qty"),
    )
    .values(reserved=stock.c.reserved + bindparam("b_qty"))
)
_release_stmt = (
    update(stock)
    .where(
        stock.c.sku == bindparam("b_sku"),
        stock.c.warehouse == bindparam("b_wh"),
        stock.c.reserved >= bindparam("b_qty"),
    )
    .values(reserved=stock.c.reserved - bindparam("b_qty"))
)
_consume_stmt = (
    update(stock)
    .where(
        stock.c.sku == bindparam("b_sku"),
        stock.c.warehouse == bindparam("b_wh"),
        stock.c.reserved >= bindparam("b_qty"),
    )
    .values(reserved=stock.c.reserved - bindparam("b_qty"), on_hand=stock.c.on_hand - bindparam("b_qty"))
)


def new_id(prefix: str) -> str:
    """``prefix_`` and 32 hex digits, time-ordered: the creation time in milliseconds (12 digits) and then 80 random
    bits from the OS's generator (20 digits), the layout of a UUIDv7. Same length and alphabet as the ``uuid4().hex``
    it replaces, still unguessable, but ids made later sort later, so a group commit's new orders, lines,
    reservations, promise tracks and outbox events land at the right-hand end of each index keyed by them instead
    of dirtying one random leaf page per index per order (and writing each such page to the WAL)."""
    return f"{prefix}_{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


# --- idempotency ----------------------------------------------------------------------------------------------


def get_idempotency_record(conn: Connection, scope: str, key: str):
    return conn.execute(
        select(idempotency_keys.c.request_hash, idempotency_keys.c.status_code, idempotency_keys.c.response).where(
            idempotency_keys.c.scope == scope, idempotency_keys.c.key == key
        )
    ).first()


def get_idempotency_records(conn: Connection, scope_keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    """Look up many (scope, key) pairs in one statement: ``{(scope, key): (request_hash, status_code, response)}``
    (a tuple of the stored request hash, status code and response text)."""
    if not scope_keys:
        return {}
    wanted = set(scope_keys)
    scopes, keys = in_list(sorted({s for s, _ in wanted})), in_list(sorted({k for _, k in wanted}))
    row = {f"b_s{i}": v for i, v in enumerate(scopes)}
    row.update({f"b_k{i}": v for i, v in enumerate(keys)})
    rows = _raw_reads.fetchall(conn, ("idempotency", len(scopes), len(keys)), row)
    return {(r[0], r[1]): _IdemRecord(r[2], r[3], r[4]) for r in rows if (r[0], r[1]) in wanted}


class _IdemRecord(NamedTuple):
    request_hash: str
    status_code: int
    response: str


def _build_read(shape: tuple) -> Any:
    """The writer's hot reads, one statement per shape (``IN`` lists of a given length, each value a parameter)
    so that each runs on the DBAPI cursor with its SQL compiled once (see store/raw.py)."""
    name = shape[0]
    if name == "idempotency":
        # Both columns of the primary key (scope, key) are constrained, so the look-up is an index search per
        # pair. With ``key IN (...)`` alone the leading column was free and every group commit scanned the whole
        # table, a cost that grows with every order ever placed.
        return select(*(idempotency_keys.c[c] for c in ("scope", "key", "request_hash", "status_code", "response"))
                      ).where(idempotency_keys.c.scope.in_([bindparam(f"b_s{i}", type_=idempotency_keys.c.scope.type)
                                                            for i in range(shape[1])]),
                              idempotency_keys.c.key.in_([bindparam(f"b_k{i}", type_=idempotency_keys.c.key.type)
                                                          for i in range(shape[2])]))
    skus_in = [bindparam(f"b_sku{i}", type_=skus.c.sku.type) for i in range(shape[1])]
    if name == "prices":
        return select(skus.c.sku, skus.c.price, skus.c.currency).where(skus.c.sku.in_(skus_in))
    if name == "levels":
        return select(stock.c.sku, stock.c.warehouse, stock.c.on_hand, stock.c.reserved).where(stock.c.sku.in_(skus_in))
    raise KeyError(name)


_raw_reads = RawStatements(_build_read)


_insert_idem = insert(idempotency_keys)
_insert_order = insert(orders)
_insert_lines = insert(order_lines)
_insert_reservations = insert(reservations)
_insert_outbox = insert(outbox)


class PendingWrites:
    """Rows collected while a batch of checkouts is applied, written with one executemany per table."""

    __slots__ = ("idempotency", "orders", "lines", "reservations", "events", "refusals")

    def __init__(self) -> None:
        self.refusals: list[dict] = []
        self.idempotency: list[dict] = []
        self.orders: list[dict] = []
        self.lines: list[dict] = []
        self.reservations: list[dict] = []
        self.events: list[dict] = []

    def add_order(self, *, order_id: str, status: str, api_key_id: str, idempotency_key: str, ship_to: dict,
                  payment: dict, total: int, currency: str, split: bool, allocations: Sequence[Allocation],
                  unit_prices: dict[str, int], expires_at: datetime, now: datetime, shipping: dict | None = None,
                  promise: dict | None = None) -> None:
        self.orders.append(dict(
            id=order_id, status=status, api_key_id=api_key_id, idempotency_key=idempotency_key, ship_to=ship_to,
            payment=payment, total=total, currency=currency, shipping=shipping, promise=promise,
            split=1 if split else 0, reservation_expires_at=expires_at, created_at=now, updated_at=now,
        ))
        for i, a in enumerate(allocations, start=1):
            self.lines.append({"order_id": order_id, "line_no": i, "sku": a.sku, "warehouse": a.warehouse,
                               "qty": a.qty, "unit_price": unit_prices[a.sku]})
            self.reservations.append({"order_id": order_id, "sku": a.sku, "warehouse": a.warehouse, "qty": a.qty,
                                      "state": "active", "expires_at": expires_at})

    def add_event(self, event_type: str, aggregate_id: str, payload: dict, now: datetime) -> str:
        event_id = new_id("evt")
        self.events.append(dict(event_id=event_id, type=event_type, aggregate_id=aggregate_id, payload=payload,
                                status="pending", attempts=0, available_at=now, created_at=now))
        return event_id

    def add_idempotency(self, scope: str, key: str, request_hash: str, status_code: int, response: str,
                        now: datetime) -> None:
        self.idempotency.append(dict(scope=scope, key=key, request_hash=request_hash, status_code=status_code,
                                     response=response, created_at=now))

    def add_refusals(self, shortages: Sequence[dict], warehouse: str | None, now: datetime) -> None:
        """Lines refused for stock (an ``OutOfStock``'s shortages), kept for backorder frequency."""
        for s in shortages:
            if int(s["requested"]) <= int(s["available"]):  # listed with the others, but not short itself
                continue
            self.refusals.append({"at": now, "sku": str(s["sku"])[:64], "warehouse": warehouse,
                                  "requested": int(s["requested"]), "available": int(s["available"])})

    def flush(self, conn: Connection) -> None:
        # Parents before children (foreign keys). Straight to the DBAPI cursor with SQL compiled once (see
        # store/raw.py): the same statements and types, without SQLAlchemy's per-row execution overhead.
        for name, rows in (("orders", self.orders), ("order_lines", self.lines),
                           ("reservations", self.reservations), ("outbox", self.events),
                           ("idempotency_keys", self.idempotency), ("stock_refusals", self.refusals)):
            if rows:
                _raw_inserts.run(conn, name, rows)


_INSERTS = {"orders": _insert_order, "order_lines": _insert_lines, "reservations": _insert_reservations,
            "outbox": _insert_outbox, "idempotency_keys": _insert_idem, "stock_refusals": insert(stock_refusals)}
_raw_inserts = RawStatements(_INSERTS.__getitem__)


def save_idempotency_record(
    conn: Connection, scope: str, key: str, request_hash: str, status_code: int, response: str, now: datetime
) -> None:
    conn.execute(
        insert(idempotency_keys).values(
            scope=scope, key=key, request_hash=request_hash, status_code=status_code, response=response,
            created_at=now,
        )
    )


# --- catalog and stock ----------------------------------------------------------------------------------------


def load_prices(conn: Connection, sku_ids: Sequence[str]) -> dict[str, tuple[int, str]]:
    if not sku_ids:
        return {}
    sku_ids = in_list(sku_ids)
    rows = _raw_reads.fetchall(conn, ("prices", len(sku_ids)), {f"b_sku{i}": s for i, s in enumerate(sku_ids)})
    return {r[0]: (int(r[1]), r[2]) for r in rows}


def load_levels(conn: Connection, sku_ids: Sequence[str]) -> list[StockLevel]:
    if not sku_ids:
        return []
    sku_ids = in_list(sku_ids)
    rows = _raw_reads.fetchall(conn, ("levels", len(sku_ids)), {f"b_sku{i}": s for i, s in enumerate(sku_ids)})
    return [StockLevel(r[0], r[1], int(r[2]), int(r[3])) for r in rows]


def load_warehouses(conn: Connection) -> dict[str, Warehouse]:
    rows = conn.execute(select(warehouses))
    return {
        r.id: Warehouse(r.id, r.region, r.country, tuple(r.postal_prefixes or ())) for r in rows
    }


# The guarded reservation, once per allocation on the writer's hot path: on the DBAPI cursor (see store/raw.py).
_raw_reserve = RawStatements(lambda name: _reserve_stmt)


def try_reserve(conn: Connection, allocations: Iterable[Allocation]) -> Allocation | None:
    """Apply guarded reservations in lock order. Returns the first allocation that did not fit (caller rolls
    back its savepoint), or None when all fitted."""
    for a in lock_order(allocations):
        if _raw_reserve.execute(conn, "reserve", {"b_sku": a.sku, "b_wh": a.warehouse, "b_qty": a.qty}) != 1:
            return a
    return None


def upsert_sku(conn: Connection, sku: str, name: str, category: str, price: int, currency: str, now: datetime):
    res = conn.execute(
        update(skus).where(skus.c.sku == sku).values(
            name=name, category=category, price=price, currency=currency, updated_at=now
        )
    )
    if res.rowcount == 0:
        conn.execute(
            insert(skus).values(sku=sku, name=name, category=category, price=price, currency=currency, updated_at=now)
        )
        return True
    return False


def upsert_warehouse(
    conn: Connection, wid: str, region: str, country: str, postal_prefixes: list[str], now: datetime
) -> bool:
    res = conn.execute(
        update(warehouses).where(warehouses.c.id == wid).values(
            region=region, country=country, postal_prefixes=postal_prefixes, updated_at=now
        )
    )
    if res.rowcount == 0:
        conn.execute(
            insert(warehouses).values(
                id=wid, region=region, country=country, postal_prefixes=postal_prefixes, updated_at=now
            )
        )
        return True
    return False


def set_on_hand(conn: Connection, sku: str, wid: str, on_hand: int, now: datetime) -> tuple[bool, int]:
    """Set the physical count. Refuses (returns (False, reserved)) when it would drop below what is reserved."""
    row = conn.execute(
        select(stock.c.reserved, stock.c.on_hand).where(stock.c.sku == sku, stock.c.warehouse == wid)
    ).first()
    if row is None:
        conn.execute(insert(stock).values(sku=sku, warehouse=wid, on_hand=on_hand, reserved=0, updated_at=now))
        _record_count_receipt(conn, sku, wid, on_hand, now)
        return True, 0
    res = conn.execute(
        update(stock)
        .where(stock.c.sku == sku, stock.c.warehouse == wid, stock.c.reserved <= on_hand)
        .values(on_hand=on_hand, updated_at=now)
    )
    if res.rowcount != 1:
        current = conn.execute(
            select(stock.c.reserved).where(stock.c.sku == sku, stock.c.warehouse == wid)
        ).scalar_one()
        return False, int(current)
    _record_count_receipt(conn, sku, wid, on_hand - int(row.on_hand), now)
    return True, int(row.reserved)


def _record_count_receipt(conn: Connection, sku: str, wid: str, added: int, now: datetime) -> None:
    """A count that raises the level is an arrival of units (inventory age counts from it)."""
    if added > 0:
        record_receipt(conn, sku, wid, added, now, "count")


# Built once: constructing a select per call costs SQLAlchemy a cache-key walk (about half of a stock read's CPU).
_STOCK_FOR_SKU = (
    select(stock.c.warehouse, stock.c.on_hand, stock.c.reserved)
    .where(stock.c.sku == bindparam("b_sku"))
    .order_by(stock.c.warehouse)
)
_SKU_EXISTS = select(skus.c.sku).where(skus.c.sku == bindparam("b_sku"))


def stock_for_sku(conn: Connection, sku: str) -> list[dict[str, Any]]:
    rows = conn.execute(_STOCK_FOR_SKU, {"b_sku": sku})
    return [
        {"warehouse": r.warehouse, "on_hand": int(r.on_hand), "reserved": int(r.reserved),
         "available": int(r.on_hand - r.reserved)}
        for r in rows
    ]


def sku_exists(conn: Connection, sku: str) -> bool:
    return conn.execute(_SKU_EXISTS, {"b_sku": sku}).first() is not None


def warehouse_exists(conn: Connection, wid: str) -> bool:
    return conn.execute(select(warehouses.c.id).where(warehouses.c.id == wid)).first() is not None


# --- orders ---------------------------------------------------------------------------------------------------


def insert_order(
    conn: Connection,
    *,
    order_id: str,
    status: str,
    api_key_id: str,
    idempotency_key: str,
    ship_to: dict,
    payment: dict,
    total: int,
    currency: str,
    split: bool,
    allocations: Sequence[Allocation],
    unit_prices: dict[str, int],
    expires_at: datetime,
    now: datetime,
    shipping: dict | None = None,
    promise: dict | None = None,
) -> None:
    conn.execute(
        insert(orders).values(
            id=order_id, status=status, api_key_id=api_key_id, idempotency_key=idempotency_key, ship_to=ship_to,
            payment=payment, total=total, currency=currency, shipping=shipping, promise=promise,
            split=1 if split else 0, reservation_expires_at=expires_at, created_at=now, updated_at=now,
        )
    )
    conn.execute(
        insert(order_lines),
        [
            {"order_id": order_id, "line_no": i, "sku": a.sku, "warehouse": a.warehouse, "qty": a.qty,
             "unit_price": unit_prices[a.sku]}
            for i, a in enumerate(allocations, start=1)
        ],
    )
    conn.execute(
        insert(reservations),
        [
            {"order_id": order_id, "sku": a.sku, "warehouse": a.warehouse, "qty": a.qty, "state": "active",
             "expires_at": expires_at}
            for a in allocations
        ],
    )


# Order look-ups (storefront polling) use statements built once, like the stock reads above.
_ORDER = select(orders).where(orders.c.id == bindparam("b_id"))
_ORDER_LINES = (
    select(order_lines.c.sku, order_lines.c.qty, order_lines.c.warehouse, order_lines.c.unit_price)
    .where(order_lines.c.order_id == bindparam("b_id"))
    .order_by(order_lines.c.line_no)
)
_ORDER_RESERVATIONS = (
    select(reservations.c.sku, reservations.c.warehouse, reservations.c.qty, reservations.c.state,
           reservations.c.expires_at)
    .where(reservations.c.order_id == bindparam("b_id"))
    .order_by(reservations.c.sku, reservations.c.warehouse)
)


def get_order(conn: Connection, order_id: str, *, placed_by: str | None = None) -> dict[str, Any] | None:
    """The order as the API shows it. With ``placed_by`` (an API key id), ``None`` unless that key placed it."""
    row = conn.execute(_ORDER, {"b_id": order_id}).first()
    if row is None or (placed_by is not None and row.api_key_id != placed_by):
        return None
    lines = conn.execute(_ORDER_LINES, {"b_id": order_id}).all()
    res = conn.execute(_ORDER_RESERVATIONS, {"b_id": order_id}).all()
    return {
        "order_id": row.id,
        "status": row.status,
        "lines": [{"sku": l.sku, "qty": int(l.qty), "warehouse": l.warehouse, "unit_price": int(l.unit_price)}
                  for l in lines],
        "total": int(row.total),
        "currency": row.currency,
        "split_shipment": bool(row.split),
        "ship_to": row.ship_to,
        "payment": row.payment,
        "shipping": row.shipping,
        "promise": row.promise,
        "reservations": [
            {"sku": r.sku, "warehouse": r.warehouse, "qty": int(r.qty), "state": r.state,
             "expires_at": r.expires_at.isoformat()}
            for r in res
        ],
        "reservation_expires_at": row.reservation_expires_at.isoformat() if row.reservation_expires_at else None,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def order_api_key(conn: Connection, order_id: str) -> str | None:
    return conn.execute(select(orders.c.api_key_id).where(orders.c.id == order_id)).scalar()


def update_order_status(
    conn: Connection, order_id: str, expected: Iterable[str], status: str, now: datetime, **fields: Any
) -> bool:
    """Compare-and-set on status: only moves the order when it is still in one of ``expected``."""
    res = conn.execute(
        update(orders)
        .where(orders.c.id == order_id, orders.c.status.in_(list(expected)))
        .values(status=status, updated_at=now, **fields)
    )
    return res.rowcount == 1


def update_order_fields(conn: Connection, order_id: str, now: datetime, **fields: Any) -> None:
    conn.execute(update(orders).where(orders.c.id == order_id).values(updated_at=now, **fields))


def _active_reservations(conn: Connection, order_id: str) -> list[Allocation]:
    rows = conn.execute(
        select(reservations.c.sku, reservations.c.warehouse, reservations.c.qty).where(
            reservations.c.order_id == order_id, reservations.c.state == "active"
        )
    ).all()
    return [Allocation(r.sku, r.warehouse, int(r.qty)) for r in rows]


def release_reservations(conn: Connection, order_id: str) -> int:
    """Give an order's reserved stock back (cancel, decline, expiry). Idempotent: only active rows move."""
    return _close_reservations(conn, order_id, _release_stmt, "released")


def consume_reservations(conn: Connection, order_id: str) -> int:
    """The goods left the warehouse: reserved and on_hand both drop. Idempotent."""
    return _close_reservations(conn, order_id, _consume_stmt, "consumed")


def _close_reservations(conn: Connection, order_id: str, stock_stmt, state: str) -> int:
    """Apply ``stock_stmt`` to each active reservation's stock row (in lock order), then mark them ``state``."""
    allocs = lock_order(_active_reservations(conn, order_id))
    for a in allocs:
        res = conn.execute(stock_stmt, {"b_sku": a.sku, "b_wh": a.warehouse, "b_qty": a.qty})
        if res.rowcount != 1:  # pragma: no cover - would mean corrupted counters; refuse loudly
            raise RuntimeError(f"stock counters of {a.sku}@{a.warehouse} cannot take the {state} reservation "
                               f"of {order_id}")
    if allocs:
        conn.execute(
            update(reservations)
            .where(reservations.c.order_id == order_id, reservations.c.state == "active")
            .values(state=state)
        )
    return len(allocs)


def expired_order_ids(conn: Connection, statuses: Sequence[str], now: datetime, limit: int) -> list[str]:
    rows = conn.execute(
        select(orders.c.id)
        .where(
            orders.c.status.in_(list(statuses)),
            orders.c.reservation_expires_at.is_not(None),
            orders.c.reservation_expires_at < now,
        )
        .order_by(orders.c.reservation_expires_at)
        .limit(limit)
    ).all()
    return [r.id for r in rows]


# --- outbox ---------------------------------------------------------------------------------------------------


def enqueue_event(conn: Connection, event_type: str, aggregate_id: str, payload: dict, now: datetime) -> str:
    """Add an event to the outbox in the caller's transaction (commits with the state change that caused it)."""
    event_id = new_id("evt")
    conn.execute(
        insert(outbox).values(
            event_id=event_id, type=event_type, aggregate_id=aggregate_id, payload=payload, status="pending",
            attempts=0, available_at=now, created_at=now,
        )
    )
    return event_id


def outbox_counts(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status)).all()
    return {r[0]: int(r[1]) for r in rows}


def stock_totals(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(stock.c.sku, stock.c.warehouse, stock.c.on_hand, stock.c.reserved)).all()
    return [dict(r._mapping) for r in rows]


def active_reserved_by_row(conn: Connection) -> dict[tuple[str, str], int]:
    rows = conn.execute(
        select(reservations.c.sku, reservations.c.warehouse, func.sum(reservations.c.qty))
        .where(reservations.c.state == "active")
        .group_by(reservations.c.sku, reservations.c.warehouse)
    ).all()
    return {(r[0], r[1]): int(r[2]) for r in rows}

