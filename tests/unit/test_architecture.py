"""Layering rules from the architecture brief, checked on the source tree."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "shopfloor"


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
    for path in (SRC / "domain").rglob("*.py"):
        bad = {n for n in _imports(path) if n not in stdlib and n != "shopfloor"}
        if bad:
            offenders[str(path.relative_to(SRC))] = sorted(bad)
    assert offenders == {}


def test_domain_does_not_reach_into_outer_layers():
    for path in (SRC / "domain").rglob("*.py"):
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
    for path in SRC.rglob("*.py"):
        if path.name in allowed_files or allowed_dirs.intersection(path.relative_to(SRC).parts[:-1]):
            continue
        assert "make_engine(" not in path.read_text(), f"{path} builds an engine"
