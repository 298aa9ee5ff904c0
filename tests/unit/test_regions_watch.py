"""Automatic failover (`shopfloor regions watch`): region A must stay silent for the grace period before the
watcher fails over; a region that answers again resets the clock; a fenced region A is not watched."""

from __future__ import annotations

import itertools

from shopfloor.config import Settings
from shopfloor.regions import RegionsLayout
from shopfloor.regions import cluster


def _layout(tmp_path):
    return RegionsLayout.from_settings(Settings(regions_dir=tmp_path / "regions", regions_port_base=20600))


def test_the_watcher_fails_over_once_region_a_stays_silent_for_the_grace_period(tmp_path, monkeypatch):
    clock = itertools.count(0.0, 0.5)  # every poll half a second later
    monkeypatch.setattr(cluster.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(cluster.time, "sleep", lambda _s: None)
    answers = iter([True, False, False, True, False, False, False, False, False, False])
    monkeypatch.setattr(cluster, "region_alive", lambda _layout, _region: next(answers))
    calls = []
    monkeypatch.setattr(cluster, "failover", lambda layout, env=None, timeout=0, report=None:
                        calls.append(timeout) or {"primary": "B", "promoted_s": 1.0})
    out = cluster.watch(_layout(tmp_path), lambda: False, grace_s=2.0)
    assert calls and out["primary"] == "B"
    assert out["detected_s"] >= 2.0
    # Silent at polls 2-3, alive at 4 (the clock restarts), then silent from poll 5 for the full grace period.
    assert next(answers) is False and next(answers, None) is None


def test_a_region_that_keeps_answering_is_never_failed_over(tmp_path, monkeypatch):
    monkeypatch.setattr(cluster.time, "sleep", lambda _s: None)
    monkeypatch.setattr(cluster, "region_alive", lambda _layout, _region: True)
    monkeypatch.setattr(cluster, "failover", lambda *a, **k: (_ for _ in ()).throw(AssertionError("failed over")))
    polls = iter(range(50))
    assert cluster.watch(_layout(tmp_path), lambda: next(polls) >= 49, grace_s=0.5) is None


def test_a_fenced_region_a_is_not_watched(tmp_path, monkeypatch):
    layout = _layout(tmp_path)
    layout.a.root.mkdir(parents=True)
    layout.a.fence_file.write_text("{}\n")
    monkeypatch.setattr(cluster, "failover", lambda *a, **k: (_ for _ in ()).throw(AssertionError("failed over")))
    assert cluster.watch(layout, lambda: False) is None
