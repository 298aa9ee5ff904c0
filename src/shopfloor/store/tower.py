"""Queries for the control-tower tables (SQLAlchemy Core, parameterised; SQLite and PostgreSQL alike)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from sqlalchemy import Engine, and_, delete, func, select
from .analytics_tables import listing_flags
from .engine import dialect_insert
from .orders_repo import enqueue_event
from .retention import purge_minutes_before
from .tower_tables import (
    LE_INF_MS,
    alerts,
    funnel_latency,
    funnel_minutes,
    promise_degradations,
    promotion_suppressions,
    tower_actions,
)
from ..tower.funnel import LATENCY_BOUNDS_MS, LATENCY_BUCKETS

_LE_MS = LATENCY_BOUNDS_MS + (LE_INF_MS,)
_BUCKET_OF = {le: i for i, le in enumerate(_LE_MS)}


class TowerRepository:
    """Funnel rollups, alerts, the action log, suppressions and degradations. Implements the tower's ports
    (``ActionLog``, ``TowerState``, ``AlternativesSource``) on a database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- funnel rollups -------------------------------------------------------------------------------------------
    def add_funnel_counts(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Upsert pre-aggregated rows ``{minute, stage, count, latency_ms_sum, latency_count}`` in one statement;
        a row's optional ``latency_buckets`` (counts per ``tower.funnel.LATENCY_BOUNDS_MS`` bucket) are added to
        the latency histogram in the same transaction."""
        rows = list(rows)
        if not rows:
            return 0
        stmt = dialect_insert(self.engine, funnel_minutes)
        stmt = stmt.on_conflict_do_update(
            index_elements=["minute", "stage"],
            set_={
                "count": funnel_minutes.c.count + stmt.excluded.count,
                "latency_ms_sum": funnel_minutes.c.latency_ms_sum + stmt.excluded.latency_ms_sum,
                "latency_count": funnel_minutes.c.latency_count + stmt.excluded.latency_count,
            },
        )
        # In primary-key order, so two processes flushing the same minutes lock their rows in the same order
        # (PostgreSQL would otherwise deadlock one of them; its rows would wait for the next flush).
        rows.sort(key=lambda r: (r["minute"], r["stage"]))
        buckets = [{"minute": r["minute"], "stage": r["stage"], "le_ms": _LE_MS[i], "count": int(c)}
                   for r in rows if r.get("latency_buckets") for i, c in enumerate(r["latency_buckets"]) if c]
        with self.engine.begin() as conn:
            conn.execute(stmt, [{k: r[k] for k in ("minute", "stage", "count", "latency_ms_sum", "latency_count")}
                                for r in rows])
            if buckets:
                hist = dialect_insert(self.engine, funnel_latency)
                hist = hist.on_conflict_do_update(index_elements=["minute", "stage", "le_ms"],
                                                  set_={"count": funnel_latency.c.count + hist.excluded.count})
                conn.execute(hist, buckets)
        return len(rows)

    def funnel_latency(self, since: datetime, until: datetime,
                       stages: Iterable[str] | None = None) -> dict[tuple[datetime, str], list[int]]:
        """The latency histogram in ``[since, until)``: ``{(minute, stage): counts per bucket}`` (see
        ``tower.funnel.latency_quantile``); minutes and stages with no latency are absent."""
        q = select(funnel_latency).where(funnel_latency.c.minute >= since, funnel_latency.c.minute < until)
        if stages:
            q = q.where(funnel_latency.c.stage.in_(list(stages)))
        out: dict[tuple[datetime, str], list[int]] = {}
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            for r in conn.execute(q):
                i = _BUCKET_OF.get(r.le_ms)
                if i is not None:  # a bound this version does not know is left out, not misfiled
                    out.setdefault((r.minute, r.stage), [0] * LATENCY_BUCKETS)[i] += int(r.count)
        return out

    def funnel_series(self, since: datetime, until: datetime, stages: Iterable[str] | None = None) -> list[dict]:
        """Per-minute rows in ``[since, until)``, oldest first, with mean latency where there is any."""
        q = select(funnel_minutes).where(funnel_minutes.c.minute >= since, funnel_minutes.c.minute < until)
        if stages:
            q = q.where(funnel_minutes.c.stage.in_(list(stages)))
        q = q.order_by(funnel_minutes.c.minute, funnel_minutes.c.stage)
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            out = []
            for r in conn.execute(q).mappings():
                row = dict(r)
                row["latency_ms_mean"] = row["latency_ms_sum"] / row["latency_count"] if row["latency_count"] else None
                out.append(row)
            return out

    def funnel_totals(self, since: datetime, until: datetime) -> dict[str, int]:
        q = (select(funnel_minutes.c.stage, func.sum(funnel_minutes.c.count))
             .where(funnel_minutes.c.minute >= since, funnel_minutes.c.minute < until)
             .group_by(funnel_minutes.c.stage))
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            return {stage: int(total or 0) for stage, total in conn.execute(q)}

    # -- alerts ---------------------------------------------------------------------------------------------------
    def add_alert(self, *, at: datetime, source: str, metric: str, kind: str, message: str = "",
                  observed: float | None = None, expected: float | None = None, lower: float | None = None,
                  upper: float | None = None, score: float | None = None) -> int:
        with self.engine.begin() as conn:
            res = conn.execute(alerts.insert().values(
                at=at, source=source, metric=metric, kind=kind, message=message, observed=observed,
                expected=expected, lower=lower, upper=upper, score=score))
            alert_id = int(res.inserted_primary_key[0])
            # Published to webhook subscribers (tower.alert) through the outbox, in the alert's own transaction.
            enqueue_event(conn, "TowerAlert", f"alert-{alert_id}", {
                "alert_id": alert_id, "at": at.isoformat(), "source": source, "metric": metric, "kind": kind,
                "message": message, "observed": observed, "expected": expected}, at)
            return alert_id

    def list_alerts(self, *, since: datetime | None = None, limit: int = 100) -> list[dict]:
        q = select(alerts).order_by(alerts.c.at.desc(), alerts.c.id.desc()).limit(limit)
        if since is not None:
            q = q.where(alerts.c.at >= since)
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def count_alerts_since(self, since: datetime) -> int:
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            return int(conn.execute(select(func.count()).select_from(alerts).where(alerts.c.at >= since)).scalar())

    # -- action log (ActionLog port) ------------------------------------------------------------------------------
    def record(self, entry) -> None:
        with self.engine.begin() as conn:
            conn.execute(tower_actions.insert().values(
                at=entry.at, rule=entry.rule, action_key=entry.action_key, action_type=entry.action_type,
                status=entry.status, dry_run=entry.dry_run, reason=entry.reason,
                signal_values=entry.signal_values, before=entry.before, after=entry.after, error=entry.error))

    def last_fired(self, action_key: str, dry_run: bool) -> datetime | None:
        status = "dry_run" if dry_run else "applied"
        q = select(func.max(tower_actions.c.at)).where(
            tower_actions.c.action_key == action_key, tower_actions.c.dry_run == dry_run,
            tower_actions.c.status == status)
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            value = conn.execute(q).scalar()
        if value is None:
            return None
        if isinstance(value, str) or value.tzinfo is None:  # some drivers hand MAX() back unprocessed
            return tower_actions.c.at.type.process_result_value(value, self.engine.dialect)
        return value

    def list_actions(self, *, limit: int = 100, rule: str | None = None) -> list[dict]:
        q = select(tower_actions).order_by(tower_actions.c.at.desc(), tower_actions.c.id.desc()).limit(limit)
        if rule:
            q = q.where(tower_actions.c.rule == rule)
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    # -- suppressions and degradations (TowerState port) ----------------------------------------------------------
    def get_suppression(self, sku: str, now: datetime) -> dict | None:
        q = select(promotion_suppressions).where(
            and_(promotion_suppressions.c.sku == sku, promotion_suppressions.c.until > now))
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            row = conn.execute(q).mappings().first()
        return _jsonable_row(row)

    def suppress_promotion(self, sku: str, reason: str, alternatives: list[str], until: datetime,
                           now: datetime) -> None:
        stmt = dialect_insert(self.engine, promotion_suppressions).values(
            sku=sku, reason=reason, alternatives=list(alternatives), until=until, created_at=now)
        stmt = stmt.on_conflict_do_update(index_elements=["sku"], set_={
            "reason": stmt.excluded.reason, "alternatives": stmt.excluded.alternatives,
            "until": stmt.excluded.until, "created_at": stmt.excluded.created_at})
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def active_suppressions(self, now: datetime) -> list[dict]:
        q = select(promotion_suppressions).where(promotion_suppressions.c.until > now).order_by(
            promotion_suppressions.c.sku)
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            return [_jsonable_row(r) for r in conn.execute(q).mappings()]

    def alternatives_for(self, sku: str, limit: int = 3, now: datetime | None = None) -> list[str]:
        q = select(promotion_suppressions.c.alternatives, promotion_suppressions.c.until).where(
            promotion_suppressions.c.sku == sku)
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            row = conn.execute(q).first()
        if row is None or (now is not None and row.until <= now):
            return []
        return list(row.alternatives or [])[:limit]

    def get_degradation(self, warehouse: str, now: datetime) -> dict | None:
        q = select(promise_degradations).where(
            and_(promise_degradations.c.warehouse == warehouse, promise_degradations.c.until > now))
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            return _jsonable_row(conn.execute(q).mappings().first())

    def degrade_promises(self, warehouse: str, reason: str, extra_days: int, until: datetime,
                         now: datetime) -> None:
        stmt = dialect_insert(self.engine, promise_degradations).values(
            warehouse=warehouse, reason=reason, extra_days=extra_days, until=until, created_at=now)
        stmt = stmt.on_conflict_do_update(index_elements=["warehouse"], set_={
            "reason": stmt.excluded.reason, "extra_days": stmt.excluded.extra_days,
            "until": stmt.excluded.until, "created_at": stmt.excluded.created_at})
        with self.engine.begin() as conn:
            conn.execute(stmt)
            enqueue_event(conn, "PromiseDegraded", f"degradation-{warehouse}", {
                "warehouse": warehouse, "reason": reason, "extra_days": extra_days, "until": until.isoformat()}, now)

    def active_degradations(self, now: datetime) -> list[dict]:
        q = select(promise_degradations).where(promise_degradations.c.until > now).order_by(
            promise_degradations.c.warehouse)
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            return [_jsonable_row(r) for r in conn.execute(q).mappings()]

    # -- listing flags and promotion proposals (ListingWork port) -------------------------------------------------
    def get_listing_flag(self, sku: str, kind: str, now: datetime) -> dict | None:
        q = select(listing_flags).where(and_(listing_flags.c.sku == sku, listing_flags.c.kind == kind,
                                             listing_flags.c.until > now))
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            return _jsonable_row(conn.execute(q).mappings().first())

    def set_listing_flag(self, sku: str, kind: str, reasons: Mapping[str, int], note: str, rule: str,
                         until: datetime, now: datetime) -> None:
        stmt = dialect_insert(self.engine, listing_flags).values(
            sku=sku, kind=kind, reasons=dict(reasons), note=note, rule=rule, until=until, created_at=now)
        stmt = stmt.on_conflict_do_update(index_elements=["sku", "kind"], set_={
            "reasons": stmt.excluded.reasons, "note": stmt.excluded.note, "rule": stmt.excluded.rule,
            "until": stmt.excluded.until, "created_at": stmt.excluded.created_at})
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def active_listing_flags(self, now: datetime, kind: str | None = None) -> list[dict]:
        q = select(listing_flags).where(listing_flags.c.until > now).order_by(listing_flags.c.kind,
                                                                              listing_flags.c.sku)
        if kind is not None:
            q = q.where(listing_flags.c.kind == kind)
        with self.engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            return [_jsonable_row(r) for r in conn.execute(q).mappings()]

    def purge_rollups(self, before: datetime, max_span: timedelta = timedelta(days=1)) -> int:
        """Delete the funnel rollups (counts and latency buckets) of minutes before ``before``, at most
        ``max_span`` of the oldest per call (see :func:`~shopfloor.store.retention.purge_minutes_before`)."""
        return purge_minutes_before(self.engine, (funnel_latency, funnel_minutes), before, max_span)

    def purge_expired(self, now: datetime) -> int:
        with self.engine.begin() as conn:
            n = conn.execute(delete(promotion_suppressions).where(promotion_suppressions.c.until <= now)).rowcount
            n += conn.execute(delete(promise_degradations).where(promise_degradations.c.until <= now)).rowcount
        return n


def _jsonable_row(row) -> dict | None:
    if row is None:
        return None
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dict(row).items()}
