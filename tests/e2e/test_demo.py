"""The demo is the README's first command: it must run end to end and tell the truth in its summary."""

from __future__ import annotations

import subprocess
import sys

import pytest

from shopfloor.runtime import child_env, free_port

pytestmark = pytest.mark.slow


def test_demo_once_runs_a_flash_sale_without_overselling(tmp_path):
    port = free_port()
    out = subprocess.run(
        [sys.executable, "-m", "shopfloor", "demo", "--once", "--port", str(port), "--shoppers", "60",
         "--workdir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=600, env=child_env("sqlite:///unused.db"),
    )
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    assert "flash sale sold / refused" in text
    assert "50 / 250" in text  # exactly the 50 units sold, every other buyer refused
    assert "/docs" in text and "/v1/orders/ord_" in text
