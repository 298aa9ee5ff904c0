"""Small JSON documents shared by every process through the database, cached in-process with a short TTL.

Used for the simulated gateways' fault configuration (``sim_gateway_faults``) and for the processor order
(``payments_runtime``). A write goes to the database in its own short transaction and refreshes the local cache at
once; other processes see it within ``ttl_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, Table, select, update
from sqlalchemy.exc import IntegrityError

from ..domain.clock import Clock

log = logging.getLogger(__name__)


class SharedJsonStore:
    """Read-through TTL cache over a ``(key column, JSON column, updated_at)`` table."""

    def __init__(
        self,
        engine: Engine,
        table: Table,
        *,
        key_column: str,
        value_column: str,
        clock: Clock,
        ttl_s: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._table = table
        self._key = table.c[key_column]
        self._value = table.c[value_column]
        self._key_name = key_column
        self._value_name = value_column
        self._clock = clock
        self._ttl_s = ttl_s
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._refreshing: set[str] = set()

    def get(self, key: str) -> Any | None:
        """The stored document for ``key`` (``None`` when absent), at most ``ttl_s`` old."""
        now = self._monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and now - hit[0] < self._ttl_s:
                return hit[1]
        return self._load(key, now)

    def get_nowait(self, key: str) -> Any | None:
        """Like :meth:`get`, for callers that must not wait on the database (the server's event loop): a cached
        document past its ``ttl_s`` is returned as it is while a background thread reads the fresh one, so other
        processes' writes are seen within ``ttl_s`` plus one read. Only the very first read of ``key`` waits, and
        with ``ttl_s`` 0 (always read) every read does, as with :meth:`get`."""
        if self._ttl_s <= 0:
            return self.get(key)
        now = self._monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is None:
                stale = False
            elif now - hit[0] < self._ttl_s:
                return hit[1]
            else:
                stale = key not in self._refreshing
                if stale:
                    self._refreshing.add(key)
        if hit is None:
            return self._load(key, now)
        if stale:
            threading.Thread(target=self._refresh, args=(key,), name="runtime-config", daemon=True).start()
        return hit[1]

    def _refresh(self, key: str) -> None:
        try:
            self._load(key, self._monotonic())
        except Exception:  # noqa: BLE001 - the next call tries again; the cached document stays in use
            log.warning("could not refresh the shared setting %s", key, exc_info=True)
        finally:
            with self._lock:
                self._refreshing.discard(key)

    def _load(self, key: str, now: float) -> Any | None:
        with self._engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            value = conn.execute(select(self._value).where(self._key == key)).scalar_one_or_none()
            conn.rollback()
        with self._lock:
            self._cache[key] = (now, value)
        return value

    def put(self, key: str, value: Any) -> None:
        """Upsert ``value`` (portable: update, then insert if nothing was there, retry once on a race)."""
        now = self._clock.now()
        for _ in range(2):
            try:
                with self._engine.begin() as conn:
                    res = conn.execute(
                        update(self._table).where(self._key == key).values(
                            {self._value_name: value, "updated_at": now}
                        )
                    )
                    if res.rowcount == 0:
                        conn.execute(
                            self._table.insert().values(
                                {self._key_name: key, self._value_name: value, "updated_at": now}
                            )
                        )
                break
            except IntegrityError:  # another process inserted the row between our update and insert
                continue
        with self._lock:
            self._cache[key] = (self._monotonic(), value)

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()
