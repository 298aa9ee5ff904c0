"""Commands that run child processes (demo, benchmarks) treat SIGTERM and SIGHUP like Ctrl-C, so their cleanup runs."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from shopfloor.runtime import interrupt_on_termination

pytestmark = pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                                reason="signal handlers can only be installed from the main thread")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_termination_runs_the_cleanup_and_the_old_handler_comes_back(sig):
    before = signal.getsignal(sig)
    cleaned = []
    restore = interrupt_on_termination()
    try:
        with pytest.raises(KeyboardInterrupt):
            try:
                os.kill(os.getpid(), sig)
                time.sleep(5)  # the handler interrupts this at once; without it the signal would end pytest
            finally:
                cleaned.append(sig)
    finally:
        restore()
    assert cleaned == [sig]
    assert signal.getsignal(sig) == before


def test_off_the_main_thread_it_changes_nothing():
    before = signal.getsignal(signal.SIGTERM)
    result = []
    t = threading.Thread(target=lambda: result.append(interrupt_on_termination()))
    t.start()
    t.join()
    result[0]()
    assert signal.getsignal(signal.SIGTERM) == before
