"""Orders from other channels (a Shopify webhook, a bulk import file): one model and one writer.

An imported order is an ordinary order row with its lines, so it is readable at ``GET /v1/orders/{id}`` and counts
as demand history for forecasting; ``order_sources`` says where it came from and makes writing it idempotent on
``(channel, external_id)``. The stock policy says what happens to stock:

* ``consume``: the goods left the building on the other channel: on-hand drops (status ``handed_off``, the
  reservation recorded as consumed);
* ``reserve``: the other channel will ship from our stock later: the quantity is reserved (status ``captured``);
* ``ignore``: history only, stock untouched (status ``handed_off``).

A line goes to the warehouse with the most stock available for its SKU (or the one the channel named). When less is
available than was ordered, what is there moves and the shortfall is recorded in ``order_sources.details``: the
order happened elsewhere and cannot be refused.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Sequence

from sqlalchemy import JSON, Connection, Engine, Table, bindparam, select, update

from ..domain.clock import Clock
from ..store.engine import json_dumps
from ..store.orders_repo import enqueue_event, release_reservations
from ..store.integrations_tables import order_sources
from ..store.tables import order_lines, orders, reservations, stock, warehouses

STOCK_POLICIES = ("consume", "reserve", "ignore")
_STATUS_FOR_POLICY = {"consume": "handed_off", "reserve": "captured", "ignore": "handed_off"}
#: Currencies without minor units (ISO 4217 exponent 0) among those a shop is likely to sell in.
_ZERO_DECIMAL = frozenset({"JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF", "PYG", "RWF", "KMF", "GNF",
                           "VUV", "XPF", "BIF", "DJF"})
#: Reservations of imported orders wait for the other channel to ship; the sweeper never expires them.
RESERVE_FOR = timedelta(days=365)
#: Batches of at least this many rows go to PostgreSQL through COPY; smaller ones (a webhook's single order) through
#: an ordinary INSERT.
_COPY_FROM = 50


def to_minor_units(amount: str | int | float | Decimal, currency: str) -> int:
    """``"19.99"`` USD -> 1999; ``"1200"`` JPY -> 1200. Raises ValueError for a malformed or over-precise amount."""
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation:
        raise ValueError(f"{amount!r} is not an amount") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"{amount!r} is not a non-negative amount")
    exponent = 0 if currency.upper() in _ZERO_DECIMAL else 2
    minor = value * (10 ** exponent)
    if minor != minor.to_integral_value():
        raise ValueError(f"{amount!r} has more decimals than {currency} allows")
    return int(minor)


@dataclass(frozen=True, slots=True)
class ImportedLine:
    sku: str
    qty: int
    unit_price: int  # minor units


@dataclass(frozen=True, slots=True)
class ImportedOrder:
    external_id: str
    created_at: datetime
    currency: str
    country: str
    postal_code: str
    lines: tuple[ImportedLine, ...]
    warehouse: str | None = None  # where the channel fulfils it, when it says

    @property
    def total(self) -> int:
        return sum(l.qty * l.unit_price for l in self.lines)


@dataclass
class WriteResult:
    imported: list[str] = field(default_factory=list)  # external ids written now
    already: list[str] = field(default_factory=list)  # external ids written before (skipped)
    order_ids: dict[str, str] = field(default_factory=dict)  # external id -> order id
    shortfalls: int = 0


class OrderWriter:
    """Writes imported orders in batches, each batch one transaction."""

    def __init__(self, engine: Engine, clock: Clock, *, stock_low_at: int = 5) -> None:
        self.engine = engine
        self.clock = clock
        self.stock_low_at = stock_low_at
        self._is_pg = engine.dialect.name == "postgresql"

    def write(self, batch: Sequence[ImportedOrder], *, channel: str, policy: str, publish: bool = False,
              conn: Connection | None = None) -> WriteResult:
        if policy not in STOCK_POLICIES:
            raise ValueError(f"stock policy must be one of {', '.join(STOCK_POLICIES)}")
        if conn is not None:
            return self._write(conn, batch, channel, policy, publish)
        with self.engine.begin() as c:
            return self._write(c, batch, channel, policy, publish)

    def _write(self, conn: Connection, batch: Sequence[ImportedOrder], channel: str, policy: str,
               publish: bool) -> WriteResult:
        result = WriteResult()
        now = self.clock.now()
        wanted = list(dict.fromkeys(o.external_id for o in batch))
        seen = self._imported_before(conn, channel, wanted)
        todo: list[ImportedOrder] = []
        for o in batch:
            if o.external_id in seen:
                result.already.append(o.external_id)
            else:
                seen.add(o.external_id)
                todo.append(o)
        if not todo:
            return result
        levels = self._levels(conn, {l.sku for o in todo for l in o.lines}) if policy != "ignore" else {}
        default_wh = self._default_warehouse(conn, todo, levels)
        order_rows, line_rows, source_rows, res_rows, events = [], [], [], [], []
        moves: dict[tuple[str, str], int] = {}
        before = {(sku, wh): n for sku, by_wh in levels.items() for wh, n in by_wh.items()}
        status = _STATUS_FOR_POLICY[policy]
        for o in todo:
            order_id = f"ord_{uuid.uuid4().hex}"
            result.order_ids[o.external_id] = order_id
            result.imported.append(o.external_id)
            shortfall: list[dict[str, Any]] = []
            held: dict[tuple[str, str], int] = {}
            lines_out = []
            for i, line in enumerate(o.lines, start=1):
                wh = o.warehouse or _best_warehouse(levels.get(line.sku, {})) or default_wh
                line_rows.append({"order_id": order_id, "line_no": i, "sku": line.sku, "warehouse": wh,
                                  "qty": line.qty, "unit_price": line.unit_price})
                lines_out.append({"sku": line.sku, "qty": line.qty, "warehouse": wh, "unit_price": line.unit_price})
                if policy == "ignore":
                    continue
                available = levels.get(line.sku, {}).get(wh, 0)
                moved = min(line.qty, available)
                if moved < line.qty:
                    shortfall.append({"sku": line.sku, "warehouse": wh, "ordered": line.qty, "available": available})
                if moved:
                    levels[line.sku][wh] = available - moved
                    held[(line.sku, wh)] = held.get((line.sku, wh), 0) + moved
                    moves[(line.sku, wh)] = moves.get((line.sku, wh), 0) + moved
            state = "consumed" if policy == "consume" else "active"
            res_rows.extend({"order_id": order_id, "sku": s, "warehouse": w, "qty": q, "state": state,
                             "expires_at": now + RESERVE_FOR} for (s, w), q in held.items())
            result.shortfalls += bool(shortfall)
            order_rows.append({
                "id": order_id, "status": status, "api_key_id": None, "idempotency_key": None,
                "ship_to": {"country": o.country, "postal_code": o.postal_code},
                "payment": {"channel": channel, "external_id": o.external_id}, "total": o.total,
                "currency": o.currency, "shipping": None, "promise": None, "split": 0,
                "reservation_expires_at": now + RESERVE_FOR if policy == "reserve" and held else None,
                "created_at": o.created_at, "updated_at": now})
            source_rows.append({"order_id": order_id, "channel": channel, "external_id": o.external_id,
                                "stock_policy": policy, "details": {"shortfall": shortfall} if shortfall else None,
                                "imported_at": now})
            if publish:
                events.append((order_id, {"order_id": order_id, "external_id": o.external_id, "channel": channel,
                                          "status": status, "total": o.total, "currency": o.currency,
                                          "lines": lines_out, "ship_to": {"country": o.country,
                                                                          "postal_code": o.postal_code}}))
        self._insert(conn, orders, order_rows)
        self._insert(conn, order_lines, line_rows)
        self._insert(conn, order_sources, source_rows)
        self._move_stock(conn, moves, policy, now)
        for sku, wh in sorted(moves):
            publish_stock_low(conn, sku, wh, before[(sku, wh)], levels[sku][wh], self.stock_low_at, now)
        if res_rows:
            self._insert(conn, reservations, res_rows)
        for order_id, payload in events:
            enqueue_event(conn, "OrderImported", order_id, payload, now)
        return result

    def _imported_before(self, conn: Connection, channel: str, external_ids: list[str]) -> set[str]:
        """The external ids of this channel already written. On PostgreSQL one ``= ANY(%s)`` look-up planned for
        each batch: a prepared statement (psycopg prepares a statement run five times) keeps the generic plan made
        while the table was small, a sequential scan, and the look-up then grows with the table (0.1 s to 1.5 s a
        batch over 100,000 lines); planned afresh, it is an index scan."""
        if self._is_pg:
            raw = conn.connection.driver_connection
            rows = raw.execute("SELECT external_id FROM order_sources WHERE channel = %s AND external_id = ANY(%s)",
                               (channel, external_ids), prepare=False).fetchall()
            return {r[0] for r in rows}
        seen: set[str] = set()
        for chunk in _chunks(external_ids, 500):
            seen.update(r[0] for r in conn.execute(select(order_sources.c.external_id).where(
                order_sources.c.channel == channel, order_sources.c.external_id.in_(chunk))))
        return seen

    def _insert(self, conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
        """Insert ``rows`` in this transaction. On PostgreSQL a batch goes through ``COPY ... FROM STDIN``: one
        statement and one stream instead of a pipelined INSERT per row (the same constraints are checked: a row
        that breaks one, such as an external id imported concurrently, fails the whole batch, which rolls back)."""
        if not rows:
            return
        if not self._is_pg or len(rows) < _COPY_FROM:
            conn.execute(table.insert(), rows)
            return
        from psycopg import sql

        columns = list(rows[0])
        # JSON columns are written as SQLAlchemy writes them (None as the JSON null, orjson for the rest).
        is_json = [isinstance(table.c[c].type, JSON) for c in columns]
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table.name), sql.SQL(", ").join(sql.Identifier(c) for c in columns))
        raw = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(statement) as copy:
            for row in rows:
                copy.write_row([json_dumps(row[c]) if j else row[c] for c, j in zip(columns, is_json)])

    def _levels(self, conn: Connection, skus: set[str]) -> dict[str, dict[str, int]]:
        """Available stock per SKU and warehouse, locked (PostgreSQL) in the fixed (sku, warehouse) order."""
        out: dict[str, dict[str, int]] = {}
        for chunk in _chunks(sorted(skus), 500):
            q = (select(stock.c.sku, stock.c.warehouse, stock.c.on_hand, stock.c.reserved)
                 .where(stock.c.sku.in_(chunk)).order_by(stock.c.sku, stock.c.warehouse))
            if self._is_pg:
                q = q.with_for_update()
            for r in conn.execute(q):
                out.setdefault(r.sku, {})[r.warehouse] = int(r.on_hand) - int(r.reserved)
        return out

    @staticmethod
    def _default_warehouse(conn: Connection, todo: Iterable[ImportedOrder], levels) -> str:
        first = conn.execute(select(warehouses.c.id).order_by(warehouses.c.id).limit(1)).scalar()
        return first or "unassigned"

    def _move_stock(self, conn: Connection, moves: dict[tuple[str, str], int], policy: str, now: datetime) -> None:
        if not moves:
            return
        s = stock.c
        guard = s.on_hand - s.reserved >= bindparam("b_qty")
        if policy == "consume":
            stmt = update(stock).where(s.sku == bindparam("b_sku"), s.warehouse == bindparam("b_wh"), guard).values(
                on_hand=s.on_hand - bindparam("b_qty"), updated_at=now)
        else:
            stmt = update(stock).where(s.sku == bindparam("b_sku"), s.warehouse == bindparam("b_wh"), guard).values(
                reserved=s.reserved + bindparam("b_qty"), updated_at=now)
        params = [{"b_sku": k[0], "b_wh": k[1], "b_qty": q} for k, q in sorted(moves.items())]
        res = conn.execute(stmt, params)
        if res.rowcount not in (-1, len(params)):  # the rows were read under lock: a mismatch is a bug; undo all
            raise RuntimeError(f"stock moved for {res.rowcount} of {len(params)} rows; import batch rolled back")

    # --- after the fact --------------------------------------------------------------------------------------

    def cancel(self, conn: Connection, channel: str, external_id: str, reason: str) -> str | None:
        """Cancel an imported order and give its stock back: a reservation (``reserve``) is released, stock that
        was consumed (``consume``) goes back on hand. Exactly once: only the call that moves the order to
        ``cancelled`` touches stock, so a cancellation delivered twice changes nothing the second time. Returns the
        order id, or None when no such order was imported."""
        now = self.clock.now()
        order_id = conn.execute(select(order_sources.c.order_id).where(
            order_sources.c.channel == channel, order_sources.c.external_id == external_id)).scalar()
        if order_id is None:
            return None
        # The conditional update is the guard: on PostgreSQL a second, concurrent cancellation waits for the row
        # lock and then finds the order already cancelled.
        moved = conn.execute(update(orders).where(orders.c.id == order_id, orders.c.status != "cancelled")
                             .values(status="cancelled", updated_at=now)).rowcount
        if moved:
            release_reservations(conn, order_id)
            self._restock_consumed(conn, order_id, now)
            enqueue_event(conn, "OrderCancelled", order_id,
                          {"order_id": order_id, "external_id": external_id, "channel": channel, "reason": reason},
                          now)
        return order_id

    @staticmethod
    def _restock_consumed(conn: Connection, order_id: str, now: datetime) -> int:
        """Put the stock a cancelled order consumed back on hand (in (sku, warehouse) lock order); its reservation
        rows become ``restocked`` so stock conservation (start - consumed = on hand) still holds."""
        r = reservations.c
        rows = conn.execute(select(r.sku, r.warehouse, r.qty).where(r.order_id == order_id, r.state == "consumed")
                            .order_by(r.sku, r.warehouse)).all()
        if not rows:
            return 0
        s = stock.c
        conn.execute(update(stock).where(s.sku == bindparam("b_sku"), s.warehouse == bindparam("b_wh"))
                     .values(on_hand=s.on_hand + bindparam("b_qty"), updated_at=now),
                     [{"b_sku": x.sku, "b_wh": x.warehouse, "b_qty": int(x.qty)} for x in rows])
        conn.execute(update(reservations).where(r.order_id == order_id, r.state == "consumed")
                     .values(state="restocked"))
        return sum(int(x.qty) for x in rows)


def publish_stock_low(conn: Connection, sku: str, warehouse: str, was: int, now_available: int, threshold: int,
                      at: datetime) -> bool:
    """Publish ``StockLow`` (``stock.low`` to subscribers) when availability crosses down to ``threshold``."""
    if was > threshold >= now_available:
        enqueue_event(conn, "StockLow", f"stock-{sku}-{warehouse}",
                      {"sku": sku, "warehouse": warehouse, "available": now_available, "threshold": threshold}, at)
        return True
    return False


def _best_warehouse(available_by_wh: dict[str, int]) -> str | None:
    if not available_by_wh:
        return None
    return min(available_by_wh, key=lambda wh: (-available_by_wh[wh], wh))


def _chunks(items: list, n: int):
    for i in range(0, len(items), n):
        yield items[i:i + n]
