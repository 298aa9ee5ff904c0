"""Each command's summary is one short line: the first line of its docstring is its whole first paragraph, and it
shows whole, on the command's own line, in `shopfloor <group> --help` at 80 columns (details follow in later
paragraphs)."""

from __future__ import annotations

import pytest
import typer
import typer.rich_utils
from typer.testing import CliRunner

from shopfloor.cli.main import app

GROUPS = {  # group -> commands whose help this suite owns (`restock agent` is checked with the agent)
    "edge": ["config", "up", "down", "status", "warm", "purger"],
    "regions": ["up", "status", "failover", "watch", "down"],
    "bench": ["checkout"],
    "simulate": ["serve"],
    "orders": ["import"],
    "fulfillment": ["import"],
    "restock": ["plan", "import-pos", "backtest"],
    "rules": ["check", "run"],
    "webhooks": ["add", "list", "disable", "enable", "rotate-secret", "deliveries", "redeliver"],
}


def _summary(text: str) -> str:
    return text.strip().split("\n\n")[0]


def _listing(monkeypatch, args: list[str]) -> list[str]:
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", 80)
    r = CliRunner().invoke(app, [*args, "--help"])
    assert r.exit_code == 0, r.output
    return r.output.splitlines()


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_command_summary_is_one_line_that_shows_whole_in_its_group_help(group, monkeypatch):
    root = typer.main.get_command(app)
    lines = _listing(monkeypatch, [group])
    for name in GROUPS[group]:
        summary = _summary(root.commands[group].commands[name].help)
        assert "\n" not in summary, (group, name, summary)
        row = [line for line in lines if line.startswith(f"│ {name} ")]
        assert row and summary in row[0], (group, name, row)


@pytest.mark.parametrize("group", ["edge", "regions"])
def test_the_group_summary_shows_whole_on_its_line_in_the_root_help(group, monkeypatch):
    root = typer.main.get_command(app)
    summary = _summary(root.commands[group].help)
    row = [line for line in _listing(monkeypatch, []) if line.startswith(f"│ {group} ")]
    assert "\n" not in summary and row and summary in row[0], row
