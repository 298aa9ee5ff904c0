"""The waiting room over the in-process queue: admission by remaining stock, FIFO, sold-out notice, claims."""

from __future__ import annotations

import asyncio

import pytest

from shopfloor.waitroom import (
    ADMITTED,
    SOLD_OUT,
    WAITING,
    AdmissionPolicy,
    GuardedProduct,
    InProcessQueueStore,
    QueueTokenCodec,
    QueueTokenExpired,
    QueueTokenUsed,
    QueueTokenWrongProduct,
    WaitingRoom,
    admit_upto,
)


class Stock:
    def __init__(self, units: int) -> None:
        self.units = units

    def available(self, sku: str) -> int:
        return self.units


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _room(units=5, k=2.0, opens_at=None, clock=None, admit_ttl_s=30.0):
    clock = clock or Clock()
    stock = Stock(units)
    room = WaitingRoom(InProcessQueueStore(), QueueTokenCodec(b"k" * 32, 600),
                       AdmissionPolicy(units_factor=k, admit_ttl_s=admit_ttl_s, serve_rate_per_s=10),
                       stock, [GuardedProduct("HOT", opens_at)], stock_cache_s=0.0, now_s=clock, monotonic=clock)
    return room, stock, clock


def run(coro):
    return asyncio.run(coro)


def test_admission_bound_moves_forward_by_the_free_room_only():
    assert admit_upto(0, arrivals=100, in_flight=0, room=10) == 10
    assert admit_upto(10, arrivals=100, in_flight=10, room=10) == 10
    assert admit_upto(10, arrivals=100, in_flight=4, room=10) == 16
    assert admit_upto(10, arrivals=12, in_flight=0, room=10) == 12


def test_no_more_shoppers_are_admitted_than_k_times_the_remaining_units():
    room, _, _ = _room(units=5, k=2.0)

    async def crowd():
        return [await room.admit("HOT", None, f"key{i}") for i in range(50)]

    decisions = run(crowd())
    assert sum(d.state == ADMITTED for d in decisions) == 10
    waiting = [d for d in decisions if d.state == WAITING]
    assert [d.position for d in waiting[:3]] == [1, 2, 3]  # first come, first in line
    assert all(d.token for d in waiting)


def test_a_cap_on_admitted_shoppers_paces_the_opening_and_lets_the_next_in_as_each_purchase_ends():
    assert AdmissionPolicy(units_factor=2.0, max_in_flight=8).room_for(200) == 8
    assert AdmissionPolicy(units_factor=2.0, max_in_flight=8).room_for(3) == 6  # k x units when that is less
    assert AdmissionPolicy(units_factor=2.0).room_for(200) == 400
    with pytest.raises(ValueError):
        AdmissionPolicy(max_in_flight=0)
    clock = Clock()
    stock = Stock(200)
    room = WaitingRoom(InProcessQueueStore(), QueueTokenCodec(b"k" * 32, 600),
                       AdmissionPolicy(units_factor=2.0, serve_rate_per_s=10, max_in_flight=3),
                       stock, [GuardedProduct("HOT")], stock_cache_s=0.0, now_s=clock, monotonic=clock)

    async def scene():
        decisions = [await room.admit("HOT", None, f"key{i}") for i in range(6)]
        assert [d.state for d in decisions] == [ADMITTED] * 3 + [WAITING] * 3
        await room.finish(decisions[0], succeeded=True)
        stock.units -= 1
        # one place free: the first in line (not a later one) is admitted, the next still waits
        later = await room.admit("HOT", decisions[5].token, "key5")
        first = await room.admit("HOT", decisions[3].token, "key3")
        second = await room.admit("HOT", decisions[4].token, "key4")
        return later.state, first.state, second.state

    assert run(scene()) == (WAITING, ADMITTED, WAITING)


def test_a_finished_checkout_lets_the_next_in_line_in_and_no_one_jumps_it():
    room, stock, _ = _room(units=1, k=1.0)

    async def scene():
        first = await room.admit("HOT", None, "a")
        second = await room.admit("HOT", None, "b")
        third = await room.admit("HOT", None, "c")
        assert (first.state, second.state, third.state) == (ADMITTED, WAITING, WAITING)
        assert (await room.admit("HOT", third.token, "c")).state == WAITING  # the third cannot jump the second
        await room.finish(first, succeeded=False)  # e.g. payment declined: the unit is still there
        again = await room.admit("HOT", second.token, "b")
        return again

    assert run(scene()).state == ADMITTED


def test_every_waiting_shopper_hears_sold_out_on_the_next_poll():
    room, stock, _ = _room(units=2, k=2.0)

    async def scene():
        decisions = [await room.admit("HOT", None, f"k{i}") for i in range(30)]
        waiting = [d for d in decisions if d.state == WAITING]
        stock.units = 0
        polls = [await room.admit("HOT", d.token, f"k{i}") for i, d in enumerate(waiting)]
        statuses = [await room.status(d.token) for d in waiting]
        late = await room.admit("HOT", None, "late")
        return waiting, polls, statuses, late

    waiting, polls, statuses, late = run(scene())
    assert len(waiting) == 26
    assert {p.state for p in polls} == {SOLD_OUT}
    assert {s["state"] for s in statuses} == {SOLD_OUT}
    assert late.state == SOLD_OUT


def test_an_admitted_place_buys_once_and_its_retries_replay():
    room2, _, _ = _room(units=1, k=1.0)

    async def claims():
        head = await room2.admit("HOT", None, "a")
        second = await room2.admit("HOT", None, "b")
        await room2.finish(head, succeeded=False)
        admitted = await room2.admit("HOT", second.token, "b")
        retry = await room2.admit("HOT", second.token, "b")  # the same purchase retried: passes
        with pytest.raises(QueueTokenUsed):
            await room2.admit("HOT", second.token, "another-purchase")
        await room2.finish(admitted, succeeded=True)
        replay = await room2.admit("HOT", second.token, "b")
        with pytest.raises(QueueTokenUsed):
            await room2.admit("HOT", second.token, "yet-another")
        return admitted, retry, replay

    admitted, retry, replay = run(claims())
    assert (admitted.state, retry.state, replay.state) == (ADMITTED, ADMITTED, ADMITTED)


def test_an_admitted_place_not_used_in_time_goes_to_the_next_shopper():
    clock = Clock()
    room, _, _ = _room(units=1, k=1.0, clock=clock, admit_ttl_s=5)

    async def scene():
        head = await room.admit("HOT", None, "a")
        walked_away = await room.admit("HOT", None, "b")
        patient = await room.admit("HOT", None, "c")
        await room.finish(head, succeeded=False)
        assert (await room.admit("HOT", patient.token, "c")).state == WAITING  # "b" is admitted now, not "c"
        assert (await room.status(walked_away.token))["state"] == ADMITTED
        clock.t += 6  # "b" never came back to check out
        now_in = await room.admit("HOT", patient.token, "c")
        status = await room.status(walked_away.token)
        with pytest.raises(QueueTokenExpired):
            await room.admit("HOT", walked_away.token, "b")
        return now_in, status

    now_in, status = run(scene())
    assert now_in.state == ADMITTED
    assert status["state"] == "expired"


def test_an_expired_token_reads_expired_and_cannot_check_out():
    clock = Clock()
    room, _, _ = _room(units=1, k=1.0, clock=clock)

    async def scene():
        await room.admit("HOT", None, "a")
        waiting = await room.admit("HOT", None, "b")
        clock.t += 601
        status = await room.status(waiting.token)
        with pytest.raises(QueueTokenExpired):
            await room.admit("HOT", waiting.token, "b")
        return status

    assert run(scene()) == {"state": "expired", "position": None, "eta_s": None}


def test_a_token_from_one_product_is_refused_at_another_products_checkout():
    clock = Clock()
    room = WaitingRoom(InProcessQueueStore(), QueueTokenCodec(b"k" * 32, 600), AdmissionPolicy(units_factor=1),
                       Stock(0), [GuardedProduct("HOT"), GuardedProduct("WARM")], stock_cache_s=0, now_s=clock,
                       monotonic=clock)
    token = room.codec.issue("HOT", "q", 0, clock.t)
    with pytest.raises(QueueTokenWrongProduct):
        run(room.admit("WARM", token, "a"))


def test_arrivals_before_the_opening_are_shuffled_once_and_then_served_in_that_order():
    clock = Clock()
    room, _, _ = _room(units=100, k=1.0, clock=clock, opens_at=clock.t + 10)

    async def scene():
        early = [await room.admit("HOT", None, f"e{i}") for i in range(40)]
        clock.t += 11
        late = await room.admit("HOT", None, "late")
        ranks = [(await room.admit("HOT", d.token, f"e{i}")).rank for i, d in enumerate(early)]
        again = [(await room.admit("HOT", d.token, f"e{i}")).rank for i, d in enumerate(early)]
        return early, late, ranks, again

    early, late, ranks, again = run(scene())
    assert all(d.state == WAITING and d.eta_s > 0 for d in early)
    assert sorted(ranks) == list(range(40)) and ranks != list(range(40))  # a permutation, not arrival order
    assert ranks == again  # shuffled once
    assert late.rank == 40  # after everyone who came before the opening


def test_status_reports_position_and_wait_for_a_waiting_shopper():
    room, _, _ = _room(units=1, k=1.0)

    async def scene():
        await room.admit("HOT", None, "a")
        await room.admit("HOT", None, "b")
        third = await room.admit("HOT", None, "c")
        return await room.status(third.token)

    assert run(scene()) == {"state": "waiting", "position": 2, "eta_s": 0.2}


def test_a_held_status_request_is_answered_at_once_when_the_product_sells_out():
    room, stock, _ = _room(units=1, k=1.0)
    room.tick_s = 0.01

    async def scene():
        await room.admit("HOT", None, "a")
        waiting = await room.admit("HOT", None, "b")
        held = asyncio.create_task(room.status(waiting.token, wait_s=30))
        await asyncio.sleep(0.05)
        assert not held.done()  # nothing changed: still held
        stock.units = 0
        t0 = asyncio.get_running_loop().time()
        answer = await asyncio.wait_for(held, 5)
        return answer, asyncio.get_running_loop().time() - t0

    answer, took = run(scene())
    assert answer["state"] == SOLD_OUT and took < 0.5


def test_a_held_status_request_is_answered_when_its_place_is_admitted():
    room, _, _ = _room(units=1, k=1.0)
    room.tick_s = 0.01

    async def scene():
        head = await room.admit("HOT", None, "a")
        waiting = await room.admit("HOT", None, "b")
        held = asyncio.create_task(room.status(waiting.token, wait_s=30))
        await asyncio.sleep(0.05)
        await room.finish(head, succeeded=False)
        return await asyncio.wait_for(held, 5)

    assert run(scene()) == {"state": "admitted", "position": 0, "eta_s": 0.0}


def test_a_held_status_request_returns_its_place_when_nothing_changes_in_time():
    room, _, _ = _room(units=1, k=1.0)

    async def scene():
        await room.admit("HOT", None, "a")
        waiting = await room.admit("HOT", None, "b")
        return await room.status(waiting.token, wait_s=0.05)

    assert run(scene())["state"] == WAITING


def test_the_gate_keeps_an_admitted_place_through_a_retryable_answer_and_frees_it_after_a_final_one():
    from shopfloor.waitroom import GO, CheckoutGate

    room, _, _ = _room(units=1, k=1.0)
    gate = CheckoutGate(room)

    async def scene():
        first = await gate.enter(["HOT"], "key", "10.0.0.1", None, "a", "tok")
        second = await gate.enter(["HOT"], "key", "10.0.0.2", None, "b", "tok2")
        token = second.decision.token
        await gate.leave(first, 503)  # the server failed: "a" keeps its place for the retry
        still_waiting = (await room.status(token))["state"]
        await gate.leave(first, 402)  # declined: the place goes to the next in line
        return first.kind, second.kind, still_waiting, (await room.status(token))["state"]

    assert run(scene()) == (GO, "queued", WAITING, ADMITTED)


def test_the_gate_lets_ordinary_products_through_untouched():
    from shopfloor.waitroom import GO, CheckoutGate

    room, _, _ = _room(units=0, k=1.0)
    verdict = run(CheckoutGate(room).enter(["A1"], "key", "10.0.0.1", None, "a", "tok"))
    assert verdict.kind == GO and verdict.decision is None


def test_the_purchase_of_the_last_unit_answers_every_held_shopper_without_waiting_for_the_tick():
    room, stock, _ = _room(units=1, k=1.0)
    room.tick_s = 30.0  # the periodic check alone would answer only after 30 s

    async def scene():
        head = await room.admit("HOT", None, "a")
        waiting = [await room.admit("HOT", None, f"w{i}") for i in range(3)]
        held = [asyncio.create_task(room.status(w.token, wait_s=60)) for w in waiting]
        await asyncio.sleep(0.05)
        assert not any(h.done() for h in held)
        stock.units = 0  # the admitted shopper's checkout took the last unit
        t0 = asyncio.get_running_loop().time()
        await room.finish(head, succeeded=True)
        answers = await asyncio.wait_for(asyncio.gather(*held), 1)
        return answers, asyncio.get_running_loop().time() - t0

    assert room.sold_out_seen_at == {}
    answers, took = run(scene())
    assert answers == [{"state": SOLD_OUT, "position": None, "eta_s": None}] * 3 and took < 0.5
    assert room.held_told_sold_out == {"HOT": 3} and room.sold_out_seen_at == {"HOT": 1_000_000.0}


def test_a_failed_purchase_of_the_last_unit_does_not_tell_anyone_sold_out():
    room, stock, _ = _room(units=1, k=1.0)
    room.tick_s = 30.0

    async def scene():
        head = await room.admit("HOT", None, "a")
        waiting = await room.admit("HOT", None, "w")
        held = asyncio.create_task(room.status(waiting.token, wait_s=60))
        await asyncio.sleep(0.05)
        await room.finish(head, succeeded=False)  # declined: the unit is back, the next in line may buy it
        await asyncio.sleep(0.05)
        done = held.done()
        held.cancel()
        return done

    assert run(scene()) is False


def test_retry_after_shrinks_to_a_second_near_the_front_and_when_few_units_are_left():
    policy = AdmissionPolicy(units_factor=2, serve_rate_per_s=50, max_poll_s=5)
    assert policy.retry_after_s(1000, remaining_units=1000) == 5  # far back, plenty left
    assert policy.retry_after_s(10, remaining_units=1000) == 1  # near the front
    assert policy.retry_after_s(1000, remaining_units=250) == 1  # 250 units could sell before a 5 s wait ends
    assert policy.retry_after_s(1000) == 5


def test_a_queued_checkout_is_told_to_come_back_sooner_once_few_units_are_left():
    room, stock, _ = _room(units=100, k=0.01)  # room for one admitted shopper at a time
    room.policy = AdmissionPolicy(units_factor=0.01, serve_rate_per_s=1, max_poll_s=5)

    async def scene():
        for i in range(10):
            await room.admit("HOT", None, f"ahead-{i}")
        far_back = await room.admit("HOT", None, "b")
        stock.units = 4  # could all be sold within one 5 s wait at 1 checkout/s
        also_far_back = await room.admit("HOT", None, "c")
        return far_back, also_far_back

    far_back, also_far_back = run(scene())
    assert far_back.position >= 10 and far_back.retry_after_s == 5
    assert also_far_back.position >= 10 and also_far_back.retry_after_s == 1


def test_shoppers_held_before_the_opening_stay_held_at_the_opening_unless_their_place_is_admitted():
    clock = Clock()
    room, stock, _ = _room(units=1, k=2.0, opens_at=clock.t + 10, clock=clock)  # room for 2 admitted at once
    room.tick_s = 0.01

    async def scene():
        early = [await room.admit("HOT", None, f"e{i}") for i in range(6)]
        held = [asyncio.create_task(room.status(e.token, wait_s=60)) for e in early]
        await asyncio.sleep(0.05)
        clock.t += 11  # the sale opens: the six are shuffled; the first two places are admitted
        await asyncio.sleep(0.1)
        answered = [h.result() for h in held if h.done()]
        still_held = sum(not h.done() for h in held)
        stock.units = 0
        rest = await asyncio.wait_for(asyncio.gather(*[h for h in held if not h.done()]), 1)
        return answered, still_held, rest

    answered, still_held, rest = run(scene())
    assert answered == [{"state": "admitted", "position": 0, "eta_s": 0.0}] * 2
    assert still_held == 4  # not told "waiting" at the opening, only to come straight back
    assert rest == [{"state": SOLD_OUT, "position": None, "eta_s": None}] * 4


def test_past_the_cap_a_status_request_is_answered_at_once_with_when_to_ask_again():
    room, stock, _ = _room(units=1, k=1.0)
    room.max_held = 2
    room.tick_s = 0.01

    async def scene():
        await room.admit("HOT", None, "a")
        waiting = [await room.admit("HOT", None, f"w{i}") for i in range(3)]
        held = [asyncio.create_task(room.hold(w.token, wait_s=60)) for w in waiting[:2]]
        await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        over = await asyncio.wait_for(room.hold(waiting[2].token, wait_s=60), 1)
        took = loop.time() - t0
        still_held = sum(not h.done() for h in held)
        stock.units = 0
        answers = await asyncio.wait_for(asyncio.gather(*held), 1)
        return over, took, still_held, answers

    over, took, still_held, answers = run(scene())
    assert over.status["state"] == WAITING and over.retry_after_s >= 1 and took < 0.5
    assert still_held == 2  # the two under the cap stay held
    assert [a.status["state"] for a in answers] == [SOLD_OUT, SOLD_OUT] and all(a.retry_after_s is None
                                                                                for a in answers)
    assert room.held == 0  # every held request let go of its place under the cap


def test_a_held_request_in_one_process_hears_sold_out_when_another_process_sells_the_last_unit():
    # two server processes: one queue store (Redis in production) and one stock (the database)
    store, stock, clock = InProcessQueueStore(), Stock(1), Clock()
    codec = QueueTokenCodec(b"k" * 32, 600)
    policy = AdmissionPolicy(units_factor=1.0, admit_ttl_s=30, serve_rate_per_s=10)
    seller, holder = (WaitingRoom(store, codec, policy, stock, [GuardedProduct("HOT")], stock_cache_s=0.0,
                                  now_s=clock, monotonic=clock) for _ in range(2))
    holder.tick_s = 0.02

    async def scene():
        head = await seller.admit("HOT", None, "a")
        waiting = await seller.admit("HOT", None, "b")
        held = asyncio.create_task(holder.status(waiting.token, wait_s=60))
        await asyncio.sleep(0.05)
        assert not held.done()
        stock.units = 0  # the seller's admitted checkout took the last unit
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await seller.finish(head, succeeded=True)
        answer = await asyncio.wait_for(held, 1)
        return answer, loop.time() - t0

    answer, took = run(scene())
    assert answer["state"] == SOLD_OUT and took < 0.5


def test_once_sold_out_an_admitted_place_nobody_used_is_not_taken_and_its_shopper_hears_sold_out():
    room, stock, _ = _room(units=1, k=1.0)

    async def scene():
        buyer = await room.admit("HOT", None, "a")
        waiting = await room.admit("HOT", None, "b")
        await room.finish(buyer, succeeded=False)  # declined: the place goes to "b" (not used yet)
        stock.units = 0  # someone else's purchase took the unit meanwhile
        late = await room.admit("HOT", waiting.token, "b")
        stock.units = 1  # e.g. a reservation lapsed: "b" may still buy with its place, nobody took it
        again = await room.admit("HOT", waiting.token, "b")
        return late.state, again.state

    assert run(scene()) == (SOLD_OUT, ADMITTED)


def test_once_sold_out_a_retry_of_the_purchase_that_used_the_place_still_reaches_the_buy_path():
    room, stock, _ = _room(units=1, k=1.0)

    async def scene():
        head = await room.admit("HOT", None, "a")
        waiting = await room.admit("HOT", None, "b")
        await room.finish(head, succeeded=False)
        first = await room.admit("HOT", waiting.token, "b")  # "b" starts its purchase with the place
        stock.units = 0  # its own reservation took the last unit
        retry = await room.admit("HOT", waiting.token, "b")  # e.g. the answer was lost: the same purchase again
        with pytest.raises(QueueTokenUsed):
            await room.admit("HOT", waiting.token, "another-purchase")
        return first.state, retry.state

    assert run(scene()) == (ADMITTED, ADMITTED)


class _CountingLimits:
    """The gate's rate limits, scripted: counts the checkouts it is asked about and grants the first ``grants``
    (all when None), refusing the rest by the per-address limit."""

    def __init__(self, grants: int | None = None) -> None:
        self.grants = grants
        self.taken = 0

    async def checkout(self, key_id, address):
        self.taken += 1
        if self.grants is None or self.taken <= self.grants:
            return None
        return ("checkout_per_address", 1)

    async def products(self, skus):
        return None


def test_a_checkout_of_a_sold_out_product_is_answered_sold_out_without_taking_from_the_rate_limits():
    from shopfloor.waitroom import SOLD, CheckoutGate

    room, stock, _ = _room(units=0)
    limits = _CountingLimits(grants=0)  # would refuse every checkout it is asked about
    gate = CheckoutGate(room, limits)
    sold = run(gate.enter(["HOT"], "key", "10.0.0.1", None, "a", "tok"))
    stock.units = 3
    limited = run(gate.enter(["HOT"], "key", "10.0.0.1", None, "b", "tok"))
    assert sold.kind == SOLD and limited.kind == "rate_limited" and limits.taken == 1


def test_a_queued_shopper_retrying_after_the_sell_out_hears_sold_out_even_when_its_address_is_limited():
    # a bot (or a shopper) that ignores Retry-After runs its address bucket dry; once the product is sold out its
    # next try is told sold_out, not "rate limited" until the bucket refills (the sell-out notice waits for nobody)
    from shopfloor.waitroom import QUEUED, SOLD, CheckoutGate

    room, stock, _ = _room(units=1, k=1.0)
    limits = _CountingLimits(grants=1)  # the address bucket holds one checkout
    gate = CheckoutGate(room, limits)

    async def scene():
        await room.admit("HOT", None, "head")  # takes the only admitted place
        queued = await gate.enter(["HOT"], "key", "10.0.0.9", None, "bot", "tok")
        limited = await gate.enter(["HOT"], "key", "10.0.0.9", queued.decision.token, "bot", "tok")
        stock.units = 0
        told = await gate.enter(["HOT"], "key", "10.0.0.9", queued.decision.token, "bot", "tok")
        return queued.kind, limited.kind, told.kind, limits.taken

    assert run(scene()) == (QUEUED, "rate_limited", SOLD, 2)


def test_once_sold_out_a_retry_of_a_purchase_under_way_still_passes_the_gate_and_its_limits():
    from shopfloor.waitroom import GO, CheckoutGate

    room, stock, _ = _room(units=1, k=1.0)
    limits = _CountingLimits()
    gate = CheckoutGate(room, limits)

    async def scene():
        head = await room.admit("HOT", None, "a")
        waiting = await room.admit("HOT", None, "b")
        await room.finish(head, succeeded=False)
        first = await gate.enter(["HOT"], "key", "10.0.0.2", waiting.token, "b", "tok")  # "b" starts its purchase
        stock.units = 0  # its own reservation took the last unit
        retry = await gate.enter(["HOT"], "key", "10.0.0.2", waiting.token, "b", "tok")
        return first.kind, retry.kind, retry.decision.state, limits.taken

    assert run(scene()) == (GO, GO, ADMITTED, 2)


def test_held_shoppers_hear_sold_out_when_the_writer_commits_the_last_unit_before_the_purchase_ends():
    import threading

    room, stock, _ = _room(units=1, k=1.0)
    room.tick_s = 30.0  # neither the tick nor the end of the purchase will tell them

    async def scene():
        head = await room.admit("HOT", None, "a")
        waiting = [await room.admit("HOT", None, f"w{i}") for i in range(3)]
        held = [asyncio.create_task(room.status(w.token, wait_s=60)) for w in waiting]
        await asyncio.sleep(0.05)
        stock.units = 0
        # the order writer's thread commits the reservation of the last unit; the purchase is still paying
        writer = threading.Thread(target=room.stock_committed, args=("HOT", 0), name="checkout-writer")
        writer.start()
        writer.join()
        answers = await asyncio.wait_for(asyncio.gather(*held), 1)
        return head, answers

    head, answers = run(scene())
    assert head.state == ADMITTED
    assert answers == [{"state": SOLD_OUT, "position": None, "eta_s": None}] * 3
    assert room.held_told_sold_out == {"HOT": 3} and room.sold_out_seen_at == {"HOT": 1_000_000.0}


def test_units_left_after_a_commit_become_the_rooms_stock_reading_and_other_products_are_ignored():
    room, stock, _ = _room(units=5, k=1.0)
    room.stock_cache_s = 60.0  # without the writer's word the room would read the store only once a minute

    async def scene():
        await room.admit("HOT", None, "a")  # reads 5 and keeps it
        stock.units = 0  # another reader would see 0, the room still holds its cached 5
        assert room.remaining("HOT") == 5
        room.stock_committed("HOT", 2)
        room.stock_committed("OTHER", 0)
        return room.remaining("HOT")

    assert run(scene()) == 2
    assert room.sold_out_seen_at == {}


def _told_per_turn(wake_per_turn: int, held_n: int = 50) -> list[int]:
    """Hold ``held_n`` shoppers, sell out, and count how many were answered in each event-loop turn."""
    room, stock, _ = _room(units=1, k=1.0)
    room.tick_s = 30.0
    room.wake_per_turn = wake_per_turn

    async def scene():
        await room.admit("HOT", None, "a")
        waiting = [await room.admit("HOT", None, f"w{i}") for i in range(held_n)]
        turn = [0]
        answered_in: list[int] = []

        async def hold(token):
            answer = await room.status(token, wait_s=60)
            answered_in.append(turn[0])
            return answer

        held = [asyncio.create_task(hold(w.token)) for w in waiting]
        await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()

        def count_turns():
            turn[0] += 1
            if len(answered_in) < held_n:
                loop.call_soon(count_turns)

        stock.units = 0
        room.stock_committed("HOT", 0)  # the writer committed the last unit
        loop.call_soon(count_turns)
        answers = await asyncio.wait_for(asyncio.gather(*held), 1)
        assert answers == [{"state": SOLD_OUT, "position": None, "eta_s": None}] * held_n
        assert room.held_told_sold_out == {"HOT": held_n}
        return [answered_in.count(t) for t in sorted(set(answered_in))]

    return run(scene())


def test_many_held_shoppers_are_told_sold_out_a_few_per_loop_turn_so_other_work_runs_in_between():
    per_turn = _told_per_turn(wake_per_turn=10)
    assert max(per_turn) <= 10 and len(per_turn) >= 5  # every other ready request got a turn between the chunks
    assert _told_per_turn(wake_per_turn=0) == [50]  # without the cap: all in one turn


def test_after_the_sell_out_a_place_is_decided_at_once_only_when_no_purchase_used_it():
    room, stock, _ = _room(units=1, k=1.0)

    async def scene():
        head = await room.admit("HOT", None, "buyer")  # admitted at once, its purchase under way
        waiting = await room.admit("HOT", None, "w")
        stock.units = 0
        return head, waiting

    head, waiting = run(scene())
    # the unreached place: sold out, decided without waiting (as admit would decide it)
    assert room.sold_out_for_token_now("HOT", waiting.token, "w").state == SOLD_OUT
    # a token of the head's place, retried by the purchase that used it: the buy path answers it, not this
    head_token = room.codec.issue("HOT", "q", 0, 1_000_000.0)  # rank 0: the first arrival after the opening
    assert room.sold_out_for_token_now("HOT", head_token, "buyer") is None
    assert room.sold_out_for_token_now("HOT", "forged.token", "w") is None


def test_a_shared_queue_store_is_never_asked_to_decide_at_once():
    class SharedStore(InProcessQueueStore):  # as Redis: no sold_out_place_now
        sold_out_place_now = None

    room = WaitingRoom(SharedStore(), QueueTokenCodec(b"k" * 32, 600), AdmissionPolicy(units_factor=1),
                       Stock(1), [GuardedProduct("HOT")], stock_cache_s=0.0)

    async def scene():
        await room.admit("HOT", None, "a")
        waiting = await room.admit("HOT", None, "w")
        room.stock.units = 0
        return waiting

    waiting = run(scene())
    assert room.sold_out_for_token_now("HOT", waiting.token, "w") is None


def test_the_in_process_store_foretells_at_once_whether_a_new_arrival_waits_and_never_admits_one_it_said_waits():
    import asyncio
    import random

    from shopfloor.waitroom.memory import InProcessQueueStore

    rng = random.Random(5)
    for trial in range(40):
        store, twin = InProcessQueueStore(), InProcessQueueStore()
        now, opens = 0, 1_000
        ranks: list[int] = []
        for step in range(60):
            now += rng.choice((0, 0, 50, 400, 3_000))
            room, ttl = rng.randint(0, 4), 2_000
            if ranks and rng.random() < 0.3:
                rank, succeeded = rng.choice(ranks), rng.random() < 0.5
                for s in (store, twin):
                    asyncio.run(s.finish("sale", rank, succeeded))
                continue
            waits = store.arrival_waits_now("sale", now, opens, room, ttl, 7)
            entry = asyncio.run(twin.enter("sale", now, opens, room, ttl, 7, f"c{step}"))  # the usual way
            only = store.enter_now("sale", now, opens, room, ttl, 7, f"c{step}", only_waiting=True)
            assert waits == (not entry.admitted), (trial, step)
            if waits:
                assert only == entry  # the same place as the usual way gives
            else:
                assert only is None  # nobody entered: enter it the usual way, as the gate would
                assert asyncio.run(store.enter("sale", now, opens, room, ttl, 7, f"c{step}")) == entry
            if entry.opening is not None:
                ranks.append(entry.opening.pre_open_count + entry.number)


# --- holding a status request without a task (the server's HTTP protocol) ------------------------------------


def test_a_status_held_without_a_task_hears_the_sell_out_and_gives_its_place_in_the_hold_count_back():
    room, stock, _ = _room(units=1, k=1.0)

    async def scene():
        first = await room.admit("HOT", None, "a")
        waiting = [await room.admit("HOT", None, f"k{i}") for i in range(3)]
        assert first.state == ADMITTED and all(w.state == WAITING for w in waiting)
        answers: list = []
        holds = [room.hold_now(w.token, 30, answers.append) for w in waiting]
        assert room.held == 3 and all(not hasattr(h, "status") for h in holds)  # held, not answered
        holds[2].cancel()  # its client went away
        assert room.held == 2
        stock.units = 0
        await room.finish(first, True)  # the last unit went: every held shopper hears it now
        for _ in range(5):
            await asyncio.sleep(0)
        return answers

    answers = run(scene())
    assert [a.status["state"] for a in answers] == [SOLD_OUT, SOLD_OUT]
    assert room.held == 0


def test_a_status_held_without_a_task_answers_at_once_when_nothing_waits_and_after_its_wait_otherwise():
    room, _, _ = _room(units=1, k=1.0)

    async def scene():
        first = await room.admit("HOT", None, "a")
        waiting = await room.admit("HOT", None, "b")
        answers: list = []
        now = room.hold_now(waiting.token, 0, answers.append)  # no wait: answered now
        timed = room.hold_now(waiting.token, 0.05, answers.append)
        asked = room.hold_now(waiting.token, 30, answers.append)
        pushed = asked.answer_now()  # the client sent more: answered now, never through the callback
        await asyncio.sleep(0.2)
        return first, now, timed, pushed, answers

    first, now, timed, pushed, answers = run(scene())
    assert now.status == {"state": WAITING, "position": 1, "eta_s": now.status["eta_s"]}
    assert pushed.status["state"] == WAITING
    assert [a.status["state"] for a in answers] == [WAITING]  # the timed hold, once, after its 0.05 s
    assert room.held == 0 and first.state == ADMITTED and not hasattr(timed, "status")


def test_a_status_held_without_a_task_is_admitted_when_its_place_comes_and_answers_as_hold_does():
    room, _, _ = _room(units=1, k=1.0)

    async def scene():
        first = await room.admit("HOT", None, "a")
        waiting = await room.admit("HOT", None, "b")
        answers: list = []
        room.hold_now(waiting.token, 30, answers.append)
        await room.finish(first, False)  # the purchase failed: its place is free, the next one is admitted
        for _ in range(30):
            if answers:
                break
            await asyncio.sleep(0.05)
        return answers, await room.hold(waiting.token, 0)

    answers, by_hold = run(scene())
    assert [a.status for a in answers] == [by_hold.status] and by_hold.status["state"] == ADMITTED


def test_a_queue_store_that_cannot_answer_at_once_leaves_the_status_to_the_usual_way():
    room, _, _ = _room(units=1, k=1.0)

    class Remote:  # like the Redis store: only awaitable calls
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            if name.endswith("_now"):
                raise AttributeError(name)
            return getattr(self.inner, name)

    room.store = Remote(room.store)

    async def scene():
        await room.admit("HOT", None, "a")
        waiting = await room.admit("HOT", None, "b")
        return room.hold_now(waiting.token, 30, lambda _a: None)

    assert run(scene()) is None and room.held == 0
