"""The queue stores keep one contract: the in-process store and Redis give the same answers, and Redis admits no
more than the room while several processes race it."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import uuid

from shopfloor.waitroom import ADMITTED, CLAIMED, EXPIRED, UNUSED, WAITING, InProcessQueueStore
from tests.support.redis import REDIS_URL, needs_redis


def _redis_store(prefix: str):
    import redis.asyncio as aioredis

    from shopfloor.store.queue_redis import RedisQueueStore

    return RedisQueueStore(aioredis.Redis.from_url(REDIS_URL), prefix=prefix)


async def _script(store) -> list:
    """One sale's story; every answer is recorded."""
    out = []
    sale = "HOT@100"
    for i in range(3):  # before the opening (opens at 100 s)
        out.append(await store.enter(sale, 50_000 + i, 100_000, 4, 5_000, 1234, f"pre{i}"))
    out.append(await store.opening(sale, 60_000, 100_000, 99))
    for i in range(6):  # after: 3 pre-open + 6 = 9 arrivals, room 4
        out.append(await store.enter(sale, 100_000 + i, 100_000, 4, 5_000, 777, f"post{i}"))
    out.append(await store.opening(sale, 100_010, 100_000, 555))  # the seed is fixed at the opening
    out.append(await store.poll(sale, 0, 100_020, 4, 5_000, "pre-a"))  # admitted, claims the place
    out.append(await store.poll(sale, 0, 100_021, 4, 5_000, "pre-b"))  # claimed by another purchase
    out.append(await store.poll(sale, 5, 100_022, 4, 5_000, None))  # waiting
    await store.finish(sale, 0, True)
    await store.finish(sale, 1, False)
    out.append(await store.poll(sale, 5, 100_030, 4, 5_000, "x"))  # two freed places: ranks 4 and 5 in
    out.append(await store.poll(sale, 1, 100_031, 4, 5_000, "y"))  # gave its place up
    out.append(await store.poll(sale, 0, 100_032, 4, 5_000, "pre-a"))  # replay of a used place
    out.append(await store.poll(sale, 6, 106_000, 4, 5_000, None))  # ranks 2, 3, 4, 5 lapsed: 6..8 in
    out.append(await store.stats(sale, 106_000))
    return out


def _assert_story(out: list) -> None:
    assert [e.phase for e in out[:3]] == ["p", "p", "p"] and [e.number for e in out[:3]] == [0, 1, 2]
    assert out[3] == (None, 3)
    posts = out[4:10]
    assert [e.number for e in posts] == list(range(6))
    assert all(e.opening.pre_open_count == 3 and e.opening.seed == 777 for e in posts)
    # ranks 0-2 are the pre-open arrivals; the room of 4 reaches the first arrival after the opening
    assert [e.admitted for e in posts] == [True] + [False] * 5
    assert posts[-1].upto == 4
    assert out[10][0].seed == 777
    assert [p.state for p in out[11:14]] == [ADMITTED, CLAIMED, WAITING]
    assert (out[14].state, out[14].upto) == (ADMITTED, 6)
    assert [out[15].state, out[16].state] == [EXPIRED, ADMITTED]
    assert (out[17].state, out[17].upto) == (ADMITTED, 9)
    assert out[18] == {"arrivals": 9, "admitted": 9, "in_flight": 3}


def test_the_in_process_store_tells_the_story():
    _assert_story(asyncio.run(_script(InProcessQueueStore())))


@needs_redis
def test_the_redis_store_tells_the_same_story():
    async def go():
        store = _redis_store(f"test-{uuid.uuid4().hex}:")
        try:
            return await _script(store)
        finally:
            await store.reset("HOT@100")
            await store.aclose()

    _assert_story(asyncio.run(go()))


async def _sold_out_reads(store) -> list[str]:
    """Once the product sells out, reads that must not take an admitted place (take=False)."""
    sale = "SOLD"
    await store.enter(sale, 1_000, 0, 1, 60_000, 1, "a")  # rank 0: admitted at once, used by purchase "a"
    await store.enter(sale, 1_001, 0, 1, 60_000, 1, "b")  # rank 1: waits for the room
    await store.finish(sale, 0, True)  # "a" bought: rank 1 is admitted at the next read, unused
    out = [(await store.poll(sale, 1, 1_002, 1, 60_000, "b", take=False)).state]  # left alone
    out.append((await store.poll(sale, 1, 1_003, 1, 60_000, "b", take=False)).state)  # still nobody's
    out.append((await store.poll(sale, 1, 1_004, 1, 60_000, "b")).state)  # taken by purchase "b"
    out.append((await store.poll(sale, 1, 1_005, 1, 60_000, "b", take=False)).state)  # "b" under way: goes on
    out.append((await store.poll(sale, 1, 1_006, 1, 60_000, "c", take=False)).state)  # another purchase
    out.append((await store.poll(sale, 0, 1_007, 1, 60_000, "a", take=False)).state)  # "a" replays
    return out


SOLD_OUT_READS = [UNUSED, UNUSED, ADMITTED, ADMITTED, CLAIMED, ADMITTED]


def test_a_read_that_must_not_take_a_place_leaves_an_unused_admitted_place_alone():
    assert asyncio.run(_sold_out_reads(InProcessQueueStore())) == SOLD_OUT_READS


@needs_redis
def test_the_redis_store_leaves_an_unused_admitted_place_alone_too():
    async def go():
        store = _redis_store(f"test-{uuid.uuid4().hex}:")
        try:
            return await _sold_out_reads(store)
        finally:
            await store.reset("SOLD")
            await store.aclose()

    assert asyncio.run(go()) == SOLD_OUT_READS


def _race(args):
    prefix, n, room = args

    async def go():
        store = _redis_store(prefix)
        try:
            entries = await asyncio.gather(*(store.enter("RACE", 1_000, 0, room, 60_000, 1, f"{os.getpid()}-{i}")
                                             for i in range(n)))
            polls = await asyncio.gather(*(store.poll("RACE", r, 1_001, room, 60_000, f"p{os.getpid()}-{r}")
                                           for r in range(0, 4 * n, 7)))
            return [(e.number, e.admitted) for e in entries], [p.state for p in polls]
        finally:
            await store.aclose()

    return asyncio.run(go())


@needs_redis
def test_concurrent_admission_across_processes_never_admits_more_than_the_room():
    prefix, n, room, procs = f"test-{uuid.uuid4().hex}:", 150, 37, 4
    with mp.get_context("spawn").Pool(procs) as pool:
        results = pool.map(_race, [(prefix, n, room)] * procs)
    numbers = [num for entries, _ in results for num, _ in entries]
    admitted = [num for entries, _ in results for num, ok in entries if ok]
    assert sorted(numbers) == list(range(n * procs))  # every arrival numbered once
    assert sorted(admitted) == list(range(room))  # exactly the room, and the first in line

    async def stats():
        store = _redis_store(prefix)
        try:
            return await store.stats("RACE", 1_002)
        finally:
            await store.reset("RACE")
            await store.aclose()

    assert asyncio.run(stats()) == {"arrivals": n * procs, "admitted": room, "in_flight": room}
