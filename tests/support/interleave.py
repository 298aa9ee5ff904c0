"""Forced interleavings for PostgreSQL race tests.

A :class:`Competitor` runs some code on its own engine in another thread; the test waits until that code has
either finished or is waiting on a lock the test holds (read from ``pg_locks``), never for a fixed time.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any, Callable

from sqlalchemy import Engine, event, text

from shopfloor.store.engine import make_engine


def tagged_engine(url: str, tag: str) -> Engine:
    """An engine whose sessions carry ``application_name = tag`` (so ``pg_stat_activity`` can find them)."""
    engine = make_engine(url, pool_size=2)

    @event.listens_for(engine, "connect")
    def _tag(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute(f"SET application_name = '{tag}'")
        cur.close()
        dbapi_conn.commit()  # SET is transactional: without this the pool's first rollback would undo it

    return engine


class Competitor:
    """``work(engine)`` run on a thread of its own, against an engine tagged for lock observation."""

    def __init__(self, url: str, work: Callable[[Engine], Any]) -> None:
        self.tag = f"competitor_{uuid.uuid4().hex[:8]}"
        self.engine = tagged_engine(url, self.tag)
        self.work = work
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.result = self.work(self.engine)
        except BaseException as exc:  # noqa: BLE001 - handed to the test by join()
            self.error = exc
        finally:
            self.done.set()

    def start_until_done_or_blocked(self, observer: Engine, limit_s: float = 30.0) -> str:
        """Start, then return ``"done"`` once the work finished or ``"blocked"`` once it waits on a lock."""
        self._thread.start()
        blocked = text("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                       "WHERE a.application_name = :tag AND NOT l.granted")
        with observer.connect() as conn:
            for _ in range(int(limit_s / 0.005)):
                if self.done.wait(0.005):
                    return "done"
                waiting = conn.execute(blocked, {"tag": self.tag}).scalar()
                conn.rollback()
                if waiting:
                    return "blocked"
        raise AssertionError("the competitor neither finished nor blocked")

    def join(self, limit_s: float = 30.0) -> Any:
        self._thread.join(limit_s)
        assert not self._thread.is_alive(), "the competitor never finished"
        self.engine.dispose()
        if self.error is not None:
            raise self.error
        return self.result


def once_after(engine: Engine, matches: Callable[[str], bool], action: Callable[[], None]) -> None:
    """Run ``action`` once, on the thread that executes the first statement ``matches`` accepts, right after it."""
    fired = threading.Event()

    @event.listens_for(engine, "after_cursor_execute")
    def _hook(conn, cursor, statement, parameters, context, executemany):
        if not fired.is_set() and matches(statement):
            fired.set()
            action()
