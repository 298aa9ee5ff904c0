"""`make demo` installs the runtime dependencies only; `make test` adds the dev extras, in either order.

The Makefile runs against a fake Python that records what it is asked to do, so these tests check the stamp logic
without a network or a real install."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FAKE_PYTHON = """#!/bin/sh
# A stand-in interpreter: `-m venv DIR` makes DIR/bin/{python,shopfloor}, which log their arguments.
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin"
  for tool in python shopfloor; do
    printf '#!/bin/sh\\necho "%s $*" >> "%s/calls.log"\\n' "$tool" "$PWD" > "$3/bin/$tool"
    chmod +x "$3/bin/$tool"
  done
  echo "venv $3" >> "$PWD/calls.log"
  exit 0
fi
exit 1
"""

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


@pytest.fixture
def clone(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copy(ROOT / "constraints.txt", tmp_path / "constraints.txt")
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return tmp_path


def make(clone: Path, target: str) -> list[str]:
    """Run `make TARGET` in the clone and return the calls it made (and forget them)."""
    out = subprocess.run(["make", "-s", target, f"PY={clone / 'fake-python'}"], cwd=clone, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    log = clone / "calls.log"
    calls = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return calls


def installs(calls: list[str]) -> list[str]:
    return [c for c in calls if " install " in c and "--upgrade pip" not in c]


def test_make_demo_on_a_fresh_clone_creates_the_venv_and_installs_the_runtime_dependencies_only(clone):
    calls = make(clone, "demo")
    assert calls[0].startswith("venv ")
    assert installs(calls) == ["python -m pip install -q -c constraints.txt -e ."]
    assert calls[-1] == "shopfloor demo"


def test_make_test_after_make_demo_adds_the_dev_extras_then_runs_pytest(clone):
    make(clone, "demo")
    calls = make(clone, "test")
    assert not any(c.startswith("venv ") for c in calls)
    assert installs(calls) == ["python -m pip install -q -c constraints.txt -e .[dev]"]
    assert calls[-1].startswith("python -m pytest")


def test_nothing_is_reinstalled_until_pyproject_or_the_pins_change(clone):
    make(clone, "test")
    assert installs(make(clone, "demo")) == []  # the dev install covers the runtime
    assert installs(make(clone, "test")) == []
    later = (clone / ".venv" / ".installed-dev").stat().st_mtime + 10
    os.utime(clone / "pyproject.toml", (later, later))
    assert installs(make(clone, "demo")) == ["python -m pip install -q -c constraints.txt -e ."]
    assert installs(make(clone, "test")) == ["python -m pip install -q -c constraints.txt -e .[dev]"]
    make(clone, "test")
    later = (clone / ".venv" / ".installed-dev").stat().st_mtime + 10
    os.utime(clone / "constraints.txt", (later, later))
    assert installs(make(clone, "test")) == ["python -m pip install -q -c constraints.txt -e .[dev]"]
