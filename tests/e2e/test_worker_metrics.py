"""What the worker does shows in Prometheus: on its own metrics port, and on the API's /metrics when both share a
multiprocess folder (as the demo runs them)."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from shopfloor.runtime import ServerProcess, WorkerProcess, free_port
from shopfloor.store.engine import make_engine
from shopfloor.store.migrate import upgrade_database
from tests.support.store import new_key, seed

pytestmark = pytest.mark.slow

BODY = {"lines": [{"sku": "A1", "qty": 1}], "ship_to": {"country": "US", "postal_code": "94107"},
        "payment": {"token": "tok_ok"}}


def sample(text: str, name: str) -> float:
    """The sum of a metric's samples in Prometheus text (0 when absent)."""
    return sum(float(m) for m in re.findall(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, flags=re.M))


def test_order_confirmations_and_handoffs_done_by_the_worker_are_counted_where_prometheus_looks(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'shop.db'}"
    upgrade_database(db_url)
    engine = make_engine(db_url)
    seed(engine, {"w1": ("us-west", "US", ["9"])}, {"A1": 1299}, {("A1", "w1"): 50})
    _, shop = new_key(engine, "storefront")
    engine.dispose()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    worker_port = free_port()
    env = {"SHOPFLOOR_DATA_DIR": str(tmp_path / "var"), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
           "SHOPFLOOR_WORKER_METRICS_PORT": str(worker_port)}
    server = ServerProcess(db_url, env=env, log_path=tmp_path / "server.log").start()
    worker = WorkerProcess(db_url, env=env, log_path=tmp_path / "worker.log").start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for i in range(3):
                r = client.post("/v1/checkouts", json=BODY,
                                headers={"Authorization": f"Bearer {shop}", "Idempotency-Key": f"m{i}"})
                assert r.status_code == 201, r.text
            deadline = time.monotonic() + 60
            api = worker_side = ""
            while time.monotonic() < deadline:
                api = client.get("/metrics").text
                try:
                    worker_side = httpx.get(f"http://127.0.0.1:{worker_port}/metrics", timeout=5).text
                except httpx.TransportError:
                    worker_side = ""
                if (sample(api, "shopfloor_order_confirmation_seconds_count") >= 3
                        and sample(api, "shopfloor_warehouse_handoffs_total") >= 3):
                    break
                time.sleep(0.5)
        assert sample(api, "shopfloor_order_confirmation_seconds_count") == 3, api[-3000:]
        assert sample(api, "shopfloor_warehouse_handoffs_total") == 3
        assert sample(worker_side, "shopfloor_order_confirmation_seconds_count") == 3, worker_side[-2000:]
        assert sample(worker_side, "shopfloor_checkout_attempts_total") >= 3  # one folder: the server's too
    finally:
        worker.stop()
        server.stop()
