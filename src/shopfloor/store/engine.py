"""Engine construction: SQLite (WAL, synchronous=FULL so a 2xx is durable) or PostgreSQL, same Core code."""

from __future__ import annotations

import threading

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import NullPool


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use the psycopg 3 driver for them."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, *, pool_size: int = 8, echo: bool = False, synchronous: str = "FULL") -> Engine:
    """``synchronous`` applies to SQLite only: FULL (the default) makes every commit survive power loss."""
    if synchronous not in ("FULL", "NORMAL"):
        raise ValueError("synchronous must be FULL or NORMAL")
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 30, "isolation_level": None},
            pool_size=pool_size,
            max_overflow=pool_size * 2,
            pool_pre_ping=False,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - exercised by every SQLite test
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        # Read-only work opts out with ``conn.execution_options(sqlite_begin="DEFERRED")``.
        # pysqlite's own transaction handling is broken (no BEGIN before SELECT, no SAVEPOINT support);
        # with isolation_level=None we emit BEGIN IMMEDIATE ourselves so writers queue on the lock up front
        # instead of failing on lock upgrade.
        # SQLite has one writer at a time. Threads of this process queue on a Python lock (woken at once when it
        # is released) instead of spinning in SQLite's busy handler, which sleeps in coarse steps and turned
        # in-process write contention into tens of milliseconds of idle waiting per transaction. Other
        # processes still meet at the database lock (busy_timeout).
        write_lock = threading.Lock()

        def _release(info) -> None:
            if info.pop("sf_write_lock", False):
                write_lock.release()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # pragma: no cover - exercised by every SQLite test
            mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
            if mode == "DEFERRED":
                conn.exec_driver_sql("BEGIN DEFERRED")
                return
            if not conn.info.get("sf_write_lock"):
                # Held until the connection goes back to the pool (after its commit or rollback). The timeout
                # means a mistake can only cost a wait, never a deadlock: SQLite's own lock still guards writes.
                conn.info["sf_write_lock"] = write_lock.acquire(timeout=30)
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        @event.listens_for(engine, "reset")
        def _sqlite_reset(dbapi_conn, record, *args):  # pragma: no cover - the connection is back in the pool
            _release(record.info)

        @event.listens_for(engine, "close")
        def _sqlite_close(dbapi_conn, record):  # pragma: no cover
            _release(record.info)

        @event.listens_for(engine, "invalidate")
        def _sqlite_invalidate(dbapi_conn, record, exc):  # pragma: no cover
            _release(record.info)

        return engine
    return create_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True
    )


def make_unpooled_engine(url: str) -> Engine:
    """An engine for one-shot CLI work (no pool left behind)."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        eng = make_engine(url)
        return eng
    return create_engine(url, poolclass=NullPool)
