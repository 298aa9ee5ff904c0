"""The game day's report: phases, the per-second timeline and the double-charge detector (pure functions)."""

from __future__ import annotations

import pytest

from shopfloor.gameday import (
    CHECKS,
    Attempt,
    GameDayResult,
    charge_anomalies,
    live_authorizations_on_ended_orders,
    summarize_phases,
    timeline,
)


def _attempts() -> list[Attempt]:
    return [Attempt(0.2, 40.0, 201, "o1"), Attempt(0.9, 60.0, 409), Attempt(1.5, 2500.0, 201, "o2", tries=3),
            Attempt(2.1, 30.0, None), Attempt(2.4, 35.0, 201, "o3", flash=True)]


def test_phases_split_purchases_by_when_they_started():
    phases = summarize_phases(_attempts(), [(1.0, "primary down"), (2.0, "server killed")], end_s=3.0)
    assert [p["phase"] for p in phases] == ["steady state", "primary down", "server killed"]
    assert [p["checkouts"] for p in phases] == [2, 1, 2]
    assert phases[0]["statuses"] == {"201": 1, "409": 1}
    assert phases[1]["retried"] == 1 and phases[1]["p99_ms"] == 2500.0
    assert phases[2]["statuses"] == {"unanswered": 1, "201": 1}
    assert phases[2]["p50_ms"] == 35.0  # the unanswered purchase has no latency


def test_timeline_has_one_row_per_second_with_accepted_refused_and_unanswered():
    rows = timeline(_attempts(), end_s=3.2)
    assert [r["second"] for r in rows] == [0, 1, 2, 3]
    assert [(r["accepted"], r["refused"], r["unanswered"]) for r in rows] == [(1, 1, 0), (1, 0, 0), (1, 0, 1),
                                                                             (0, 0, 0)]
    assert rows[3]["p99_ms"] is None


def test_a_second_capture_or_a_live_hold_beside_a_capture_is_a_double_charge():
    ledger = [
        {"order_id": "ok", "authorized": True, "captured": True, "voided": False},
        {"order_id": "ok", "authorized": True, "captured": False, "voided": True},  # voided: no charge
        {"order_id": "twice", "authorized": True, "captured": True, "voided": False},
        {"order_id": "twice", "authorized": True, "captured": True, "voided": False},
        {"order_id": "held", "authorized": True, "captured": True, "voided": False},
        {"order_id": "held", "authorized": True, "captured": False, "voided": False},
        {"order_id": "", "authorized": False, "captured": False, "voided": True},  # cancelled key
        {"order_id": "pending", "authorized": True, "captured": False, "voided": False},
    ]
    assert charge_anomalies(ledger) == (1, 1)


def test_a_live_authorization_on_an_order_that_ended_unpaid_is_a_failed_check():
    ledger = [
        {"order_id": "expired", "authorized": True, "captured": False, "voided": False},
        {"order_id": "expired", "authorized": True, "captured": False, "voided": False},  # counted once per order
        {"order_id": "declined_voided", "authorized": True, "captured": False, "voided": True},
        {"order_id": "live_order", "authorized": True, "captured": False, "voided": False},  # still being paid
        {"order_id": "declined", "authorized": False, "captured": False, "voided": False},
    ]
    ended = {"expired", "declined_voided", "declined"}
    assert live_authorizations_on_ended_orders(ledger, ended) == 1
    assert "live_authorizations_on_cancelled_orders" in CHECKS


def test_any_failed_check_fails_the_game_day():
    result = GameDayResult("sqlite", 10, 2, checks={"lost": 0, "oversold": 0})
    assert result.passed and result.to_dict()["passed"] and result.to_dict()["scenario"] == "checkout"
    result.checks["double_captures"] = 1
    assert not result.passed


def test_a_game_day_that_ran_no_checks_has_not_passed():
    assert not GameDayResult("sqlite", 10, 2).passed


def test_the_example_schedule_loads_in_time_order():
    from pathlib import Path

    from shopfloor.gameday import ACTIONS, load_schedule

    faults = load_schedule(Path(__file__).resolve().parents[2] / "examples" / "gameday.yaml")
    assert [f.at for f in faults] == sorted(f.at for f in faults) and {f.action for f in faults} <= set(ACTIONS)
    slow = faults[0]
    assert slow.target == "primary" and slow.patch == {"latency_ms": 400.0, "latency_jitter": 0.5}


@pytest.mark.parametrize("data, message", [
    ([], "non-empty list"),
    ([{"at": 1.2, "action": "heal"}], r"faults\[0\].at"),
    ([{"at": True, "action": "heal"}], r"faults\[0\].at"),
    ([{"at": 0.1, "action": "explode"}], r"faults\[0\].action: one of"),
    ([{"at": 0.1, "action": "processor", "patch": {"down": True}}], r"faults\[0\].target"),
    ([{"at": 0.1, "action": "processor", "target": "primary"}], r"faults\[0\].patch"),
    ([{"at": 0.1, "action": "processor", "target": "primary", "patch": {"error_rate": 2}}],
     r"faults\[0\].patch.error_rate"),
    ([{"at": 0.1, "action": "rates", "patch": {"colour": "red"}}], r"faults\[0\].patch.colour"),
    ([{"at": 0.1, "action": "heal", "patch": {"down": False}}], r"faults\[0\].patch: only"),
    ([{"at": 0.1, "action": "kill_server", "target": "primary"}], r"faults\[0\].target: only"),
    ([{"at": 0.1, "action": "processor_kill", "patch": {"down": True}}], r"faults\[0\].patch: only"),
    ([{"at": 0.1, "action": "heal", "when": 3}], r"faults\[0\]: unknown field\(s\) when"),
])
def test_a_bad_schedule_is_refused_naming_the_fault_and_field(data, message):
    from shopfloor.gameday import parse_schedule

    with pytest.raises(ValueError, match=message):
        parse_schedule(data)


def test_a_schedule_may_kill_the_simulator_process():
    from shopfloor.gameday import DEFAULT_SCHEDULE, parse_schedule

    (fault,) = parse_schedule([{"at": 0.5, "action": "processor_kill"}])
    assert fault.action == "processor_kill" and fault.target is None and fault.patch is None
    assert "processor_kill" in {f.action for f in DEFAULT_SCHEDULE}


class _FakeSimulator:
    def __init__(self, fail_start: bool = False) -> None:
        self.events: list[tuple[str, float]] = []
        self.fail_start = fail_start

    def kill9(self) -> None:
        import time

        self.events.append(("kill9", time.monotonic()))

    def start(self, timeout: float = 90.0):
        import time

        self.events.append(("start", time.monotonic()))
        if self.fail_start:
            raise RuntimeError("simulator process exited with 1")
        return self


def test_a_killed_simulator_process_is_started_again_after_its_down_time_without_blocking_the_schedule():
    import time

    from shopfloor.gameday.faults import ProcessorKiller

    sim = _FakeSimulator()
    killer = ProcessorKiller(sim, down_s=0.3)
    started = time.monotonic()
    detail = killer.kill()
    assert time.monotonic() - started < 0.2  # the schedule goes on while the processors are down
    assert detail == {"down_s": 0.3} and [e for e, _ in sim.events] == ["kill9"]
    killer.wait()
    (kill_t, start_t) = (t for _, t in sim.events)
    assert [e for e, _ in sim.events] == ["kill9", "start"] and start_t - kill_t >= 0.3
    assert len(killer.back_after_s) == 1 and killer.back_after_s[0] >= 0.3


def test_a_simulator_process_that_does_not_come_back_fails_the_game_day():
    from shopfloor.gameday.faults import ProcessorKiller

    killer = ProcessorKiller(_FakeSimulator(fail_start=True), down_s=0.0)
    killer.kill()
    with pytest.raises(RuntimeError, match="did not come back"):
        killer.wait()
