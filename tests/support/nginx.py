"""nginx for tests: installed through the project's script when missing, never skipped silently."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "install-nginx.sh"


def require_nginx() -> str:
    """The nginx binary; runs tools/install-nginx.sh when there is none, and fails the test when that fails."""
    found = shutil.which("nginx") or (Path("/usr/sbin/nginx").exists() and "/usr/sbin/nginx")
    if found:
        return str(found)
    out = subprocess.run(["sh", str(SCRIPT)], capture_output=True, text=True, timeout=600)
    found = shutil.which("nginx") or (Path("/usr/sbin/nginx").exists() and "/usr/sbin/nginx")
    if out.returncode != 0 or not found:
        pytest.fail(f"nginx is needed and {SCRIPT.name} could not install it: {(out.stderr or out.stdout)[-500:]}")
    return str(found)
