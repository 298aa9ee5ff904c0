"""The demo seeds stock from what its replayed history sold, so its restock plan is a realistic mix."""

from __future__ import annotations

import pytest

from shopfloor.demo import GB_SOUTH_SHARE, load_daily_demand, recent_daily_demand


def test_recent_daily_demand_splits_gb_like_the_history_and_ignores_older_days():
    rows = [
        {"sku": "A", "market": "GB", "date": "2024-03-10", "qty": "10"},
        {"sku": "A", "market": "GB", "date": "2024-03-01", "qty": "20"},
        {"sku": "A", "market": "DE", "date": "2024-03-09", "qty": "0"},  # counted as one unit, like the history
        {"sku": "A", "market": "GB", "date": "2024-02-29", "qty": "99"},  # 10 days before the last: outside
    ]
    got = recent_daily_demand(rows, days=10)
    assert got[("A", "gb-south")] == pytest.approx(30 * GB_SOUTH_SHARE / 10)
    assert got[("A", "gb-north")] == pytest.approx(30 * (1 - GB_SOUTH_SHARE) / 10)
    assert got[("A", "de-central")] == pytest.approx(0.1)


def test_packaged_sample_gives_every_warehouse_some_demand():
    rates = recent_daily_demand(load_daily_demand())
    assert {w for _, w in rates} == {"gb-south", "gb-north", "de-central"}


def test_the_demo_keys_file_is_created_owner_only_not_made_so_after_writing(tmp_path, monkeypatch):
    import os
    from pathlib import Path

    from shopfloor.demo import write_keys_file

    monkeypatch.setattr(Path, "chmod", lambda self, mode: None)  # a chmod after writing would come too late
    old_umask = os.umask(0o022)
    try:
        path = write_keys_file(tmp_path / "keys.env", "sk_admin", "sk_shop", "sk_ingest")
        stale = tmp_path / "stale.env"
        stale.write_text("export ADMIN=old\n")
        os.chmod(stale, 0o644)
        write_keys_file(stale, "sk_admin", "sk_shop", "sk_ingest")
    finally:
        os.umask(old_umask)
    assert path.stat().st_mode & 0o777 == 0o600 and stale.stat().st_mode & 0o777 == 0o600
    assert "export ADMIN=sk_admin" in path.read_text() and "old" not in stale.read_text()
