"""Circuit breakers: one per processor (and one for the rate service), a sliding time window with a minimum number of
calls and a failure percentage, an open period, then half-open probes."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


log = logging.getLogger(__name__)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


BREAKER_GAUGE_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


@dataclass(frozen=True)
class BreakerPolicy:
    window_s: float = 10.0
    min_calls: int = 10
    failure_pct: float = 50.0
    open_s: float = 5.0
    half_open_probes: int = 2
    #: Also open after this many failures in a row (0: off). A window full of earlier successes makes the
    #: percentage rule slow to notice a dependency that just went dark under heavy traffic.
    consecutive_failures: int = 0


class CircuitBreaker:
    """Sliding-time-window breaker.

    CLOSED: outcomes go into a window of the last ``window_s`` seconds; once it holds at least ``min_calls`` calls
    and ``failure_pct`` percent of them failed (or ``consecutive_failures`` calls in a row failed, when set), the
    breaker OPENs. OPEN: ``allow()`` is false for ``open_s``
    seconds, then the breaker is HALF_OPEN. HALF_OPEN: up to ``half_open_probes`` calls are let through at a time;
    one failure re-opens it, ``half_open_probes`` successes close it with an empty window.
    """

    def __init__(
        self,
        name: str,
        policy: BreakerPolicy,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        on_state_change: Callable[[str, BreakerState], None] | None = None,
    ) -> None:
        self.name = name
        self.policy = policy
        self._now = monotonic
        self._on_change = on_state_change
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._window: deque[tuple[float, bool]] = deque()  # (time, failed)
        self._opened_at = 0.0
        self._probes_in_flight = 0
        self._probe_successes = 0
        self._consecutive = 0

    # -- queries ------------------------------------------------------------------------------------------------
    @property
    def state(self) -> BreakerState:
        with self._lock:
            self._maybe_half_open(self._now())
            return self._state

    def window(self) -> tuple[int, int]:
        """(calls, failures) in the current window."""
        with self._lock:
            self._prune(self._now())
            return len(self._window), sum(1 for _, failed in self._window if failed)

    # -- protocol -----------------------------------------------------------------------------------------------
    def allow(self) -> bool:
        """May a call go through now? In HALF_OPEN a ``True`` reserves a probe: report its outcome."""
        with self._lock:
            self._maybe_half_open(self._now())
            if self._state is BreakerState.CLOSED:
                return True
            if self._state is BreakerState.OPEN:
                return False
            if self._probes_in_flight + self._probe_successes < self.policy.half_open_probes:
                self._probes_in_flight += 1
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            now = self._now()
            if self._state is BreakerState.HALF_OPEN:
                self._probes_in_flight = max(0, self._probes_in_flight - 1)
                self._probe_successes += 1
                if self._probe_successes >= self.policy.half_open_probes:
                    self._window.clear()
                    self._set(BreakerState.CLOSED)
                return
            if self._state is BreakerState.CLOSED:
                self._consecutive = 0
                self._window.append((now, False))
                self._prune(now)

    def record_failure(self) -> None:
        with self._lock:
            now = self._now()
            if self._state is BreakerState.HALF_OPEN:
                self._probes_in_flight = max(0, self._probes_in_flight - 1)
                self._open(now)
                return
            if self._state is BreakerState.OPEN:
                return  # a straggler that started before the breaker opened
            self._window.append((now, True))
            self._prune(now)
            self._consecutive += 1
            if 0 < self.policy.consecutive_failures <= self._consecutive:
                self._open(now)
                return
            calls = len(self._window)
            failures = sum(1 for _, failed in self._window if failed)
            if calls >= self.policy.min_calls and failures * 100.0 >= self.policy.failure_pct * calls:
                self._open(now)

    def release(self) -> None:
        """Give back a probe reserved by ``allow()`` that was not used."""
        with self._lock:
            if self._state is BreakerState.HALF_OPEN:
                self._probes_in_flight = max(0, self._probes_in_flight - 1)

    # -- internals ----------------------------------------------------------------------------------------------
    def _prune(self, now: float) -> None:
        horizon = now - self.policy.window_s
        while self._window and self._window[0][0] < horizon:
            self._window.popleft()

    def _open(self, now: float) -> None:
        self._opened_at = now
        self._consecutive = 0
        self._probes_in_flight = 0
        self._probe_successes = 0
        self._set(BreakerState.OPEN)

    def _maybe_half_open(self, now: float) -> None:
        if self._state is BreakerState.OPEN and now - self._opened_at >= self.policy.open_s:
            self._probes_in_flight = 0
            self._probe_successes = 0
            self._set(BreakerState.HALF_OPEN)

    def _set(self, state: BreakerState) -> None:
        if state is self._state:
            return
        self._state = state
        log.info("payment breaker %s -> %s", self.name, state)
        if self._on_change is not None:
            self._on_change(self.name, state)
