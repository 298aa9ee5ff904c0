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


def test_threads_carry_their_names_to_the_os_and_their_cpu_is_split_by_name():
    import sys

    from shopfloor.runtime import name_os_thread, os_thread_cpu_s

    if not sys.platform.startswith("linux"):
        pytest.skip("OS thread names are read from /proc")
    done = threading.Event()

    def spin() -> None:
        name_os_thread()
        end = time.process_time() + 0.3
        while time.process_time() < end:
            pass
        done.wait(5)

    t = threading.Thread(target=spin, name="sf-test-spinner_3")
    t.start()
    time.sleep(0.5)
    split = os_thread_cpu_s(os.getpid())
    done.set()
    t.join()
    assert "sf-test-spinner" in split  # the trailing number is dropped, so a pool's threads add up
    assert split["sf-test-spinner"] > 0.05
    assert "main (event loop)" in split
