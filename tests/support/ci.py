"""Missing tools under CI: a failure there, a skip elsewhere.

``.ci/run`` sets ``CI=true`` and installs every tool the suite needs, so under CI a test that finds one missing
fails instead of skipping (a skip there would hide that the test never ran). On a developer's machine it skips,
naming what to install."""

from __future__ import annotations

import os

import pytest

#: ``CI`` set to anything but empty, ``0`` or ``false`` (``.ci/run`` sets ``CI=true``).
UNDER_CI = os.environ.get("CI", "").lower() not in ("", "0", "false")


def skip_or_fail(message: str, *, allow_module_level: bool = False) -> None:
    """Fail the test with ``message`` under CI; skip it elsewhere."""
    if UNDER_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message, allow_module_level=allow_module_level)
