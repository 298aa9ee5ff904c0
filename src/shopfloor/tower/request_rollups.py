"""Per-minute request rollups in our own database (the traffic series capacity planning learns from)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

from sqlalchemy import Engine

from ..domain.clock import Clock, SystemClock
from ..store.capacity import record_request_batch

log = logging.getLogger(__name__)


class RequestRollups:
    """Folds requests into (minute, route) cells in memory and upserts them at most every ``flush_s`` seconds
    from the request that finds the buffer due (no background thread). Losing up to ``flush_s`` of counts in a
    crash is acceptable for traffic statistics; a clean shutdown flushes."""

    def __init__(self, engine: Engine, flush_s: float = 2.0, clock: Clock | None = None) -> None:
        self.engine = engine
        self.flush_s = flush_s
        self.clock = clock or SystemClock()
        self._cells: dict[tuple[datetime, str], list[float]] = {}
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._flushing = False

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        if route in ("/healthz", "/metrics", "unmatched") or route.startswith(("/dashboard", "/v1/plans/capacity")):
            return  # probes, scrapes, the dashboard's and the autoscaler's polling are not storefront traffic
        minute = self.clock.now().replace(second=0, microsecond=0)
        with self._lock:
            cell = self._cells.setdefault((minute, route), [0, 0, 0.0])
            cell[0] += 1
            cell[1] += 1 if status >= 500 else 0
            cell[2] += seconds * 1000.0
            due = time.monotonic() - self._last >= self.flush_s
        if due and not self._flushing:
            self._flushing = True  # the event loop never waits for the write lock: flush on a short-lived thread
            threading.Thread(target=self._flush_in_background, name="rollup-flush", daemon=True).start()

    def _flush_in_background(self) -> None:
        try:
            self.flush()
        finally:
            self._flushing = False

    def flush(self) -> None:
        with self._lock:
            cells, self._cells = self._cells, {}
            self._last = time.monotonic()
        if not cells:
            return
        rows = [{"minute": m, "route": r, "count": int(c), "errors": int(e), "latency_ms_sum": s}
                for (m, r), (c, e, s) in cells.items()]
        try:
            record_request_batch(self.engine, rows)
        except Exception:  # noqa: BLE001 - statistics must never fail a request; keep them for the next flush
            log.warning("request rollup flush failed; will retry", exc_info=True)
            with self._lock:
                for (m, r), (c, e, s) in cells.items():
                    cell = self._cells.setdefault((m, r), [0, 0, 0.0])
                    cell[0] += c
                    cell[1] += e
                    cell[2] += s

    def close(self) -> None:
        self.flush()
