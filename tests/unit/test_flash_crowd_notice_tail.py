"""The flash_crowd report's notice tail: who heard of the sell-out late, and whether their request was sent late
(the shopper's timing) or answered late (the server's)."""

from __future__ import annotations

from shopfloor.gameday.flash_crowd import _notice_tail, _Shopper


def _told(kind, by, sent_s, answered_s):
    s = _Shopper(kind, 0.0, "10.0.0.1", "tok", False, queued_s=1.0)
    s.outcome, s.told_by, s.told_sent_s, s.outcome_s = "sold_out", by, sent_s, answered_s
    return s


def test_the_tail_splits_late_shoppers_by_kind_and_channel_with_sending_and_answering_delays():
    sellout = 10.0
    waiting = [_told("human", "hold", 8.0, 10.5),  # told in 0.5 s: not in the tail
               _told("human", "hold", 7.0, 12.0),  # held since 3 s before, answered 2 s after the sell-out
               _told("bot", "checkout_sold_out", 12.5, 13.0),  # sent late (its next retry), answered at once
               _told("bot", "checkout_sold_out", 10.2, 13.5)]  # sent at once, answered late
    tail = _notice_tail(waiting, sellout, over_s=1.0)
    assert tail["n"] == 3
    assert tail["groups"]["human:hold"] == {"n": 1, "sent_after_sellout_s": {"p50": -3.0, "max": -3.0},
                                            "answer_took_s": {"p50": 5.0, "max": 5.0}}
    bots = tail["groups"]["bot:checkout_sold_out"]
    assert bots["n"] == 2 and bots["sent_after_sellout_s"]["max"] == 2.5 and bots["answer_took_s"]["max"] == 3.3
    assert [s["answered_s"] for s in tail["latest"]] == [2.0, 3.0, 3.5]


def test_no_sell_out_no_tail():
    assert _notice_tail([], None) == {}
