"""Two regions on one machine under Patroni + etcd: region B's app refuses writes while its database is a standby;
after `failover`, region A is fenced (no database, no app) and B takes checkouts, with every order acknowledged
before the failover present (synchronous replication)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from shopfloor.config import Settings
from shopfloor.regions import RegionsLayout, down, failover, status, up
from shopfloor.store.engine import make_engine
from tests.support.regions import require_regions_tools
from tests.support.store import new_key, seed

pytestmark = pytest.mark.slow

BODY = {"lines": [{"sku": "A1", "qty": 1}], "ship_to": {"country": "US", "postal_code": "94107"},
        "payment": {"token": "tok_ok"}}


def _checkout(url: str, key: str) -> httpx.Response:
    return httpx.post(url + "/v1/checkouts", json=BODY, timeout=30,
                      headers={"Authorization": f"Bearer {key}", "Idempotency-Key": uuid.uuid4().hex})


@pytest.fixture
def regions():
    require_regions_tools()
    # Not under pytest's tmp_path: as root, PostgreSQL runs as `postgres`, which must reach the folder.
    root = Path(tempfile.mkdtemp(prefix="shopfloor-regions-"))
    root.chmod(0o755)
    layout = RegionsLayout.from_settings(Settings(regions_dir=root / "regions", regions_port_base=26400))
    try:
        up(layout)
        yield layout
    finally:
        down(layout, purge=True)
        shutil.rmtree(root, ignore_errors=True)


def test_after_failover_region_a_takes_no_writes_b_takes_checkouts_and_no_acknowledged_order_is_lost(regions):
    layout = regions
    engine = make_engine(layout.a.database_url)
    seed(engine, {"w1": ("us-west", "US", ["9"])}, {"A1": 1299}, {("A1", "w1"): 500})
    _, key = new_key(engine, "storefront")
    engine.dispose()

    acknowledged = []
    for _ in range(5):
        r = _checkout(layout.a.app_url, key)
        assert r.status_code == 201, r.text
        acknowledged.append(r.json()["order_id"])
    refused = _checkout(layout.b.app_url, key)
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "read_only_region", refused.text

    out = failover(layout)
    assert out["primary"] == "B" and out["regions"]["A"]["fenced"]

    with pytest.raises(psycopg.OperationalError):  # region A's PostgreSQL is gone: nothing there can take a write
        psycopg.connect(layout.a.database_url, connect_timeout=3)
    with pytest.raises(httpx.TransportError):
        _checkout(layout.a.app_url, key)
    with pytest.raises(RuntimeError, match="fenced"):  # and `regions up` will not bring it back
        up(layout)

    after = _checkout(layout.b.app_url, key)
    assert after.status_code == 201, after.text
    with psycopg.connect(layout.b.database_url) as conn:
        present = {row[0] for row in conn.execute("select id from orders")}
    assert set(acknowledged) <= present
    assert after.json()["order_id"] in present
    assert status(layout)["regions"]["B"]["worker"] is not None
