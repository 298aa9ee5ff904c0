"""Product pages and search over HTTP on SQLite and PostgreSQL: cache headers, 304s, inventory-aware TTLs,
full-text search with cursors, no-store on everything authenticated, and read-replica routing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from shopfloor.api.app import create_app
from shopfloor.bootstrap import build_container
from shopfloor.config import Settings
from tests.support.store import new_key, seed

WAREHOUSES = {"w1": ("us-west", "US", ["9"])}


def _client(url: str, **settings) -> TestClient:
    container = build_container(Settings(database_url=url, promise_stats_refresh_s=0, **settings))
    return TestClient(create_app(container))


def _seed(url: str, names: dict[str, str] | None = None):
    from shopfloor.store import orders_repo as repo
    from shopfloor.store.engine import make_engine
    from tests.support.store import NOW

    engine = make_engine(url)
    seed(engine, WAREHOUSES, {"MUG-RED": 1299, "MUG-BLUE": 1299, "PAN": 2999},
         {("MUG-RED", "w1"): 500, ("MUG-BLUE", "w1"): 2, ("PAN", "w1"): 40})
    with engine.begin() as conn:
        for sku, (name, category) in {"MUG-RED": ("Red mug", "kitchen"), "MUG-BLUE": ("Blue mug", "kitchen"),
                                      "PAN": ("Frying pan", "kitchen"), **(names or {})}.items():
            price = {"PAN": 2999}.get(sku, 1299)
            repo.upsert_sku(conn, sku, name, category, price, "USD", NOW)
    return engine


def _max_age(header: str) -> int:
    return int(header.split("max-age=")[1].split(",")[0])


def test_product_page_carries_cache_headers_and_answers_304_to_its_etag(db_url):
    _seed(db_url).dispose()
    with _client(db_url) as client:
        resp = client.get("/v1/products/MUG-RED", params={"country": "US", "postal_code": "94107"})
        assert resp.status_code == 200
        body = resp.json()
        assert {"sku", "name", "price", "currency", "availability", "promise", "alternatives"} <= set(body)
        assert body["availability"] == "in_stock"
        assert set(body["promise"]) >= {"ship_by", "deliver_by", "provisional"}
        cc = resp.headers["cache-control"]
        assert "max-age=" in cc and "stale-while-revalidate=" in cc and "stale-if-error=" in cc
        assert resp.headers["vary"] == "Accept-Encoding"
        again = client.get("/v1/products/MUG-RED", params={"country": "US", "postal_code": "94107"},
                           headers={"If-None-Match": resp.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == resp.headers["etag"]


def test_ttl_is_minutes_with_plenty_of_stock_and_seconds_near_sell_out(db_url):
    _seed(db_url).dispose()
    with _client(db_url) as client:
        plenty = client.get("/v1/products/MUG-RED", params={"country": "US", "postal_code": "94107"})
        scarce = client.get("/v1/products/MUG-BLUE", params={"country": "US", "postal_code": "94107"})
    assert _max_age(plenty.headers["cache-control"]) >= 60
    assert scarce.json()["availability"] == "limited"
    assert _max_age(scarce.headers["cache-control"]) <= 5
    assert [a["sku"] for a in scarce.json()["alternatives"]] == ["MUG-RED", "PAN"]


def test_search_finds_words_by_prefix_and_pages_with_a_cursor(db_url):
    _seed(db_url).dispose()
    with _client(db_url) as client:
        first = client.get("/v1/products", params={"q": "mug", "limit": 1}).json()
        second = client.get("/v1/products", params={"q": "mug", "limit": 1, "cursor": first["next_cursor"]}).json()
        fry = client.get("/v1/products", params={"q": "fry"}).json()
        listing = client.get("/v1/products", params={"category": "kitchen", "limit": 20})
    assert [i["sku"] for i in first["items"]] == ["MUG-BLUE"] and first["next_cursor"]
    assert [i["sku"] for i in second["items"]] == ["MUG-RED"] and second["next_cursor"] is None
    assert [i["sku"] for i in fry["items"]] == ["PAN"]
    assert len(listing.json()["items"]) == 3 and "max-age=" in listing.headers["cache-control"]


def test_bad_input_is_a_422_naming_the_field(db_url):
    _seed(db_url).dispose()
    with _client(db_url) as client:
        for path, params, field in [("/v1/products/MUG-RED", {"country": "USA"}, "country"),
                                    ("/v1/products", {"limit": 0}, "limit"),
                                    ("/v1/products", {"cursor": "!!"}, "cursor")]:
            resp = client.get(path, params=params)
            assert resp.status_code == 422, (path, params)
            assert resp.json()["error"]["details"][0]["field"] == field
        unknown = client.get("/v1/products/NOPE", params={"country": "US"})
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"


def test_authenticated_and_checkout_answers_are_no_store(db_url):
    engine = _seed(db_url)
    _, admin = new_key(engine, "admin")
    engine.dispose()
    with _client(db_url) as client:
        stock = client.get("/v1/stock/MUG-RED", headers={"Authorization": f"Bearer {admin}"})
        checkout = client.post("/v1/checkouts", json={})
        bad_key = client.get("/v1/products/MUG-RED", params={"country": "US"},
                             headers={"Authorization": "Bearer nope"})
    assert stock.headers["cache-control"] == "no-store"
    assert checkout.headers["cache-control"] == "no-store"
    assert bad_key.status_code == 401 and bad_key.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_product_reads_go_to_the_read_replica_and_writes_never_do(db_url):
    """A second PostgreSQL database stands in for the standby: it holds another name for the same SKU."""
    from tests.conftest import _create_postgres_database, _drop_postgres_database

    from shopfloor.store.migrate import upgrade_database

    replica_url = _create_postgres_database()
    try:
        upgrade_database(replica_url)
        primary = _seed(db_url)
        _, admin = new_key(primary, "admin")
        replica = _seed(replica_url, names={"MUG-RED": ("Red mug (replica copy)", "kitchen")})
        with _client(db_url, read_database_url=replica_url) as client:
            page = client.get("/v1/products/MUG-RED", params={"country": "US", "postal_code": "94107"}).json()
            found = client.get("/v1/products", params={"q": "replica"}).json()
            put = client.put("/v1/skus/MUG-RED", headers={"Authorization": f"Bearer {admin}"},
                             json={"name": "Renamed", "category": "kitchen", "price": 1500, "currency": "USD"})
        assert page["name"] == "Red mug (replica copy)"
        assert [i["sku"] for i in found["items"]] == ["MUG-RED"]
        assert put.status_code == 200
        from sqlalchemy import select

        from shopfloor.store.tables import skus

        with primary.connect() as conn:
            assert conn.execute(select(skus.c.name).where(skus.c.sku == "MUG-RED")).scalar() == "Renamed"
        with replica.connect() as conn:
            assert conn.execute(select(skus.c.name).where(skus.c.sku == "MUG-RED")).scalar() == \
                "Red mug (replica copy)"
        primary.dispose()
        replica.dispose()
    finally:
        _drop_postgres_database(replica_url)


def test_static_assets_keep_their_own_caching(tmp_path):
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    from shopfloor.store.migrate import upgrade_database

    upgrade_database(url)
    with _client(url) as client:
        asset = client.get("/dashboard/static/dashboard/dashboard.css")
        health = client.get("/healthz")
    assert asset.status_code == 200 and "no-store" not in asset.headers.get("cache-control", "")
    assert health.headers["cache-control"] == "no-store"
