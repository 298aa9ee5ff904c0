"""Shared settings read on the server's event loop (the processor order, asked on every authorization) never wait
on the database once read: a stale copy is answered while a background thread reads the fresh one. And the
checkout's payment attempt keys are unique without a system call each."""

from __future__ import annotations

import os
import re
import time

from shopfloor.domain.clock import SystemClock
from shopfloor.orders.runtime_config import SharedJsonStore
from shopfloor.orders.service import _AttemptKeys
from shopfloor.store.engine import make_engine
from shopfloor.store.payments_tables import payments_runtime


class Ticker:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_a_stale_setting_is_answered_at_once_and_refreshed_in_the_background(db_url):
    engine = make_engine(db_url)
    tick = Ticker()
    writer = SharedJsonStore(engine, payments_runtime, key_column="key", value_column="value", clock=SystemClock())
    reader = SharedJsonStore(engine, payments_runtime, key_column="key", value_column="value", clock=SystemClock(),
                             ttl_s=0.5, monotonic=tick)
    try:
        writer.put("processor_order", ["primary", "secondary"])
        assert reader.get_nowait("processor_order") == ["primary", "secondary"]  # the first read waits for it
        writer.put("processor_order", ["secondary", "primary"])
        assert reader.get_nowait("processor_order") == ["primary", "secondary"]  # within its ttl: cached
        tick.t += 1.0
        assert reader.get_nowait("processor_order") == ["primary", "secondary"]  # stale: answered, refreshing
        deadline = time.monotonic() + 5
        while reader.get_nowait("processor_order") != ["secondary", "primary"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert reader.get_nowait("processor_order") == ["secondary", "primary"]
        assert reader.get("processor_order") == ["secondary", "primary"]
    finally:
        engine.dispose()


def test_checkout_attempt_keys_are_unique_and_keep_their_shape():
    keys = _AttemptKeys()
    drawn = {keys.next() for _ in range(10_000)}
    assert len(drawn) == 10_000
    assert all(re.fullmatch(r"pay_[0-9a-f]{32}", k) for k in drawn)
    other_process = _AttemptKeys()
    other_process._pid = os.getpid() + 1  # as if forked: a new random prefix is drawn and the count restarts
    first = other_process.next()
    assert first[4:20] != keys.next()[4:20] and first.endswith("0" * 16)


def test_with_no_ttl_every_read_sees_the_latest_write_at_once(db_url):
    engine = make_engine(db_url)
    a = SharedJsonStore(engine, payments_runtime, key_column="key", value_column="value", clock=SystemClock(), ttl_s=0)
    b = SharedJsonStore(engine, payments_runtime, key_column="key", value_column="value", clock=SystemClock(), ttl_s=0)
    try:
        a.put("processor_order", ["primary", "secondary"])
        assert b.get_nowait("processor_order") == ["primary", "secondary"]
        a.put("processor_order", ["secondary", "primary"])
        assert b.get_nowait("processor_order") == ["secondary", "primary"]
    finally:
        engine.dispose()
