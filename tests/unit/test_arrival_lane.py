"""The line for a crowd's new arrivals: at most ``per_turn`` go on per event-loop turn, first come first served,
and a multi-step request never waits behind more than that many of them per step."""

from __future__ import annotations

import asyncio

import pytest

from shopfloor.api.crowd_front import ArrivalLane


def test_arrivals_go_on_in_order_at_most_per_turn_while_other_work_keeps_its_pace():
    events: list[str] = []

    async def arrival(lane, i):
        await lane.enter()
        events.append(f"a{i}")

    async def buyer():  # an admitted or ordinary checkout: several steps, each one loop turn
        for step in range(4):
            events.append(f"b{step}")
            await asyncio.sleep(0)

    async def scene():
        lane = ArrivalLane(per_turn=2)
        tasks = [asyncio.create_task(arrival(lane, i)) for i in range(10)]
        tasks.append(asyncio.create_task(buyer()))
        await asyncio.gather(*tasks)
        return lane

    lane = asyncio.run(scene())
    arrivals = [e for e in events if e.startswith("a")]
    assert arrivals == [f"a{i}" for i in range(10)]  # first come, first served
    assert lane.waited == 8  # two went on at once, the rest waited in line
    # between two steps of the buyer, at most per_turn arrivals went on
    steps = [i for i, e in enumerate(events) if e.startswith("b")]
    assert len(steps) == 4
    for before, after in zip(steps, steps[1:]):
        assert after - before - 1 <= 2
    assert steps[-1] < len(events) - 1  # the buyer finished before the line had drained


def test_without_a_crowd_an_arrival_goes_on_at_once():
    async def scene():
        lane = ArrivalLane(per_turn=4)
        for _ in range(3):
            await lane.enter()
            await asyncio.sleep(0)
        return lane.waited

    assert asyncio.run(scene()) == 0


def test_a_line_needs_room_for_one():
    with pytest.raises(ValueError):
        ArrivalLane(per_turn=0)


def test_a_deferred_request_whose_client_left_gives_its_place_in_the_turn_to_the_next_one():
    served_by_turn: list[list[int]] = []

    async def scene():
        lane = ArrivalLane(per_turn=2)
        turn: list[int] = []

        def request(i: int, left: bool):
            def serve() -> bool:
                if left:
                    return False  # the client went away while it waited: nothing written
                turn.append(i)
                return True
            return serve

        # four arrivals in one turn fill it (two go on at once); of the six that wait, 2 and 3 have left
        for i in range(8):
            lane.defer(request(i, left=i in (2, 3)))
        while lane.waiting or turn:
            served_by_turn.append(turn[:])
            turn.clear()
            await asyncio.sleep(0)
        return lane

    lane = asyncio.run(scene())
    served = [i for t in served_by_turn for i in t]
    assert served == [0, 1, 4, 5, 6, 7]  # in order, the two that left skipped
    assert served_by_turn == [[0, 1], [4, 5], [6, 7]]  # every turn let on two who were there, none went empty
    assert lane.waited == 6
