"""Restock persistence: purchase orders, and the read side the restock planner needs (SQLAlchemy Core)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable

from sqlalchemy import Engine, and_, insert, select, update

from ..domain.errors import InvalidInput, UnknownSku
from ..domain.orders import HOLDS_RESERVATION, SOLD
from ..planning.purchase_orders import PurchaseOrderIn, check_po_update
from ..planning.restock import CatalogEntry, StockPosition
from .restock_tables import purchase_orders
from .tables import order_lines, orders, skus, stock, warehouses

#: Orders in these statuses are demand (declined and cancelled orders are not).
DEMAND_STATUSES = tuple(sorted(str(s) for s in HOLDS_RESERVATION | SOLD))

PO_COLUMNS = ("po_id", "sku", "warehouse", "qty", "expected_at", "status", "supplier", "created_at", "updated_at")


def _po_dict(row: Any) -> dict[str, Any]:
    return {k: getattr(row, k) for k in PO_COLUMNS}


class RestockRepository:
    """Purchase orders plus positions, catalog and daily demand for :class:`~shopfloor.planning.restock_service.RestockPlanner`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- purchase orders ------------------------------------------------------------------------------------
    def upsert_purchase_orders(self, pos: Iterable[PurchaseOrderIn], now: datetime) -> list[tuple[dict, bool]]:
        """Create or update purchase orders in one transaction; returns ``(stored row, created)`` per input.

        Unknown SKUs / warehouses are rejected (422) and a received or cancelled order cannot change (409);
        either way nothing is written.
        """
        pos = list(pos)
        if not pos:
            return []
        with self.engine.begin() as conn:
            sku_ids = {p.sku for p in pos}
            wh_ids = {p.warehouse for p in pos}
            known_skus = set(conn.execute(select(skus.c.sku).where(skus.c.sku.in_(sku_ids))).scalars())
            known_whs = set(conn.execute(select(warehouses.c.id).where(warehouses.c.id.in_(wh_ids))).scalars())
            if sku_ids - known_skus:
                raise UnknownSku(sorted(sku_ids - known_skus))
            if wh_ids - known_whs:
                bad = sorted(wh_ids - known_whs)
                raise InvalidInput(
                    f"unknown warehouse(s): {', '.join(bad)}", [{"field": "warehouse", "warehouse": w} for w in bad]
                )
            ids = [p.po_id for p in pos]
            q = select(purchase_orders).where(purchase_orders.c.po_id.in_(ids))
            if conn.dialect.name == "postgresql":
                q = q.with_for_update()
            existing = {r.po_id: _po_dict(r) for r in conn.execute(q)}
            out: list[tuple[dict, bool]] = []
            for po in pos:
                row = po.as_row()
                if po.po_id in existing:
                    check_po_update(existing[po.po_id], po)
                    conn.execute(
                        update(purchase_orders)
                        .where(purchase_orders.c.po_id == po.po_id)
                        .values(**{k: v for k, v in row.items() if k != "po_id"}, updated_at=now)
                    )
                    out.append(({**existing[po.po_id], **row, "updated_at": now}, False))
                else:
                    conn.execute(insert(purchase_orders).values(**row, created_at=now, updated_at=now))
                    stored = {**row, "created_at": now, "updated_at": now}
                    existing[po.po_id] = stored
                    out.append((stored, True))
            return out

    def list_purchase_orders(
        self, *, status: str | None = None, sku: str | None = None, warehouse: str | None = None,
        limit: int = 100, offset: int = 0,
    ) -> list[dict[str, Any]]:
        q = select(purchase_orders)
        if status:
            q = q.where(purchase_orders.c.status == status)
        if sku:
            q = q.where(purchase_orders.c.sku == sku)
        if warehouse:
            q = q.where(purchase_orders.c.warehouse == warehouse)
        q = q.order_by(purchase_orders.c.expected_at, purchase_orders.c.po_id).limit(limit).offset(offset)
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            return [_po_dict(r) for r in conn.execute(q)]

    # --- planner data source --------------------------------------------------------------------------------
    def positions(self) -> list[StockPosition]:
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            rows = conn.execute(
                select(stock.c.sku, stock.c.warehouse, stock.c.on_hand, stock.c.reserved).order_by(
                    stock.c.sku, stock.c.warehouse
                )
            ).all()
            pos_rows = conn.execute(
                select(
                    purchase_orders.c.sku, purchase_orders.c.warehouse, purchase_orders.c.expected_at,
                    purchase_orders.c.qty, purchase_orders.c.supplier,
                ).where(purchase_orders.c.status == "open")
                .order_by(purchase_orders.c.expected_at)
            ).all()
        receipts: dict[tuple[str, str], list[tuple[date, int]]] = {}
        supplier: dict[tuple[str, str], str] = {}
        for r in pos_rows:
            receipts.setdefault((r.sku, r.warehouse), []).append((r.expected_at.date(), int(r.qty)))
            if r.supplier:
                supplier.setdefault((r.sku, r.warehouse), r.supplier)
        keys = {(r.sku, r.warehouse) for r in rows}
        out = [
            StockPosition(
                r.sku, r.warehouse, int(r.on_hand), int(r.reserved),
                tuple(receipts.get((r.sku, r.warehouse), ())), supplier.get((r.sku, r.warehouse)),
            )
            for r in rows
        ]
        # stock on order for a SKU x warehouse that has no stock row yet still counts
        for key, recs in receipts.items():
            if key not in keys:
                out.append(StockPosition(key[0], key[1], 0, 0, tuple(recs), supplier.get(key)))
        return out

    def catalog(self) -> dict[str, CatalogEntry]:
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            return {
                r.sku: CatalogEntry(r.sku, r.name, r.category)
                for r in conn.execute(select(skus.c.sku, skus.c.name, skus.c.category))
            }

    def daily_demand(self, first_day: date, last_day: date) -> dict[tuple[str, str], dict[date, int]]:
        since = datetime.combine(first_day, time.min, tzinfo=timezone.utc)
        until = datetime.combine(last_day + timedelta(days=1), time.min, tzinfo=timezone.utc)
        q = (
            select(order_lines.c.sku, order_lines.c.warehouse, orders.c.created_at, order_lines.c.qty)
            .join(orders, orders.c.id == order_lines.c.order_id)
            .where(and_(orders.c.status.in_(DEMAND_STATUSES), orders.c.created_at >= since, orders.c.created_at < until))
        )
        out: dict[tuple[str, str], dict[date, int]] = {}
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            for r in conn.execute(q):
                day = r.created_at.astimezone(timezone.utc).date()
                bucket = out.setdefault((r.sku, r.warehouse), {})
                bucket[day] = bucket.get(day, 0) + int(r.qty)
        return out


class OpenPurchaseOrders:
    """Backorder ETAs for the promise engine: the earliest open purchase order(s) that cover ``qty``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def backorder_eta(self, sku: str, qty: int, at: datetime) -> tuple[datetime, str | None] | None:
        from sqlalchemy import select

        from .restock_tables import purchase_orders as po

        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            rows = conn.execute(
                select(po.c.warehouse, po.c.qty, po.c.expected_at)
                .where(po.c.sku == sku, po.c.status == "open", po.c.expected_at >= at)
                .order_by(po.c.expected_at)
                .limit(100)
            ).all()
        covered = 0
        for r in rows:
            covered += int(r.qty)
            if covered >= qty:
                return r.expected_at, r.warehouse
        return None
