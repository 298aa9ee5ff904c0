"""Fulfillment and returns analytics computed in the database (definitions: ``shopfloor.fulfillment.analytics``).

Every query reads one window through an index (``fulfillment_events(type, at)``, ``orders(created_at)``,
``stock_refusals(at)``) and aggregates in SQL: nothing is scanned row by row in Python. Percentiles use
``percentile_cont`` on PostgreSQL and the same linear interpolation between ranks, written with window functions
(``ROW_NUMBER``/``COUNT``), on SQLite, so both backends give the same numbers.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, text

from ..fulfillment.analytics import FulfillmentReport, LaneMeasures, SkuMeasures, WarehouseMeasures
from .tables import UtcDateTime

#: Orders in these states never ship, so they count neither as sales nor as shipments.
_NOT_SHIPPED = ("declined", "cancelled")


def _hours(dialect: str, a: str, b: str) -> str:
    """SQL for the hours from timestamp column ``a`` to ``b``."""
    if dialect == "postgresql":
        return f"(EXTRACT(EPOCH FROM ({b} - {a})) / 3600.0)"
    return f"((julianday({b}) - julianday({a})) * 24.0)"


def _durations_sql(dialect: str) -> str:
    """One row per measured duration: (measure, warehouse, zone, hours). Orders are found through their anchor
    event inside the window; the rest of each order's journey is read through the ``order_id`` index."""
    pick_end = "COALESCE(j.packed_at, j.handed_at)"
    return f"""
    WITH anchors AS (
        SELECT DISTINCT order_id FROM fulfillment_events
        WHERE type IN ('packed', 'handed_to_carrier', 'delivered') AND at >= :since AND at < :until
    ), j AS (
        SELECT e.order_id AS order_id,
               MIN(e.warehouse) AS warehouse,
               COALESCE(MIN(e.region), MIN(e.country), '?') AS zone,
               COALESCE(MIN(e.placed_at), MIN(CASE WHEN e.type = 'approved' THEN e.at END)) AS start_at,
               MIN(CASE WHEN e.type = 'packed' THEN e.at END) AS packed_at,
               MIN(CASE WHEN e.type = 'handed_to_carrier' THEN e.at END) AS handed_at,
               MIN(CASE WHEN e.type = 'delivered' THEN e.at END) AS delivered_at
        FROM fulfillment_events e JOIN anchors a ON a.order_id = e.order_id
        WHERE e.type <> 'returned'
        GROUP BY e.order_id
    ), durations AS (
        SELECT 'pick_pack' AS measure, j.warehouse AS warehouse, '' AS zone,
               {_hours(dialect, 'j.start_at', pick_end)} AS h
        FROM j WHERE j.start_at IS NOT NULL AND {pick_end} >= :since AND {pick_end} < :until
        UNION ALL
        SELECT 'handoff_delay', j.warehouse, '', {_hours(dialect, 'j.packed_at', 'j.handed_at')}
        FROM j WHERE j.packed_at IS NOT NULL AND j.handed_at >= :since AND j.handed_at < :until
        UNION ALL
        SELECT 'transit', j.warehouse, j.zone, {_hours(dialect, 'j.handed_at', 'j.delivered_at')}
        FROM j WHERE j.handed_at IS NOT NULL AND j.delivered_at >= :since AND j.delivered_at < :until
    )"""


def _percentiles_sql(dialect: str) -> str:
    """p50 and p90 of every (measure, warehouse, zone) group of ``durations``, plus its size."""
    if dialect == "postgresql":
        return _durations_sql(dialect) + """
    SELECT measure, warehouse, zone, COUNT(*) AS n,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY h) AS p50,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY h) AS p90
    FROM durations GROUP BY measure, warehouse, zone"""
    # percentile_cont(p): position p*(n-1) (0-based) between ranks lo and lo+1, interpolated. Integer arithmetic
    # (p in percent) keeps the floor exact.
    def pct(p: int) -> str:
        lo = f"(((n - 1) * {p}) / 100)"
        frac = f"((((n - 1) * {p}) % 100) / 100.0)"
        return (f"SUM(CASE WHEN rn = {lo} + 1 THEN h * (1.0 - {frac}) "
                f"WHEN rn = {lo} + 2 THEN h * {frac} ELSE 0 END)")
    return _durations_sql(dialect) + f""", ranked AS (
        SELECT measure, warehouse, zone, h,
               ROW_NUMBER() OVER (PARTITION BY measure, warehouse, zone ORDER BY h) AS rn,
               COUNT(*) OVER (PARTITION BY measure, warehouse, zone) AS n
        FROM durations
    )
    SELECT measure, warehouse, zone, MAX(n) AS n, {pct(50)} AS p50, {pct(90)} AS p90
    FROM ranked GROUP BY measure, warehouse, zone"""


_ORDERS_BY_WAREHOUSE = f"""
    SELECT ol.warehouse, COUNT(DISTINCT o.id) AS orders,
           COUNT(DISTINCT CASE WHEN o.split = 1 THEN o.id END) AS split_orders,
           COUNT(*) AS lines
    FROM orders o JOIN order_lines ol ON ol.order_id = o.id
    WHERE o.created_at >= :since AND o.created_at < :until AND o.status NOT IN {_NOT_SHIPPED!r}
    GROUP BY ol.warehouse"""

_SALES_BY_SKU = f"""
    SELECT ol.sku, COUNT(*) AS lines, SUM(ol.qty) AS units
    FROM orders o JOIN order_lines ol ON ol.order_id = o.id
    WHERE o.created_at >= :since AND o.created_at < :until AND o.status NOT IN {_NOT_SHIPPED!r}
    GROUP BY ol.sku"""

_REFUSALS = """
    SELECT sku, warehouse, COUNT(*) AS lines FROM stock_refusals
    WHERE at >= :since AND at < :until GROUP BY sku, warehouse"""

_RETURNS = """
    SELECT sku, reason, SUM(qty) AS units FROM fulfillment_events
    WHERE type = 'returned' AND at >= :since AND at < :until GROUP BY sku, reason"""


def _inventory_age_sql(dialect: str, by: str) -> str:
    """Median age (days at ``:until``) of the units on hand, per ``by`` (``sku`` or ``warehouse``). FIFO: walking
    each stock row's receipts newest first, a receipt holds the units that its newer receipts do not cover."""
    age = _hours(dialect, "received_at", ":until") + " / 24.0"
    return f"""
    WITH r AS (
        SELECT sr.sku, sr.warehouse, sr.qty, sr.received_at, s.on_hand,
               SUM(sr.qty) OVER (PARTITION BY sr.sku, sr.warehouse ORDER BY sr.received_at DESC, sr.id DESC
                                 ROWS UNBOUNDED PRECEDING) - sr.qty AS newer
        FROM stock_receipts sr JOIN stock s ON s.sku = sr.sku AND s.warehouse = sr.warehouse
        WHERE s.on_hand > 0 AND sr.received_at <= :until
    ), held AS (
        SELECT {by} AS grp, {age} AS age_d,
               CASE WHEN on_hand - newer < qty THEN on_hand - newer ELSE qty END AS units
        FROM r WHERE newer < on_hand
    ), cum AS (
        SELECT grp, age_d,
               SUM(units) OVER (PARTITION BY grp ORDER BY age_d ROWS UNBOUNDED PRECEDING) AS upto,
               SUM(units) OVER (PARTITION BY grp) AS total
        FROM held
    )
    SELECT grp, MIN(age_d) AS p50 FROM cum WHERE 2 * upto >= total GROUP BY grp"""


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _round(x: Any, digits: int = 4) -> float | None:
    return None if x is None else round(float(x), digits)


class SqlFulfillmentAnalytics:
    """:class:`~shopfloor.fulfillment.analytics.FulfillmentAnalytics` on SQLite or PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._statements: dict[tuple[str, str], Any] = {}

    def _stmt(self, conn: Connection, name: str, sql: str) -> Any:
        key = (conn.dialect.name, name)
        stmt = self._statements.get(key)
        if stmt is None:
            stmt = self._statements[key] = text(sql).bindparams(
                *(bindparam(n, type_=UtcDateTime) for n in ("since", "until") if f":{n}" in sql))
        return stmt

    def _run(self, conn: Connection, name: str, sql: str, since: datetime, until: datetime) -> list:
        params = {n: v for n, v in (("since", since), ("until", until)) if f":{n}" in sql}
        return conn.execute(self._stmt(conn, name, sql), params).all()

    def report(self, since: datetime, until: datetime) -> FulfillmentReport:
        with self.engine.connect() as conn:
            d = conn.dialect.name
            pct = self._run(conn, "pct", _percentiles_sql(d), since, until)
            by_wh = self._run(conn, "orders_wh", _ORDERS_BY_WAREHOUSE, since, until)
            sales = self._run(conn, "sales", _SALES_BY_SKU, since, until)
            refusals = self._run(conn, "refusals", _REFUSALS, since, until)
            returns = self._run(conn, "returns", _RETURNS, since, until)
            age_sku = self._run(conn, "age_sku", _inventory_age_sql(d, "sku"), since, until)
            age_wh = self._run(conn, "age_wh", _inventory_age_sql(d, "warehouse"), since, until)
            known_wh = [r[0] for r in conn.execute(text("SELECT id FROM warehouses"))]
        return self._assemble(since, until, pct, by_wh, sales, refusals, returns, age_sku, age_wh, known_wh)

    @staticmethod
    def _assemble(since, until, pct, by_wh, sales, refusals, returns, age_sku, age_wh, known_wh) -> FulfillmentReport:
        times: dict[tuple[str, str, str], tuple[int, float, float]] = {
            (m, w, z): (int(n), float(p50), float(p90)) for m, w, z, n, p50, p90 in pct}
        orders = {w: (int(n), int(split), int(lines)) for w, n, split, lines in by_wh}
        refused_wh: dict[str, int] = defaultdict(int)
        refused_sku: dict[str, int] = defaultdict(int)
        for sku, wh, n in refusals:
            refused_sku[sku] += int(n)
            if wh is not None:
                refused_wh[wh] += int(n)
        sold = {sku: (int(lines), int(units)) for sku, lines, units in sales}
        reasons: dict[str, dict[str, int]] = defaultdict(dict)
        for sku, reason, units in returns:
            reasons[sku][reason] = int(units)
        ages_sku = {g: float(v) for g, v in age_sku}
        ages_wh = {g: float(v) for g, v in age_wh}

        wh_ids = sorted(set(known_wh) | {w for _, w, _ in times} | set(orders) | set(refused_wh) | set(ages_wh))
        warehouses = []
        for w in wh_ids:
            n, split, lines = orders.get(w, (0, 0, 0))
            pp = times.get(("pick_pack", w, ""))
            ho = times.get(("handoff_delay", w, ""))
            warehouses.append(WarehouseMeasures(
                warehouse=w,
                pick_pack_p50_h=_round(pp[1]) if pp else None, pick_pack_p90_h=_round(pp[2]) if pp else None,
                handoff_delay_p50_h=_round(ho[1]) if ho else None,
                split_shipment_rate=_round(_rate(split, n)),
                backorder_rate=_round(_rate(refused_wh.get(w, 0), refused_wh.get(w, 0) + lines)),
                inventory_age_p50_d=_round(ages_wh.get(w), 2),
                pick_pack_orders=pp[0] if pp else 0, orders=n,
            ))
        lanes = [LaneMeasures(w, z, _round(p50), _round(p90), n)
                 for (m, w, z), (n, p50, p90) in sorted(times.items()) if m == "transit"]
        skus = []
        for sku in sorted(set(sold) | set(reasons) | set(refused_sku) | set(ages_sku)):
            lines, units = sold.get(sku, (0, 0))
            by_reason = dict(sorted(reasons.get(sku, {}).items(), key=lambda kv: (-kv[1], kv[0])))
            returned = sum(by_reason.values())
            skus.append(SkuMeasures(
                sku=sku, return_rate=_round(_rate(returned, units)), returns_by_reason=by_reason,
                backorder_rate=_round(_rate(refused_sku.get(sku, 0), refused_sku.get(sku, 0) + lines)),
                inventory_age_p50_d=_round(ages_sku.get(sku), 2), units_sold=units, units_returned=returned,
            ))
        return FulfillmentReport(since, until, warehouses, skus, lanes)
