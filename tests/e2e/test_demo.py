"""The demo is the README's first command: it must run end to end and tell the truth in its summary."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shopfloor.runtime import child_env, free_port

pytestmark = pytest.mark.slow


def test_demo_once_runs_a_flash_sale_without_overselling(tmp_path):
    port = free_port()
    out = subprocess.run(
        [sys.executable, "-m", "shopfloor", "demo", "--once", "--port", str(port), "--shoppers", "60",
         "--workdir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=600, env=child_env("sqlite:///unused.db"),
    )
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    assert "flash sale sold / refused" in text
    assert "50 / 250" in text  # exactly the 50 units sold, every other buyer refused
    assert "/docs" not in text and "/v1/orders/" not in text  # --once: the server has stopped, nothing to try
    said = " ".join(text.split())
    assert f"kept in {tmp_path / 'demo'}/" in said and "shopfloor serve" in said
    keys = (tmp_path / "demo" / "keys.env").read_text()  # what the README's examples source
    assert "export ADMIN=" in keys and "export SHOP=" in keys
    import sqlite3

    with sqlite3.connect(tmp_path / "demo" / "shopfloor.db") as db:
        shipped = dict(db.execute(
            "select o.status, count(*) from fulfillment_events f join orders o on o.id = f.order_id "
            "where f.type = 'handed_to_carrier' group by o.status").fetchall())
    # the simulated warehouses ship only what the store handed them (never an order held by fraud screening)
    assert shipped and set(shipped) <= {"handed_off", "shipped", "delivered"}, shipped
    assert list((tmp_path / "demo" / "maildir" / "new").iterdir())  # the README says the demo keeps its mail


def test_a_terminated_demo_stops_its_server_and_worker(tmp_path):
    import os
    import signal
    import time

    import httpx
    import psutil

    port = free_port()
    log = tmp_path / "demo.log"
    children: list = []
    with open(log, "w") as out:
        demo = subprocess.Popen(
            [sys.executable, "-m", "shopfloor", "demo", "--port", str(port), "--shoppers", "20",
             "--workdir", str(tmp_path / "demo")],
            stdout=out, stderr=subprocess.STDOUT, env=child_env("sqlite:///unused.db"), start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while "Ctrl-C to stop" not in log.read_text() and time.monotonic() < deadline:
            assert demo.poll() is None, log.read_text()[-2000:]
            time.sleep(0.5)
        children[:] = psutil.Process(demo.pid).children(recursive=True)
        assert children, "the demo runs its server and worker as child processes"
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        said = " ".join(log.read_text().split())
        assert f"http://127.0.0.1:{port}/docs" in said and "source" in said and "keys.env" in said
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text  # the worker's confirmations show here too
        confirmed = [line for line in metrics.splitlines()
                     if line.startswith("shopfloor_order_confirmation_seconds_count")]
        assert confirmed and sum(float(line.split()[-1]) for line in confirmed) > 0, confirmed
        os.kill(demo.pid, signal.SIGTERM)  # the demo process alone, as `kill PID` or a supervisor would
        demo.wait(60)
        gone, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, [p.cmdline() for p in alive]
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        assert "demo stopped; its store, logs, mail and keys are kept in" in " ".join(log.read_text().split())
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
        for child in children:  # they run in their own sessions: never leave them behind, pass or fail
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
