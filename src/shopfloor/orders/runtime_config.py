"""Small JSON documents shared by every process through the database, cached in-process with a short TTL.

Used for the simulated gateways' fault configuration (``sim_gateway_faults``) and for the processor order
(``payments_runtime``). A write goes to the database in its own short transaction and refreshes the local cache at
once; other processes see it within ``ttl_s``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, Table, select, update
from sqlalchemy.exc import IntegrityError

from ..domain.clock import Clock


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

    def get(self, key: str) -> Any | None:
        """The stored document for ``key`` (``None`` when absent), at most ``ttl_s`` old."""
        now = self._monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and now - hit[0] < self._ttl_s:
                return hit[1]
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
