"""Rate limits and the waiting room shared through Redis: several server processes enforce one limit and one
queue, and a token one process issued is honoured by another."""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import time
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from tests.support.redis import REDIS_URL, forget_prefix, needs_redis
from tests.support.server import ServerProcess
from tests.support.store import engine_for, new_key, seed

pytestmark = needs_redis


def _redis_buckets(prefix):
    import redis.asyncio as aioredis

    from shopfloor.store.ratelimit_redis import RedisBuckets

    return RedisBuckets(aioredis.Redis.from_url(REDIS_URL), prefix=prefix)


def _take_many(args):
    prefix, n = args

    async def go():
        buckets = _redis_buckets(prefix)
        try:
            return [await buckets.take([("rl:shared", 0.001, 25)]) for _ in range(n)]
        finally:
            await buckets.aclose()

    return sum(r is None for r in asyncio.run(go()))


def test_a_redis_bucket_hands_out_its_burst_once_across_processes():
    prefix = f"test-{uuid.uuid4().hex}:"
    with mp.get_context("spawn").Pool(4) as pool:
        granted = pool.map(_take_many, [(prefix, 20)] * 4)
    forget_prefix(prefix)
    assert sum(granted) == 25


def test_the_redis_bucket_refuses_all_or_nothing_and_refills():
    async def go():
        buckets = _redis_buckets(f"test-{uuid.uuid4().hex}:")
        try:
            assert await buckets.take([("a", 1000.0, 1)]) is None
            first = await buckets.take([("c", 0.5, 1)])
            second = await buckets.take([("d", 0.5, 1), ("c", 0.5, 1)])
            third = await buckets.take([("d", 0.5, 1)])  # d kept its token: the refusal spent nothing
            return first, second, third
        finally:
            await buckets.aclose()

    first, second, third = asyncio.run(go())
    assert first is None and third is None
    assert second[0] == 1 and 1.9 < second[1] <= 2.0


def _body(sku):
    return {"lines": [{"sku": sku, "qty": 1}], "ship_to": {"country": "US", "postal_code": "94107"},
            "payment": {"token": "tok_ok"}}


@pytest.fixture
def two_servers(db_url, tmp_path):
    engine = engine_for(db_url)
    seed(engine, {"w1": ("us-west", "US", ["9"])}, {"A1": 1299, "HOT": 999}, {("A1", "w1"): 500, ("HOT", "w1"): 3})
    _, key = new_key(engine, "storefront")
    # the sale opens after both servers are up: starting two servers takes more than 15 s on a loaded machine
    opens_at = datetime.now(timezone.utc) + timedelta(seconds=40)
    prefix = f"test-{uuid.uuid4().hex}:"
    env = {
        "SHOPFLOOR_REDIS_URL": REDIS_URL,
        "SHOPFLOOR_REDIS_KEY_PREFIX": prefix,
        "SHOPFLOOR_RATELIMIT_CHECKOUT_PER_KEY": json.dumps({"rate_per_s": 0.001, "burst": 12}),
        "SHOPFLOOR_RATELIMIT_READS_PER_ADDRESS": json.dumps({"rate_per_s": 0.001, "burst": 5}),
        "SHOPFLOOR_WAITROOM_PRODUCTS": json.dumps({"HOT": {"opens_at": opens_at.isoformat()}}),
        "SHOPFLOOR_WAITROOM_SECRET": "a-shared-secret-of-32-bytes-long",
        "SHOPFLOOR_WAITROOM_UNITS_FACTOR": "1",
        "SHOPFLOOR_WAITROOM_STOCK_CACHE_S": "0",
    }
    servers = [ServerProcess(db_url, env=env, log_path=tmp_path / f"server{i}.log") for i in range(2)]
    try:
        for s in servers:
            s.start()
        yield servers, key, opens_at
    finally:
        for s in servers:
            s.stop()
        forget_prefix(prefix)


def test_two_server_processes_share_one_checkout_limit_per_key(two_servers):
    servers, key, _ = two_servers
    statuses = []
    with httpx.Client(timeout=30) as client:
        for i in range(30):
            r = client.post(servers[i % 2].url + "/v1/checkouts", json=_body("A1"),
                            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": f"k{i}"})
            statuses.append(r.status_code)
            if r.status_code == 429:
                err = r.json()["error"]
                assert err["code"] == "too_many_requests" and err["details"][0]["limit"] == "checkout_per_key"
                assert int(r.headers["Retry-After"]) >= 1
    assert statuses.count(201) == 12 and statuses.count(429) == 18  # not 12 per process
    reads = [httpx.get(servers[i % 2].url + "/v1/stock/A1").status_code for i in range(10)]
    assert reads.count(429) == 5


def test_a_queue_token_from_one_process_keeps_its_place_at_the_other(two_servers):
    servers, key, opens_at = two_servers
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(timeout=30) as client:
        early = [client.post(servers[i % 2].url + "/v1/checkouts", json=_body("HOT"),
                             headers={**auth, "Idempotency-Key": f"h{i}"}) for i in range(6)]
        assert [r.json()["error"]["code"] for r in early] == ["queued"] * 6
        assert [r.json()["error"]["details"][0]["position"] for r in early] == [1, 2, 3, 4, 5, 6]  # one line
        tokens = [r.json()["error"]["details"][0]["queue_token"] for r in early]
        time.sleep(max(0.0, (opens_at - datetime.now(timezone.utc)).total_seconds()) + 0.2)
        # each shopper comes back at the *other* process
        answers = [client.post(servers[(i + 1) % 2].url + "/v1/checkouts", json=_body("HOT"),
                               headers={**auth, "Idempotency-Key": f"h{i}", "Queue-Token": tokens[i]})
                   for i in range(6)]
        codes = [r.status_code for r in answers]
        # 3 units, k = 1: the three best placed buy; the others are still queued, or told sold_out when their turn
        # came after the third sale (the order of places is the opening's shuffle)
        assert codes.count(201) == 3, [r.text for r in answers]
        assert all(r.json()["error"]["code"] in ("queued", "sold_out") for r in answers if r.status_code != 201)
        states = [client.get(servers[i % 2].url + f"/v1/queue/{tokens[i]}").json()["state"]
                  for i in range(6) if codes[i] != 201]
    assert states == ["sold_out"] * 3
