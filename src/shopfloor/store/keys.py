"""API key repository."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Engine, delete, insert, select, update

from ..domain.keys import hash_api_key, new_api_key, validate_key_name, validate_scopes
from .tables import api_keys, dashboard_sessions_ended


def create_api_key(engine: Engine, scopes: list[str], name: str, now: datetime) -> tuple[str, str]:
    """Create a key with ``scopes``; returns (key_id, secret). Only the hash is stored."""
    scopes = validate_scopes(scopes)
    name = validate_key_name(name)
    key_id, secret, key_hash = new_api_key()
    with engine.begin() as conn:
        conn.execute(
            insert(api_keys).values(
                id=key_id, name=name, key_hash=key_hash, scopes=scopes, created_at=now, revoked_at=None
            )
        )
    return key_id, secret


def find_key_by_secret(engine: Engine, secret: str) -> tuple[str, list[str]] | None:
    with engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
        row = conn.execute(
            select(api_keys.c.id, api_keys.c.scopes).where(
                api_keys.c.key_hash == hash_api_key(secret), api_keys.c.revoked_at.is_(None)
            )
        ).first()
    return (row.id, list(row.scopes)) if row else None


def revoke_api_key(engine: Engine, key_id: str, now: datetime) -> bool:
    with engine.begin() as conn:
        res = conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=now))
    return res.rowcount == 1


def list_api_keys(engine: Engine) -> list[dict]:
    with engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
        rows = conn.execute(
            select(api_keys.c.id, api_keys.c.name, api_keys.c.scopes, api_keys.c.created_at, api_keys.c.revoked_at)
        ).all()
    return [dict(r._mapping) for r in rows]


def end_dashboard_session(engine: Engine, session_id: str, expires_at: datetime, now: datetime) -> None:
    """Record that a dashboard session was logged out (idempotent); prunes sessions that have expired anyway."""
    with engine.begin() as conn:
        conn.execute(delete(dashboard_sessions_ended).where(dashboard_sessions_ended.c.expires_at < now))
        if not dashboard_session_ended(conn, session_id):
            conn.execute(insert(dashboard_sessions_ended).values(session_id=session_id, expires_at=expires_at))


def dashboard_session_ended(conn: Connection, session_id: str) -> bool:
    return conn.execute(select(dashboard_sessions_ended.c.session_id)
                        .where(dashboard_sessions_ended.c.session_id == session_id)).first() is not None
