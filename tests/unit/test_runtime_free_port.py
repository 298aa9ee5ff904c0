"""free_port within SHOPFLOOR_FREE_PORTS: two children constructed before either binds get different ports."""

from __future__ import annotations

import socket

from shopfloor import runtime


def test_ports_handed_out_in_a_range_are_not_handed_out_again_before_they_are_bound(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        base = s.getsockname()[1]
    # A range of the kernel's free ports (some may be taken meanwhile; free_port skips those).
    low, high = max(1024, base - 20), min(65535, base + 20)
    monkeypatch.setenv("SHOPFLOOR_FREE_PORTS", f"{low}-{high}")
    monkeypatch.setattr(runtime, "_HANDED_OUT", set())
    first, second = runtime.free_port(), runtime.free_port()  # neither bound yet
    assert first != second and low <= first <= high and low <= second <= high
