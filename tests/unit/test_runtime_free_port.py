"""free_port: two children constructed before either binds get different ports, never one something listens on, and
by default none from the kernel's ephemeral range (where client sockets could take it first)."""

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


def test_by_default_a_port_comes_from_below_the_kernels_ephemeral_range(monkeypatch):
    # Outgoing connections draw their local ports from the ephemeral range: a port picked there can be taken by
    # some client socket before the child binds it.
    monkeypatch.delenv("SHOPFLOOR_FREE_PORTS", raising=False)
    monkeypatch.setattr(runtime, "_HANDED_OUT", set())
    ports = {runtime.free_port() for _ in range(30)}
    assert len(ports) == 30  # none handed out twice before it is bound
    assert all(runtime._PICK_LOW <= p < runtime._ephemeral_low() for p in ports)


def test_a_port_something_listens_on_is_not_handed_out(monkeypatch):
    monkeypatch.delenv("SHOPFLOOR_FREE_PORTS", raising=False)
    monkeypatch.setattr(runtime, "_PICK_LOW", 31000)
    monkeypatch.setattr(runtime, "_ephemeral_low", lambda: 31000 + 257)
    taken = []
    try:
        for port in range(31000, 31000 + 250):  # all but a few of the range listen
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
                s.listen()
            except OSError:
                s.close()
                continue
            taken.append(s)
        busy = {s.getsockname()[1] for s in taken}
        monkeypatch.setattr(runtime, "_HANDED_OUT", set())
        assert runtime.free_port() not in busy
    finally:
        for s in taken:
            s.close()
