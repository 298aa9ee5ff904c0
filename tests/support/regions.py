"""etcd and Patroni for the two-region tests: installs them with tools/install-regions.sh when missing and fails
the test when that fails (never a silent skip)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "install-regions.sh"


def require_regions_tools() -> None:
    try:
        import patroni  # noqa: F401
        have_patroni = True
    except ImportError:
        have_patroni = False
    if shutil.which("etcd") and have_patroni:
        return
    out = subprocess.run(["sh", str(SCRIPT), sys.executable], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.fail(f"tools/install-regions.sh failed: {(out.stderr or out.stdout)[-500:]}")
