"""The server's SQLite writers ask for the write lock promptly while another process holds it."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from shopfloor.store.engine import _begin_immediate_promptly, make_engine


def _hold(path: str, seconds: float) -> threading.Thread:
    """Another connection (as another process would) takes the write lock and commits after ``seconds``."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")

    def release() -> None:
        time.sleep(seconds)
        other.execute("COMMIT")
        other.close()

    thread = threading.Thread(target=release)
    thread.start()
    return thread


@pytest.fixture
def db(tmp_path):
    path = str(tmp_path / "lock.db")
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE t (x INTEGER)")
    con.close()
    return path


def test_a_prompt_writer_takes_the_lock_right_after_the_other_process_releases_it_and_keeps_its_busy_timeout(db):
    engine = make_engine(f"sqlite:///{db}", write_lock_poll_s=0.0005)
    try:
        holder = _hold(db, 0.3)
        started = time.monotonic()
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (2)"))
            waited = time.monotonic() - started
            # the other statements of the connection keep the busy timeout
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        holder.join()
        assert 0.29 <= waited < 0.33  # within a few polls of the release, not SQLite's 100 ms steps
        with engine.connect() as conn:
            assert sorted(r[0] for r in conn.execute(text("SELECT x FROM t"))) == [1, 2]
    finally:
        engine.dispose()


def test_a_prompt_writer_gives_up_after_the_busy_timeout_as_sqlalchemy_reports_it(db):
    engine = make_engine(f"sqlite:///{db}", write_lock_poll_s=0.0005)
    try:
        holder = _hold(db, 0.4)
        with engine.connect() as conn:
            with pytest.raises(OperationalError, match="locked"):
                _begin_immediate_promptly(conn, 0.001, timeout_s=0.1)
            raw = conn.connection.cursor()
            assert raw.execute("PRAGMA busy_timeout").fetchone()[0] == 30000  # set back after the tries
            raw.close()
        holder.join()
    finally:
        engine.dispose()


def test_only_the_server_asks_promptly(db, monkeypatch):
    from shopfloor.bootstrap import build_container
    from shopfloor.config import Settings

    seen: list[float] = []
    import shopfloor.bootstrap as bootstrap

    real = bootstrap.make_engine
    monkeypatch.setattr(bootstrap, "make_engine", lambda *a, **kw: (seen.append(kw.get("write_lock_poll_s")),
                                                                    real(*a, **kw))[1])
    for server in (False, True):
        build_container(Settings(database_url=f"sqlite:///{db}"), server=server).engine.dispose()
    assert [s for s in seen if s is not None] == [0.0, 0.0005]  # (the gateway's own file: its own engine)
