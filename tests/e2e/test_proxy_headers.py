"""Behind a TLS-terminating proxy: the served process trusts X-Forwarded-Proto only from the configured proxy
addresses (``http_forwarded_allow_ips``), and the dashboard cookie is Secure exactly when it should be."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest

from shopfloor.runtime import ServerProcess
from shopfloor.store.engine import make_engine
from shopfloor.store.keys import create_api_key
from shopfloor.store.migrate import upgrade_database

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("allowed,secure", [("127.0.0.1", True), ("10.9.8.7", False)])
def test_forwarded_https_counts_only_from_a_trusted_proxy(tmp_path, allowed, secure):
    url = f"sqlite:///{tmp_path / 'proxy.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    _, admin = create_api_key(engine, ["admin"], "ops", NOW)
    engine.dispose()
    server = ServerProcess(url, env={"SHOPFLOOR_HTTP_FORWARDED_ALLOW_IPS": allowed,
                                     "SHOPFLOOR_DASHBOARD_SESSION_SECRET": "e2e"},
                           log_path=tmp_path / "server.log").start()
    try:
        r = httpx.post(server.url + "/dashboard/login", data={"key": admin},
                       headers={"X-Forwarded-Proto": "https"}, follow_redirects=False)
    finally:
        server.stop()
    assert r.status_code == 303
    assert ("Secure" in r.headers["set-cookie"]) is secure
