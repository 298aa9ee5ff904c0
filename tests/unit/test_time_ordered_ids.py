"""Order and event ids are time-ordered (creation millisecond first, then 80 random bits)."""

import re
import time

from shopfloor.store.orders_repo import new_id


def test_ids_keep_the_uuid4_hex_shape():
    for prefix in ("ord", "evt"):
        assert re.fullmatch(rf"{prefix}_[0-9a-f]{{32}}", new_id(prefix))


def test_ids_made_later_sort_later_and_start_with_the_millisecond():
    before = time.time_ns() // 1_000_000
    first = new_id("ord")
    time.sleep(0.003)
    second = new_id("ord")
    after = time.time_ns() // 1_000_000
    assert first < second
    assert before <= int(first[4:16], 16) <= int(second[4:16], 16) <= after


def test_ids_in_one_millisecond_differ_in_their_random_part():
    ids = [new_id("ord") for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert len({i[16:] for i in ids}) == len(ids)
