"""`shopfloor rules` commands: validate a rules file, evaluate it once or on a schedule."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from .output import console, err_console, fail, load_settings, print_json, require_store

rules_app = typer.Typer(help="Rules that turn signals into actions (scale, warm caches, suppress, alert ...).",
                        no_args_is_help=True)


def check_cmd(
    file: Path = typer.Argument(..., help="Rules file (.yaml, .yml or .toml)."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Validate a rules file without running anything.

    Checks the syntax (with position), signal names, action types and their fields.
    """
    from ..tower.rules import RuleError, load_rules_file

    try:
        ruleset = load_rules_file(file)
    except RuleError as exc:
        if as_json:
            print_json({"ok": False, "error": str(exc), "file": exc.file, "rule": exc.rule, "field": exc.field,
                        "position": exc.position})
            raise typer.Exit(1)
        fail(str(exc), code=1)  # names the file, then the rule and field
    summary = [{"name": r.name, "when": r.condition.source, "signals": sorted(r.condition.names),
                "actions": [a.type for a in r.actions], "cooldown_s": r.cooldown_s} for r in ruleset.rules]
    if as_json:
        print_json({"ok": True, "rules": summary})
        return
    for r in summary:
        console.print(f"[green]ok[/] {r['name']}: when {r['when']} -> {', '.join(r['actions'])} "
                      f"(cooldown {r['cooldown_s']:.0f}s)")
    console.print(f"{len(summary)} rule(s) valid")


def run_cmd(
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="Rules file; default SHOPFLOOR_TOWER_RULES_FILE."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Decide and log what would happen; change nothing."),
    once: bool = typer.Option(False, "--once", help="Evaluate once and exit (the default without --every)."),
    every: Optional[float] = typer.Option(
        None, "--every", min=1.0, help="Evaluate every SECONDS until stopped (re-reads the file when it changes)."),
    signals: Optional[Path] = typer.Option(None, "--signals", help="JSON object of signal values to use first."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON per evaluation."),
) -> None:
    """Evaluate the rules and run the actions of those that hold.

    Rules are evaluated against live signals; cooldowns apply.
    """
    from ..bootstrap import build_container
    from ..tower.actions import StaticSignals
    from ..tower.rules import RuleError, RulesFileWatch
    from ..tower.service import TowerLoop

    if once and every is not None:
        fail("--once and --every cannot be used together")
    settings = load_settings()
    path = file or settings.tower_rules_file
    # With --every, an edit of the file takes effect at the next evaluation (as in the worker); an edit that does
    # not validate is reported and the rules in force stay. At start a bad file is an error.
    watch = RulesFileWatch(path, report=lambda message: err_console.print(f"[yellow]rules:[/] {message}",
                                                                           soft_wrap=True))
    try:
        ruleset = watch.load()
    except RuleError as exc:
        fail(f"--file: {exc}", code=1)
    extra = None
    if signals is not None:
        try:
            data = json.loads(signals.read_text())
        except (OSError, ValueError) as exc:
            fail(f"--signals: cannot read a JSON object from {signals}: {exc}")
        if not isinstance(data, dict):
            fail("--signals: expected a JSON object of name -> value")
        _check_signal_values(data, signals)
        extra = StaticSignals(data)
    require_store(settings.database_url)
    container = build_container(settings)
    try:
        # The funnel monitor runs in the same loop: it stores anomaly alerts and feeds anomaly_score_* signals.
        loop = TowerLoop(container, ruleset, extra_signals=extra)
        while True:
            edited = watch.poll()
            if edited is not None:
                loop.replace_rules(edited)
            try:
                results = loop.tick(dry_run=dry_run)
            except Exception as exc:  # e.g. database not migrated: say so in one line
                first_line = str(getattr(exc, "orig", None) or exc).splitlines()[0]
                fail(f"rules run failed: {type(exc).__name__}: {first_line} "
                     "(is the database migrated? run `shopfloor db upgrade`)", code=1)
            _report(results, as_json, dry_run)
            if every is None:
                break
            time.sleep(every)
    except KeyboardInterrupt:
        pass
    finally:
        container.close()


def _report(results, as_json: bool, dry_run: bool) -> None:
    if as_json:
        print_json({"dry_run": dry_run, "rules": [r.__dict__ for r in results]})
        return
    for r in results:
        state = "[yellow]skipped[/]" if r.skipped else ("[red]fired[/]" if r.fired else "[green]quiet[/]")
        console.print(f"{state} {r.rule} {r.skipped or ''} values={r.values}")
        for a in r.actions:
            console.print(f"    {a['action']}: {a['status']}" + (f" ({a.get('error')})" if a.get("error") else ""))


def register(app: typer.Typer) -> None:
    """Attach `shopfloor rules ...` to the root app."""
    rules_app.command("check")(check_cmd)
    rules_app.command("run")(run_cmd)
    app.add_typer(rules_app, name="rules")


def _check_signal_values(data: dict, path: Path) -> None:
    """Each ``--signals`` entry a known signal with a finite number, or exit naming it (a string or null would
    quietly skip the rules that read it, or read as 0)."""
    import math

    from ..tower.rules import SignalCatalog

    catalog = SignalCatalog()
    for name, value in data.items():
        if not catalog.knows(name):
            hint = catalog.suggest(name)
            fail(f"--signals {path}: unknown signal {name!r}" + (f"; did you mean {', '.join(hint)}?" if hint else ""))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            fail(f"--signals {path}: {name} must be a finite number, got {json.dumps(value)[:40]}")
