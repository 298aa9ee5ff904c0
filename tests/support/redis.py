"""The Redis the shared-state tests use (``SHOPFLOOR_TEST_REDIS_URL``, default the local one).

Outside CI they skip without it; under CI (``CI`` set, as ``.ci/run`` does) they run and fail instead, so a
missing Redis is never a silent skip there."""

from __future__ import annotations

import os

import pytest

from tests.support.ci import UNDER_CI

REDIS_URL = os.environ.get("SHOPFLOOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _redis_up() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).ping())
    except Exception:  # noqa: BLE001 - any failure means: no Redis here
        return False


# Under CI the mark is a no-op: the tests run and fail loudly if Redis is missing.
needs_redis = pytest.mark.skipif(not UNDER_CI and not _redis_up(), reason=f"no Redis at {REDIS_URL}")


def forget_prefix(prefix: str) -> None:
    """Delete every key a test wrote under ``prefix``."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
