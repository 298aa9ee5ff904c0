"""Layering rules from the architecture brief, checked on the source tree."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "shopfloor"


def _sources(folder: Path, *, recursive: bool = True) -> list[Path]:
    """The Python files in ``folder``; never none, so a moved or renamed package fails these rules instead of
    passing them with nothing checked."""
    files = sorted(folder.rglob("*.py") if recursive else folder.glob("*.py"))
    assert files, f"no Python files in {folder}"
    return files


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_domain_imports_only_the_standard_library_and_itself():
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    offenders = {}
    for path in _sources(SRC / "domain"):
        bad = {n for n in _imports(path) if n not in stdlib and n != "shopfloor"}
        if bad:
            offenders[str(path.relative_to(SRC))] = sorted(bad)
    assert offenders == {}


def test_domain_does_not_reach_into_outer_layers():
    for path in _sources(SRC / "domain"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("shopfloor."):
                assert node.module.startswith("shopfloor.domain"), f"{path.name} imports {node.module}"
            if isinstance(node, ast.ImportFrom) and node.level >= 2:
                raise AssertionError(f"{path.name} imports outside domain via relative import")


def test_only_bootstrap_and_entry_points_build_concrete_adapters():
    """Services never construct engines themselves; they are handed repositories/engines."""
    # Entry points (CLI, demo, load and game-day harnesses) and the wiring module may build engines; services may not.
    allowed_files = {"bootstrap.py"}
    allowed_dirs = {"cli", "demo", "store", "gameday"}
    for path in _sources(SRC):
        if path.name in allowed_files or allowed_dirs.intersection(path.relative_to(SRC).parts[:-1]):
            continue
        assert "make_engine(" not in path.read_text(), f"{path} builds an engine"


def _shopfloor_imports(path: Path) -> set[str]:
    """Dotted names of the shopfloor modules ``path`` imports anywhere in it (function-level imports included)."""
    package = ["shopfloor", *path.relative_to(SRC).parent.parts]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("shopfloor"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            if not base.startswith("shopfloor"):
                continue
            out.add(base)
            if not node.module:  # ``from . import x``: x is a module
                out.update(f"{base}.{a.name}" for a in node.names)
    return out


def _module_name(path: Path) -> str:
    parts = ["shopfloor", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_tower_modules_import_each_other_without_a_cycle():
    graph = {}
    for path in _sources(SRC / "tower", recursive=False):
        if path.name != "__init__.py":
            graph[_module_name(path)] = {m for m in _shopfloor_imports(path) if m.startswith("shopfloor.tower.")}
    done: set[str] = set()

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(node):] + [node]))
        if node in done or node not in graph:
            return
        for nxt in sorted(graph[node]):
            visit(nxt, trail + [node])
        done.add(node)

    for start in sorted(graph):
        visit(start, [])


def test_payments_knows_nothing_of_the_buy_path_that_uses_it():
    for path in _sources(SRC / "payments", recursive=False):
        outside = {m for m in _shopfloor_imports(path) if not m.startswith("shopfloor.payments")}
        assert outside == set(), f"{path.name} imports {sorted(outside)}"


def test_the_store_only_reads_and_writes_and_builds_no_service():
    """Composition (planners, services) lives in bootstrap.py; store/ may use planning's value types only."""
    offenders = {}
    for path in _sources(SRC / "store"):
        tree = ast.parse(path.read_text())
        bad = {m for m in _shopfloor_imports(path)
               if m.endswith("_service") or m.startswith(("shopfloor.bootstrap", "shopfloor.forecast"))}
        bad |= {a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for a in node.names
                if a.name.startswith("build_") or a.name.endswith(("Planner", "Service"))}
        bad |= {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name.startswith("build_")}
        if bad:
            offenders[str(path.relative_to(SRC))] = sorted(bad)
    assert offenders == {}


def test_the_packages_split_out_of_the_buy_path_are_used_through_their_public_entry():
    """payments/, simulators/ and gameday/ each export what others need from their ``__init__``; nothing outside
    reaches into their modules, so they can be rearranged inside without touching their users."""
    entries = ("shopfloor.payments", "shopfloor.simulators", "shopfloor.gameday")
    offenders = {}
    for path in _sources(SRC):
        own = _module_name(path)
        bad = {m for m in _shopfloor_imports(path) for entry in entries
               if m.startswith(entry + ".") and not own.startswith(entry)}
        if bad:
            offenders[str(path.relative_to(SRC))] = sorted(bad)
    assert offenders == {}
