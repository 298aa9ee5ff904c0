"""Read-side queries for forecasting: accepted orders aggregated into SKU x region x day demand series."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
from sqlalchemy import Date, Engine, and_, cast, func, select

from .tables import order_lines, orders, warehouses

#: Orders in these statuses never became demand we served (payment declined, cancelled or expired).
NOT_ACCEPTED = ("declined", "cancelled")


def _utc_day(column, dialect_name: str):
    """The UTC calendar day of a stored UTC timestamp, per backend."""
    if dialect_name == "postgresql":
        return cast(func.timezone("UTC", column), Date)
    # SQLite stores naive UTC text (see UtcDateTimeType); date() takes its day.
    return func.date(column)


def daily_sku_region_demand(
    engine: Engine, *, start: datetime | None = None, end: datetime | None = None, fill_until: date | None = None,
) -> pd.DataFrame:
    """Daily units of accepted orders per ``sku/region`` as a long frame ``unique_id, ds, y``.

    Orders whose status is declined or cancelled are excluded. ``start``/``end`` bound ``orders.created_at``
    (UTC-aware, end exclusive). Each series is made continuous from its first sale to ``fill_until`` (default: the
    last day with any sale), with zero-demand days filled in, because a day without orders is a day of zero demand.
    ``unique_id`` is ``f"{sku}/{region}"``.
    """
    day = _utc_day(orders.c.created_at, engine.dialect.name).label("day")
    conds = [orders.c.status.not_in(NOT_ACCEPTED)]
    if start is not None:
        conds.append(orders.c.created_at >= start)
    if end is not None:
        conds.append(orders.c.created_at < end)
    stmt = (
        select(order_lines.c.sku, warehouses.c.region, day, func.sum(order_lines.c.qty).label("y"))
        .select_from(
            order_lines.join(orders, orders.c.id == order_lines.c.order_id).join(
                warehouses, warehouses.c.id == order_lines.c.warehouse
            )
        )
        .where(and_(*conds))
        .group_by(order_lines.c.sku, warehouses.c.region, day)
        .order_by(order_lines.c.sku, warehouses.c.region, day)
    )
    with engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
        rows = conn.execute(stmt).all()
    if not rows:
        return pd.DataFrame({"unique_id": pd.Series(dtype="str"), "ds": pd.Series(dtype="datetime64[ns]"),
                             "y": pd.Series(dtype="float64")})
    frame = pd.DataFrame(rows, columns=["sku", "region", "ds", "y"])
    frame["unique_id"] = frame["sku"].astype(str) + "/" + frame["region"].astype(str)
    frame["ds"] = pd.to_datetime(frame["ds"])
    frame["y"] = frame["y"].astype("float64")
    last = pd.Timestamp(fill_until) if fill_until is not None else frame["ds"].max()
    parts = []
    for uid, grp in frame.groupby("unique_id", sort=True):
        days = pd.date_range(grp["ds"].min(), max(last, grp["ds"].max()), freq="D")
        s = grp.set_index("ds")["y"].reindex(days, fill_value=0.0)
        parts.append(pd.DataFrame({"unique_id": uid, "ds": days, "y": s.to_numpy()}))
    return pd.concat(parts, ignore_index=True)

