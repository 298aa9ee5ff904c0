"""Engine construction: SQLite (WAL, synchronous=FULL so a 2xx is durable) or PostgreSQL, same Core code."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import weakref
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.pool import NullPool

from .raw import run_driver_sql

#: Each SQLite engine's in-process write lock (see make_engine), for code that writes on a DBAPI connection of its
#: own and must queue with the engine's transactions.
_WRITE_LOCKS: "weakref.WeakKeyDictionary[Engine, threading.Lock]" = weakref.WeakKeyDictionary()


def sqlite_write_lock(engine: Engine) -> threading.Lock | None:
    """The lock this process's write transactions on ``engine`` hold (SQLite engines made by make_engine)."""
    return _WRITE_LOCKS.get(engine)


def dialect_insert(bind: Any, table: Any):
    """``INSERT`` for ``table`` in the dialect of ``bind`` (an engine, a connection or a dialect name), so callers
    get ``on_conflict_do_nothing/do_update`` on both supported backends, PostgreSQL and SQLite."""
    name = bind if isinstance(bind, str) else bind.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"upserts are implemented for PostgreSQL and SQLite, not {name}")


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use the psycopg 3 driver for them."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


log = logging.getLogger(__name__)


def create_sqlite_file_privately(url: str) -> None:
    """Create the SQLite database file of ``url`` empty, readable by its owner only (mode 600), when it does not
    exist yet: the store holds webhook signing secrets and channel client secrets, and SQLite would create it
    with the umask's mode (usually 644). SQLite gives the ``-wal``, ``-shm`` and ``-journal`` files the database
    file's mode. An existing file, a PostgreSQL URL or an in-memory database is left alone; a folder that does not
    exist is left for SQLite to report when it opens the file."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(normalise_url(url))
    except Exception:  # noqa: BLE001 - an unparsable URL: the engine reports it
        return
    path = parsed.database
    if (parsed.get_backend_name() != "sqlite" or not path or path == ":memory:" or path.startswith("file:")
            or parsed.query.get("mode") == "memory"):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:  # it exists (left as it is), or its folder does not
        pass


def json_dumps(value: Any) -> str:
    """JSON columns are written with orjson: the buy path's group commit serialises several documents per order
    (payment, shipping, promise, outbox payload), and the standard library's encoder was about a tenth of the
    writer thread's CPU. Values orjson refuses (integers beyond 64 bits, say) fall back to the standard library,
    so nothing that used to be storable stops being storable."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value)


def json_loads(text: str | bytes) -> Any:
    """Read with orjson; a document it rejects (``NaN`` written by an older standard-library encoder) falls back
    to the standard library."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def make_engine(url: str, *, pool_size: int = 8, echo: bool = False, synchronous: str = "FULL",
                wal_autocheckpoint: int = 1000, max_overflow: int | None = None,
                write_lock_poll_s: float = 0.0) -> Engine:
    """``synchronous`` applies to SQLite only: FULL (the default) makes every commit survive power loss.
    ``wal_autocheckpoint`` (SQLite, pages) is how large the WAL may grow before a committing writer copies it back
    into the database file itself; a process running a :class:`WalCheckpointer` raises it so that this copying
    leaves the write path (the setting stays as a safety net). The pool holds ``pool_size`` connections and opens
    up to ``max_overflow`` (default ``2 * pool_size``) more under load.

    ``write_lock_poll_s`` (SQLite): when another process holds the database's write lock, this engine's writers ask
    for it again every ``write_lock_poll_s`` seconds (0: SQLite's busy handler, which sleeps 1, 2, 5, ... up to
    100 ms between tries, 30 s in all). The server sets it so that its checkouts' commits take the lock within about
    that time of its release, instead of losing it for seconds to another process's run of short transactions
    (the worker delivering a burst of orders' events); see :func:`_begin_immediate_promptly`."""
    if max_overflow is None:
        max_overflow = pool_size * 2
    if synchronous not in ("FULL", "NORMAL"):
        raise ValueError("synchronous must be FULL or NORMAL")
    url = normalise_url(url)
    if url.startswith("sqlite"):
        create_sqlite_file_privately(url)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 30, "isolation_level": None},
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_pre_ping=False,
            # Hand out the connection returned last. Each SQLite connection keeps its own page cache, and a
            # connection that finds the database changed by another one since its last transaction drops all of
            # it. Handed out in turn (the default), every group commit of the checkout writer ran on a connection
            # some other one had just written past, so it re-read its pages from the file each time; handed out
            # last-in-first-out, the writer mostly gets back the connection it just used, cache intact.
            pool_use_lifo=True,
            json_serializer=json_dumps,
            json_deserializer=json_loads,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - exercised by every SQLite test
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            cur.execute(f"PRAGMA wal_autocheckpoint={int(wal_autocheckpoint)}")
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
        _WRITE_LOCKS[engine] = write_lock

        def _release(info) -> None:
            if info.pop("sf_write_lock", False):
                write_lock.release()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # pragma: no cover - exercised by every SQLite test
            mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
            if mode == "DEFERRED":
                run_driver_sql(conn, "BEGIN DEFERRED")  # off SQLAlchemy's execution path (cheaper)
                return
            if not conn.info.get("sf_write_lock"):
                # Held until the connection goes back to the pool (after its commit or rollback). The timeout
                # means a mistake can only cost a wait, never a deadlock: SQLite's own lock still guards writes.
                conn.info["sf_write_lock"] = write_lock.acquire(timeout=30)
            if write_lock_poll_s > 0:
                _begin_immediate_promptly(conn, write_lock_poll_s)
            else:
                run_driver_sql(conn, "BEGIN IMMEDIATE")

        @event.listens_for(engine, "reset")
        def _sqlite_reset(dbapi_conn, record, reset_state):  # pragma: no cover - the connection is back in the pool
            # (The 2.0 signature: the old one made SQLAlchemy emit a deprecation warning on every pool return.)
            _release(record.info)

        @event.listens_for(engine, "close")
        def _sqlite_close(dbapi_conn, record):  # pragma: no cover
            _release(record.info)

        @event.listens_for(engine, "invalidate")
        def _sqlite_invalidate(dbapi_conn, record, exc):  # pragma: no cover
            _release(record.info)

        return engine
    return create_engine(
        url, echo=echo, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True,
        json_serializer=json_dumps, json_deserializer=json_loads,
    )


_BUSY_TIMEOUT_MS = 30_000  # every SQLite connection's busy timeout


def _begin_immediate_promptly(conn, poll_s: float, timeout_s: float = _BUSY_TIMEOUT_MS / 1000) -> None:
    """``BEGIN IMMEDIATE`` on ``conn``, asking for the write lock again every ``poll_s`` while another process holds
    it (at most ``timeout_s`` in all, as the busy timeout). SQLite's busy handler sleeps in growing steps (1, 2, 5,
    10, 15, 20, 25, 25, 25, 50, 50, 100 ms, then 100 ms a try): a writer that came second once waited 100 ms between
    tries, and another process committing short transactions back to back (a few ms each, one after the other)
    could take the lock in between every time. Asking every ``poll_s`` takes the lock within about ``poll_s`` of a
    release. The busy handler is off only for these tries: the connection's busy timeout is set back before
    anything else runs on it, so every other statement keeps it."""
    cursor = conn.connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=0")
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    cursor.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if not _busy(exc) or time.monotonic() > deadline:
                        raise _as_sqlalchemy(conn, exc) from exc
                time.sleep(poll_s)
        finally:
            cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def _busy(exc: Exception) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _as_sqlalchemy(conn, exc: Exception) -> Exception:
    """The driver's error as SQLAlchemy raises it (an ``OperationalError``), as :func:`run_driver_sql` does."""
    from sqlalchemy.exc import DBAPIError

    return DBAPIError.instance("BEGIN IMMEDIATE", None, exc, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect)


class WalCheckpointer:
    """Copies a SQLite WAL back into the database file from a background thread (``PRAGMA wal_checkpoint(PASSIVE)``
    every ``interval_s``), so the group-commit writer's transactions only append to the WAL and fsync it. A
    passive checkpoint takes no lock that writers wait for; frames it cannot copy yet (a reader still needs them)
    are copied on a later round. Under checkout load this halved the writer's commit time (10 -> 5 ms a batch).
    """

    def __init__(self, url: str, interval_s: float = 0.5) -> None:
        url = normalise_url(url)
        if not url.startswith("sqlite:///"):
            raise ValueError("WalCheckpointer needs a SQLite file URL")
        self.path = url.split("sqlite:///", 1)[1].split("?", 1)[0]
        self.interval_s = interval_s
        self.rounds = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def applies_to(url: str) -> bool:
        """Only a SQLite database file has a WAL to checkpoint."""
        url = normalise_url(url)
        return url.startswith("sqlite:///") and ":memory:" not in url and "mode=memory" not in url

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="wal-checkpointer", daemon=True)
            self._thread.start()

    def checkpoint(self, conn: sqlite3.Connection) -> tuple[int, int, int]:
        """One passive round: (busy, WAL frames, frames copied)."""
        row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.rounds += 1
        return int(row[0]), int(row[1]), int(row[2])

    def _run(self) -> None:
        from ..runtime import name_os_thread

        name_os_thread("wal-checkpoint")  # the OS keeps 15 bytes of a name
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=1000")
            while not self._stop.wait(self.interval_s):
                try:
                    self.checkpoint(conn)
                except sqlite3.Error as exc:  # busy or locked: the next round (or the writer's own) catches up
                    log.debug("WAL checkpoint round skipped: %s", exc)
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def make_unpooled_engine(url: str) -> Engine:
    """An engine for one-shot CLI work (no pool left behind)."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        eng = make_engine(url)
        return eng
    return create_engine(url, poolclass=NullPool)


def is_read_only(exc: BaseException) -> bool:
    """Whether a database error says the server is a standby (SQLSTATE 25006, read_only_sql_transaction): the
    region does not hold the primary, so the write belongs elsewhere."""
    orig = getattr(exc, "orig", None) or exc
    return getattr(orig, "sqlstate", None) == "25006"
