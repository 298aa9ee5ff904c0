"""The worker's rules file is input too: a broken one is reported (file, rule, field) and never stops deliveries,
and an edit takes effect without a restart."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from shopfloor.bootstrap import build_container
from shopfloor.config import Settings
from shopfloor.domain.stock import OrderLineRequest
from shopfloor.orders import PlaceOrder, outbox_status, request_fingerprint
from shopfloor.runtime import WorkerProcess
from shopfloor.store.migrate import upgrade_database
from tests.support.store import new_key, seed

pytestmark = pytest.mark.slow


def _wait_for(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _words(log) -> str:
    """The log with the console's line wrapping undone."""
    return " ".join(log.read_text(errors="replace").split())


def test_a_broken_rules_file_is_reported_and_the_worker_keeps_delivering(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'shop.db'}"
    upgrade_database(db_url)
    container = build_container(Settings(database_url=db_url, data_dir=tmp_path))
    seed(container.engine, {"w1": ("us-west", "US", ["9"])}, {"A1": 999}, {("A1", "w1"): 100})
    key_id, _ = new_key(container.engine, "storefront")

    async def place():
        cmds = [PlaceOrder(key_id, uuid.uuid4().hex, request_fingerprint({"i": i}), (OrderLineRequest("A1", 1),),
                           "US", "94107", {"token": f"tok_{i}"}, {}) for i in range(5)]
        return [await container.services["buy_path"].checkout(c) for c in cmds]

    assert all(r.status_code == 201 for r in asyncio.run(place()))
    assert outbox_status(container.engine)["pending"] > 0
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: watch\n    when: trafic_rpm > 3\n    actions: [{type: alert}]\n")
    log = tmp_path / "worker.log"
    env = {"SHOPFLOOR_DATA_DIR": str(tmp_path), "SHOPFLOOR_TOWER_RULES_FILE": str(rules),
           "SHOPFLOOR_TOWER_RULES_INTERVAL_S": "0.2"}
    worker = WorkerProcess(db_url, env=env, log_path=log).start()
    try:
        _wait_for(lambda: outbox_status(container.engine)["pending"] == 0, 60, "the outbox to drain")
        text = log.read_text(errors="replace")
        assert worker.proc.poll() is None, text  # still running
        assert "Traceback" not in text
        assert f"{rules}: rule 'watch'.when: unknown signal 'trafic_rpm'" in _words(log), text
        rules.write_text("rules:\n  - name: watch\n    when: traffic_rpm > 3\n    actions: [{type: alert}]\n")
        _wait_for(lambda: "loaded 1 rule(s)" in _words(log), 30, "the edited file to load")
        time.sleep(1.0)  # a few more ticks with the new rules in force
        assert worker.proc.poll() is None
        assert "tower tick failed" not in _words(log), _words(log)
    finally:
        worker.stop()
        container.close()
