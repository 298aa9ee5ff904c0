"""Wall-clock timing of the checkout's critical path, for benchmarks only (off unless a setting names a file).

``SHOPFLOOR_CHECKOUT_STAGES_LOG=/path/file.jsonl`` (``Settings.checkout_stages_log``) makes the server append,
about once a second, JSON lines of three kinds: ``{"c": [...]}`` one row per checkout (wall start in epoch seconds, then ms spent in the promise, the rate
quote, the order's group commit, the authorization, the settlement's group commit, and in all), ``{"b": [...]}``
one row per writer batch (epoch seconds, items, orders, ms the items waited in the queue on average and at most,
ms the batch's transaction took in wall time and on the thread's CPU clock), and ``{"l": [...]}`` the event
loop's lag (epoch seconds, ms a 5 ms sleep overshot). ``bench/checkout_waits.py`` summarises them per phase.
"""

from __future__ import annotations

import asyncio
import threading
import time

import orjson


class StageLog:
    """Collects the rows described above and appends them to ``path`` about once a second."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.rows: list[list] = []
        self.batches: list[list] = []
        self.lags: list[list] = []
        self._lock = threading.Lock()
        self._flushed = time.monotonic()
        self._lag_task: asyncio.Task | None = None

    def checkout(self, row: list) -> None:
        self.rows.append(row)
        if self._lag_task is None:
            self._lag_task = asyncio.get_running_loop().create_task(self._lag())
        if time.monotonic() - self._flushed > 1.0:
            self.flush()

    def batch(self, row: list) -> None:
        self.batches.append(row)  # list.append is atomic under the GIL

    async def _lag(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            self.lags.append([time.time(), round((time.perf_counter() - t - 0.005) * 1e3, 3)])

    def flush(self) -> None:
        with self._lock:
            self._flushed = time.monotonic()
            rows, self.rows = self.rows, []
            batches, self.batches = self.batches, []
            lags, self.lags = self.lags, []
            with open(self.path, "ab") as f:
                for kind, items in (("c", rows), ("b", batches), ("l", lags)):
                    for it in items:
                        f.write(orjson.dumps({kind: it}) + b"\n")
