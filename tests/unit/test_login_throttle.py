import pytest

from shopfloor.api.throttle import FailedLoginThrottle


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_throttles_after_max_failures_until_the_oldest_leaves_the_window():
    clock = Clock()
    th = FailedLoginThrottle(3, 60, monotonic=clock)
    for _ in range(3):
        assert th.retry_after("a") is None
        th.failed("a")
        clock.t += 10
    # failures at 1000, 1010, 1020; now 1030: the first leaves the window at 1060
    assert th.retry_after("a") == 30
    assert th.retry_after("b") is None  # per client
    clock.t = 1059.5
    assert th.retry_after("a") == 1
    clock.t = 1060.0
    assert th.retry_after("a") is None  # two failures left in the window
    th.failed("a")
    assert th.retry_after("a") == 10  # now the one at 1010 must leave (1070)


def test_success_clears_and_memory_is_bounded():
    clock = Clock()
    th = FailedLoginThrottle(2, 60, max_clients=10, monotonic=clock)
    th.failed("a")
    th.failed("a")
    assert th.retry_after("a") is not None
    th.succeeded("a")
    assert th.retry_after("a") is None
    for i in range(50):
        th.failed(f"c{i}")
    assert len(th._failures) <= 10


def test_rejects_nonsense_limits():
    with pytest.raises(ValueError):
        FailedLoginThrottle(0, 60)
    with pytest.raises(ValueError):
        FailedLoginThrottle(3, 0)
