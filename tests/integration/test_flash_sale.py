"""Guarantee 1: a flash sale never oversells, raced by several client processes against a real server."""

from __future__ import annotations

import multiprocessing as mp
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.server import ServerProcess
from tests.support.store import check_invariants, engine_for, new_key, seed

pytestmark = pytest.mark.slow

BUYERS = 2000
UNITS = 200
CLIENT_PROCESSES = 4


def _buy_many(args):
    url, key, n = args
    body = {"lines": [{"sku": "HOT", "qty": 1}], "ship_to": {"country": "US", "postal_code": "94107"},
            "payment": {"token": "tok_ok"}}

    def one(_):
        with_key = {"Authorization": f"Bearer {key}", "Idempotency-Key": uuid.uuid4().hex}
        for _attempt in range(5):
            try:
                r = client.post(url + "/v1/checkouts", json=body, headers=with_key, timeout=60)
            except httpx.TransportError:
                continue  # same key: a retry can never create a second order
            return r.status_code, r.json()
        return 0, {}

    with httpx.Client(limits=httpx.Limits(max_connections=32)) as client, ThreadPoolExecutor(24) as pool:
        return list(pool.map(one, range(n)))


def test_flash_sale_never_oversells(db_url, tmp_path):
    engine = engine_for(db_url)
    seed(engine, {"w1": ("us-west", "US", ["9"]), "w2": ("us-east", "US", ["0"])}, {"HOT": 999},
         {("HOT", "w1"): 120, ("HOT", "w2"): 80})
    _, key = new_key(engine, "storefront")
    server = ServerProcess(db_url, workers=2, log_path=tmp_path / "server.log").start()
    try:
        ctx = mp.get_context("spawn")
        with ctx.Pool(CLIENT_PROCESSES) as pool:
            chunks = pool.map(_buy_many, [(server.url, key, BUYERS // CLIENT_PROCESSES)] * CLIENT_PROCESSES)
    finally:
        server.stop()
    results = [r for chunk in chunks for r in chunk]
    created = [b for s, b in results if s == 201]
    refused = [b for s, b in results if s == 409]
    assert len(results) == BUYERS
    assert len(created) == UNITS
    assert len(refused) == BUYERS - UNITS
    assert all(b["error"]["code"] == "out_of_stock" for b in refused)
    assert len({b["order_id"] for b in created}) == UNITS
    summary = check_invariants(engine, {("HOT", "w1"): 120, ("HOT", "w2"): 80})
    assert summary["rows"][("HOT", "w1")] == (120, 120) and summary["rows"][("HOT", "w2")] == (80, 80)
    engine.dispose()
