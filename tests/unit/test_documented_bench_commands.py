"""Every benchmark command the docs give must be runnable as written.

The commands come from ``docs/BENCHMARKS.md`` (backticked spans, the table's command column among them) and from
``docs/benchmarks/*.md`` (fenced and indented code blocks, backticked spans). For each ``bench/X.py`` command the
script must exist, and every ``--option`` it uses must appear in the usage of that script's ``--help`` (run in a subprocess
with ``PYTHONPATH=src``, or the ``PYTHONPATH`` the command itself sets); a command written out to be run (with
``python``) must also give every option the script requires. ``shopfloor ...`` commands are checked against the
CLI's own option lists. Every ``bench/*.py`` script's ``--help`` must exit 0 and describe the script.

Placeholders (``<m5 long>``, ``FILE``, ``N``, ``...``) count as values: only option names are compared, so a
renamed or removed option fails here until the docs follow it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "docs" / "BENCHMARKS.md"
AREA_DOCS = sorted((ROOT / "docs" / "benchmarks").glob("*.md"))
BENCH_SCRIPTS = sorted(p for p in (ROOT / "bench").glob("*.py") if not p.name.startswith("_"))

OPTION = re.compile(r"(?<![\w-])(--[A-Za-z0-9][\w-]*)")
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
PYTHONS = {"python", "python3", ".venv/bin/python", "uv"}


@dataclass(frozen=True)
class Command:
    doc: str  # file name and line, for the test id and the failure message
    text: str  # as written
    kind: str  # "bench" or "shopfloor"
    target: str  # bench/X.py, or "" for shopfloor
    args: tuple[str, ...]  # after the script / after ``shopfloor``
    pythonpath: str | None  # as the command sets it
    invoked: bool  # written to be run (``python bench/...``), not a mention of the script with an option or two


def _tokens(text: str) -> list[str]:
    text = re.sub(r"(^|\s)#.*$", "", text)  # shell comment
    text = re.sub(r"<[^<>]*>", "PLACEHOLDER", text)  # <m5 long>, <nab>
    text = text.replace("[", " ").replace("]", " ")  # optional parts written as [--opt value]
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def _parse(doc: str, text: str) -> Command | None:
    """``bench/X.py`` or ``shopfloor`` command in ``text`` (env assignments, ``nice``/``taskset`` and the Python
    interpreter before it allowed), else None."""
    toks = _tokens(text)
    env: dict[str, str] = {}
    invoked = False
    i = 0
    while i < len(toks):
        t = toks[i]
        if ENV_ASSIGNMENT.match(t):
            k, v = t.split("=", 1)
            env[k] = v
            i += 1
        elif t == "nice" and i + 2 < len(toks) and toks[i + 1] == "-n":
            i += 3
        elif t == "taskset" and i + 2 < len(toks) and toks[i + 1] == "-c":
            i += 3
        elif t in PYTHONS:
            invoked = True
            i += 1
            if toks[i:i + 2] == ["-m", "shopfloor"]:
                toks[i:i + 2] = ["shopfloor"]
        else:
            break
    if i >= len(toks):
        return None
    head, rest = toks[i], tuple(toks[i + 1:])
    pythonpath = env.get("PYTHONPATH")
    if re.fullmatch(r"bench/\w+\.py", head):
        return Command(doc, text.strip(), "bench", head, rest, pythonpath, invoked)
    if head == "shopfloor" and rest:
        return Command(doc, text.strip(), "shopfloor", "", rest, pythonpath, True)
    return None


def _join_continuations(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for no, line in lines:
        s = line.strip()
        if pending is not None:
            pending = (pending[0], pending[1] + " " + s.rstrip("\\"))
        else:
            pending = (no, s.rstrip("\\"))
        if not s.endswith("\\"):
            out.append(pending)
            pending = None
    if pending is not None:
        out.append(pending)
    return out


def _commands_in(path: Path) -> list[Command]:
    lines = path.read_text(encoding="utf-8").split("\n")
    code: list[tuple[int, str]] = []  # fenced or indented code lines
    prose: list[tuple[int, str]] = []
    fenced = False
    for no, line in enumerate(lines, 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            code.append((no, line))
            continue
        if line.startswith("    "):  # an indented code block, or a wrapped list item: read it as both
            code.append((no, line))
        prose.append((no, line))
    found: list[Command] = []
    for no, line in _join_continuations(code):
        cmd = _parse(f"{path.name}:{no}", line)
        if cmd is not None:
            found.append(cmd)
    # backticked spans may wrap onto the next line; keep the line each starts on
    text = "\n".join(line for _, line in prose)
    starts = [no for no, _ in prose]
    for m in re.finditer(r"`([^`]+)`", text):
        no = starts[text.count("\n", 0, m.start())]
        cmd = _parse(f"{path.name}:{no}", m.group(1).replace("\n", " "))
        if cmd is not None:
            found.append(cmd)
    return found


def _all_commands() -> list[Command]:
    seen: set[tuple] = set()
    out = []
    for path in [BENCHMARKS, *AREA_DOCS]:
        for cmd in _commands_in(path):
            key = (cmd.kind, cmd.target, cmd.args, cmd.pythonpath, cmd.invoked)
            if key not in seen:
                seen.add(key)
                out.append(cmd)
    return out


COMMANDS = _all_commands()
BENCH_COMMANDS = [c for c in COMMANDS if c.kind == "bench"]
SHOPFLOOR_COMMANDS = [c for c in COMMANDS if c.kind == "shopfloor"]
TABLE_SCRIPTS = {c.target for c in _commands_in(BENCHMARKS) if c.kind == "bench"}


def _script_pythonpath(script: str) -> str:
    """The PYTHONPATH a script's documented commands set (``src`` when none does)."""
    for c in BENCH_COMMANDS:
        if c.target == script and c.pythonpath not in (None, "src"):
            return c.pythonpath
    return "src"


def _help_key(cmd: Command) -> tuple[str, str]:
    """A command run as written gets the PYTHONPATH it sets (``src`` when none); a mention of the script, the one
    its other commands set."""
    if cmd.pythonpath is not None:
        return cmd.target, cmd.pythonpath
    return cmd.target, "src" if cmd.invoked else _script_pythonpath(cmd.target)


def _run_help(key: tuple[str, str]) -> subprocess.CompletedProcess:
    script, pythonpath = key
    env = dict(os.environ, PYTHONPATH=pythonpath, COLUMNS="200", NIXTLA_NUMBA_CACHE="1")
    return subprocess.run([sys.executable, script, "--help"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180)


@pytest.fixture(scope="module")
def helps() -> dict[tuple[str, str], subprocess.CompletedProcess]:
    keys = {_help_key(c) for c in BENCH_COMMANDS if (ROOT / c.target).is_file()}
    keys |= {(f"bench/{p.name}", _script_pythonpath(f"bench/{p.name}")) for p in BENCH_SCRIPTS}
    keys = sorted(keys)
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(keys, pool.map(_run_help, keys)))


def _usage(proc: subprocess.CompletedProcess) -> str:
    """argparse's generated usage: every option the parser has (the description may name options that are gone)."""
    usage = proc.stdout.split("\n\n")[0]
    assert usage.startswith("usage:"), proc.stdout[:500]
    return usage


def _help_options(proc: subprocess.CompletedProcess) -> set[str]:
    return set(OPTION.findall(_usage(proc)))


def _required_options(proc: subprocess.CompletedProcess) -> set[str]:
    usage = _usage(proc)
    while True:  # drop the optional parts, innermost brackets first
        stripped = re.sub(r"\[[^\[\]]*\]", "", usage)
        if stripped == usage:
            break
        usage = stripped
    return set(OPTION.findall(usage))


def test_the_docs_give_benchmark_commands():
    assert len({c.target for c in _commands_in(BENCHMARKS) if c.kind == "bench"}) >= 20
    assert len(BENCH_COMMANDS) >= 100
    assert SHOPFLOOR_COMMANDS


@pytest.mark.parametrize("cmd", BENCH_COMMANDS, ids=[f"{c.doc}:{c.target}" for c in BENCH_COMMANDS])
def test_documented_bench_command_matches_its_script_help(cmd: Command, helps):
    assert (ROOT / cmd.target).is_file(), f"{cmd.doc}: `{cmd.text}`: no such script"
    proc = helps[_help_key(cmd)]
    assert proc.returncode == 0, f"{cmd.doc}: `{cmd.target} --help` failed:\n{proc.stderr[-2000:]}"
    known = _help_options(proc)
    used = [a.split("=", 1)[0] for a in cmd.args if a.startswith("--")]
    unknown = [o for o in used if o not in known]
    assert not unknown, f"{cmd.doc}: `{cmd.text}` uses {unknown}, not in `{cmd.target} --help`"
    if cmd.invoked:
        missing = sorted(_required_options(proc) - set(used))
        assert not missing, f"{cmd.doc}: `{cmd.text}` lacks the required {missing}"


@pytest.mark.parametrize("script", [f"bench/{p.name}" for p in BENCH_SCRIPTS])
def test_bench_script_help_works_and_describes_the_script(script: str, helps):
    proc = helps[(script, _script_pythonpath(script))]
    assert proc.returncode == 0, f"`{script} --help` failed:\n{proc.stderr[-2000:]}"
    blocks = [b for b in proc.stdout.split("\n\n") if b.strip()]
    assert blocks and blocks[0].startswith("usage:"), proc.stdout[:500]
    assert len(blocks) > 1 and not blocks[1].lstrip().startswith(("options:", "positional arguments:")), (
        f"`{script} --help` has no description")


def test_every_benchmark_in_the_table_is_a_script():
    missing = sorted(s for s in TABLE_SCRIPTS if not (ROOT / s).is_file())
    assert not missing


def _shopfloor_tree():
    import typer

    from shopfloor.cli.main import app

    return typer.main.get_command(app)


@pytest.mark.parametrize("cmd", SHOPFLOOR_COMMANDS, ids=[f"{c.doc}:{' '.join(c.args[:2])}" for c in SHOPFLOOR_COMMANDS])
def test_documented_shopfloor_command_options_exist(cmd: Command):
    node = _shopfloor_tree()
    path = ["shopfloor"]
    args = list(cmd.args)
    while args and hasattr(node, "commands") and args[0] in node.commands:
        node = node.commands[args[0]]
        path.append(args.pop(0))
    if args and hasattr(node, "commands") and not args[0].startswith("-") and args[0] not in ("...", "PLACEHOLDER"):
        pytest.fail(f"{cmd.doc}: `{cmd.text}`: `{' '.join(path)}` has no command {args[0]!r}")
    known = {o for p in node.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
    unknown = [a.split("=", 1)[0] for a in args if a.startswith("--") and a.split("=", 1)[0] not in known]
    assert not unknown, f"{cmd.doc}: `{cmd.text}` uses {unknown}, not options of `{' '.join(path)}`"
