"""`shopfloor regions` without starting anything: status of stopped regions, and `up` refusing a fenced region A."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from shopfloor.cli.main import app


def test_status_of_stopped_regions_says_no_primary_and_nothing_healthy(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOPFLOOR_REGIONS_DIR", str(tmp_path / "regions"))
    monkeypatch.setenv("SHOPFLOOR_REGIONS_PORT_BASE", "28400")
    result = CliRunner().invoke(app, ["regions", "status", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["primary"] is None and out["etcd"]["healthy"] is False and out["synchronous"] is True
    assert {r["app_healthy"] for r in out["regions"].values()} == {False}


def test_up_refuses_while_region_a_is_fenced_and_says_how_to_reset(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOPFLOOR_REGIONS_DIR", str(tmp_path / "regions"))
    fence = tmp_path / "regions" / "A" / "FENCED"
    fence.parent.mkdir(parents=True)
    fence.write_text("{}\n")
    result = CliRunner().invoke(app, ["regions", "up"])
    assert result.exit_code != 0
    assert "fenced" in result.output and "--purge" in result.output
    assert not (tmp_path / "regions" / "etcd").exists()  # nothing was started


def test_down_purge_removes_the_fence_mark(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOPFLOOR_REGIONS_DIR", str(tmp_path / "regions"))
    monkeypatch.setenv("SHOPFLOOR_REGIONS_PORT_BASE", "28400")
    fence = tmp_path / "regions" / "A" / "FENCED"
    fence.parent.mkdir(parents=True)
    fence.write_text("{}\n")
    result = CliRunner().invoke(app, ["regions", "down", "--purge", "--json"])
    assert result.exit_code == 0, result.output
    assert not fence.exists()


def test_failover_with_nothing_running_says_so_and_how_to_start_the_regions(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOPFLOOR_REGIONS_DIR", str(tmp_path / "regions"))
    monkeypatch.setenv("SHOPFLOOR_REGIONS_PORT_BASE", "28400")
    for command in (["regions", "failover"], ["regions", "watch"]):
        result = CliRunner().invoke(app, command)
        said = " ".join(result.output.split())
        assert result.exit_code == 2, (command, result.output)
        assert "regions: not running" in said and "start them with `shopfloor regions up`" in said, said
        assert "Errno" not in said and "FENCED" not in said
    assert not (tmp_path / "regions").exists()  # nothing fenced, nothing written
