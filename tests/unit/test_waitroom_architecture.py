"""The waiting room's package stays pure: the standard library, the domain and itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

WAITROOM = Path(__file__).resolve().parents[2] / "src" / "shopfloor" / "waitroom"


def test_the_waitroom_package_imports_only_the_standard_library_the_domain_and_itself():
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    offenders = []
    sources = sorted(WAITROOM.rglob("*.py"))
    assert sources, f"no Python files in {WAITROOM}"  # a moved package fails here instead of passing unchecked
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                offenders += [(path.name, a.name) for a in node.names if a.name.split(".")[0] not in stdlib]
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0 and node.module.split(".")[0] not in stdlib:
                    offenders.append((path.name, node.module))
                if node.level == 2 and not (node.module or "").startswith("domain"):
                    offenders.append((path.name, f"..{node.module}"))
                if node.level > 2:
                    offenders.append((path.name, node.module))
    assert offenders == []
