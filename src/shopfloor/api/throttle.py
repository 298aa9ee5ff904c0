"""Failed-login throttling for the browser dashboard (per client address, sliding window, in-process).

API keys are long random secrets, so guessing one is hopeless anyway; the throttle keeps a scripted guesser from
using the login form as a free oracle and keeps such traffic out of the key look-ups. After ``max_failures``
refused logins within ``window_s`` seconds, a client gets ``429`` with ``Retry-After`` until its oldest counted
failure leaves the window; a successful login clears its record. State is per process (several server workers
each count on their own), which bounds the rate rather than pinning it exactly.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Callable


class FailedLoginThrottle:
    def __init__(self, max_failures: int = 10, window_s: float = 300.0, *, max_clients: int = 10_000,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if max_failures < 1 or window_s <= 0:
            raise ValueError("max_failures must be >= 1 and window_s > 0")
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_clients = max_clients
        self._now = monotonic
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float] | None:
        q = self._failures.get(client)
        if q is None:
            return None
        while q and now - q[0] >= self.window_s:
            q.popleft()
        if not q:
            del self._failures[client]
            return None
        return q

    def retry_after(self, client: str) -> int | None:
        """Whole seconds until ``client`` may try again, or None when it may try now."""
        with self._lock:
            now = self._now()
            q = self._recent(client, now)
            if q is None or len(q) < self.max_failures:
                return None
            return max(1, math.ceil(q[-self.max_failures] + self.window_s - now))

    def failed(self, client: str) -> None:
        with self._lock:
            now = self._now()
            q = self._recent(client, now)
            if q is None:
                if len(self._failures) >= self.max_clients:  # bounded memory: forget the oldest clients
                    for stale in list(self._failures)[: self.max_clients // 10 or 1]:
                        del self._failures[stale]
                q = self._failures[client] = deque(maxlen=self.max_failures)
            q.append(now)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)
