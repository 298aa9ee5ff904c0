"""The dashboard's plan cache builds a slow value once, however many polls arrive while it is being built."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from shopfloor.tower.dashboard_panels import TtlCache


class _SlowBuild:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls = 0
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            n = self.calls
        time.sleep(self.seconds)
        with self._lock:
            self.running -= 1
        return {"build": n}


def test_concurrent_polls_on_a_cold_cache_share_one_build():
    cache, build, owner = TtlCache(), _SlowBuild(0.3), object()
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda _: cache.get(owner, "restock", 30.0, build), range(16)))
    assert build.calls == 1 and build.most_at_once == 1
    assert results == [{"build": 1}] * 16


class _GatedBuild:
    """A build that holds until the test releases it, so no assertion depends on how fast threads start."""

    def __init__(self, result=None, error: Exception | None = None) -> None:
        self.result, self.error = result, error
        self.started, self.release = threading.Event(), threading.Event()
        self.calls = 0

    def __call__(self):
        self.calls += 1
        self.started.set()
        assert self.release.wait(10), "the test never released the build"
        if self.error is not None:
            raise self.error
        return self.result


def test_an_expired_value_is_served_while_one_rebuild_runs():
    cache, owner = TtlCache(), object()
    assert cache.get(owner, "plan", 0.05, lambda: "old") == "old"
    time.sleep(0.1)  # expired
    build = _GatedBuild(result="new")
    with ThreadPoolExecutor(8) as pool:
        rebuild = pool.submit(cache.get, owner, "plan", 0.05, build)
        assert build.started.wait(10)
        # The rebuild is held: callers that waited for it would time out here instead of getting the old value.
        during = [pool.submit(cache.get, owner, "plan", 0.05, build) for _ in range(6)]
        assert [f.result(timeout=5) for f in during] == ["old"] * 6
        build.release.set()
        assert rebuild.result(timeout=10) == "new"
    assert build.calls == 1
    assert cache.get(owner, "plan", 30.0, build) == "new"


def test_a_failed_build_reaches_every_waiter_and_the_next_call_builds_again():
    cache, owner = TtlCache(), object()
    failing = _GatedBuild(error=ValueError("broken policy file"))
    entered = []

    def poll():
        entered.append(1)
        return cache.get(owner, "restock", 30.0, failing)

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(poll) for _ in range(4)]
        assert failing.started.wait(10)
        deadline = time.monotonic() + 10
        while len(entered) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)  # the last caller to enter reaches the wait on the held build
        failing.release.set()
        for f in futures:
            with pytest.raises(ValueError, match="broken policy file"):
                f.result(timeout=10)
    assert failing.calls == 1
    assert cache.get(owner, "restock", 30.0, lambda: "fixed") == "fixed"


def test_another_version_is_never_answered_with_the_old_one():
    cache, owner = TtlCache(), object()
    assert cache.get(owner, "traffic", 30.0, lambda: "minute 1", version=1) == "minute 1"
    assert cache.get(owner, "traffic", 30.0, lambda: "minute 2", version=2) == "minute 2"
    assert cache.get(owner, "traffic", 30.0, lambda: "unused", version=2) == "minute 2"
