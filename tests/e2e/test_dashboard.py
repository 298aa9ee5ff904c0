"""The dashboard in a real browser: a running store (server + worker on SQLite) seeded over HTTP like a storefront,
warehouses and carriers would, then headless Chromium logs in through the form and every panel must draw data.

Needs the Debian packages ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them). Without them the test
skips locally and fails under CI (``CI=true``). Screenshots go to a temp dir; set ``SHOPFLOOR_DOCS_SCREENSHOT=1`` to
also refresh ``docs/img/dashboard.png``.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from shopfloor.runtime import ServerProcess, WorkerProcess
from shopfloor.store.engine import make_engine
from shopfloor.store.keys import create_api_key
from shopfloor.store.migrate import upgrade_database

pytestmark = pytest.mark.slow

TABLE_PANELS = {"funnel", "payments", "inventory", "fulfillment", "promise", "plans", "alerts", "cache"}
PANELS = ("traffic", "funnel", "checkout", "payments", "inventory", "fulfillment", "promise", "plans", "alerts",
          "cache")


def _edge_logs(edge_dir) -> None:
    """What two edge nodes and the shield logged over the last minutes (the access-log format of the template)."""
    import time

    now = time.time()
    for node, statuses in (("edge-a", ["HIT"] * 9 + ["MISS"]), ("edge-b", ["HIT"] * 8 + ["STALE", "MISS"]),
                           ("shield", ["MISS", "HIT"])):
        (edge_dir / node).mkdir(parents=True)
        lines = [f'{now - 120 + i:.3f} "GET /v1/products/SKU-00{i % 5}?country=US" 200 {st} 0.001 "-" "shopper" '
                 'purge=0' for i, st in enumerate(statuses)]
        (edge_dir / node / "access.log").write_text("\n".join(lines) + "\n")
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "dashboard.png"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

RULES = """\
rules:
  - name: checkout_watch
    description: Always holds in this test, so the action log and the alert list get entries.
    when: open_alerts >= 0
    cooldown: 1h
    actions:
      - type: alert
        channel: log
        message: Checkout watch fired (end-to-end test rule).
"""

WAREHOUSES = {
    "wh-east": {"region": "us-east", "country": "US", "postal_prefixes": ["0", "1", "2"]},
    "wh-west": {"region": "us-west", "country": "US", "postal_prefixes": ["8", "9"]},
}
SKUS = {f"SKU-{i:03d}": 1000 + 250 * i for i in range(1, 7)}
SCARCE = "SKU-006"
DESTINATIONS = [("US", "10001"), ("US", "94107"), ("US", "60601"), ("US", "02134"), ("US", "98101")]


def _browser_or_skip():
    missing = [name for name, path in (("chromium", CHROMIUM), ("chromium-driver", CHROMEDRIVER)) if not path]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[dev]')")
    if missing:
        message = (f"dashboard e2e needs {', '.join(missing)}: "
                   "apt-get install -y chromium chromium-driver; pip install selenium")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def _driver(profile: Path, *extra_flags: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--window-size=1500,2600", *extra_flags):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def _seed(client: httpx.Client, admin: dict, shop: dict) -> list[str]:
    """Catalog, stock and checkouts; returns the ids of the orders placed."""
    for wid, body in WAREHOUSES.items():
        client.put(f"/v1/warehouses/{wid}", json=body, headers=admin).raise_for_status()
    for sku, price in SKUS.items():
        client.put(f"/v1/skus/{sku}", json={"name": f"Item {sku}", "category": "general", "price": price,
                                           "currency": "USD"}, headers=admin).raise_for_status()
        for wid in WAREHOUSES:
            on_hand = 2 if sku == SCARCE else 60
            client.put(f"/v1/stock/{sku}/{wid}", json={"on_hand": on_hand}, headers=admin).raise_for_status()

    orders = []
    skus = [s for s in SKUS if s != SCARCE]
    for i in range(36):
        lines = [{"sku": skus[i % len(skus)], "qty": 1 + i % 2}]
        if i < 4:
            lines = [{"sku": SCARCE, "qty": 1}]  # sells the scarce SKU out: a stock risk for the plan
        country, postal = DESTINATIONS[i % len(DESTINATIONS)]
        r = client.post("/v1/checkouts", headers={**shop, "Idempotency-Key": uuid.uuid4().hex},
                        json={"lines": lines, "ship_to": {"country": country, "postal_code": postal},
                              "payment": {"token": "tok_ok"}})
        assert r.status_code in (201, 402, 409), r.text
        if r.status_code == 201:
            orders.append(r.json()["order_id"])
    assert len(orders) >= 24, f"only {len(orders)} checkouts succeeded"
    return orders


def _backdate_orders(db_url: str) -> None:
    """Spread the orders over the last week. The restock plan learns demand from complete past days only, and a
    store cannot place yesterday's orders over HTTP today, so this one step writes to the database directly."""
    from sqlalchemy import select, update

    from shopfloor.store.tables import orders

    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            rows = conn.execute(select(orders.c.id, orders.c.created_at).order_by(orders.c.id)).all()
            for i, row in enumerate(rows):
                conn.execute(update(orders).where(orders.c.id == row.id)
                             .values(created_at=row.created_at - timedelta(days=1 + i % 7)))
    finally:
        engine.dispose()


def _feed(client: httpx.Client, shop: dict, ingest: dict, orders: list[str]) -> None:
    """Storefront beacons and a fulfillment feed."""
    now = datetime.now(timezone.utc)
    beacons = ([("page_view", 400)] * 3 + [("product_view", 300)] * 2 + [("add_to_cart", 80)]
               + [("checkout_started", 120)])
    events = [{"type": kind, "page_load_ms": ms + 10 * i, "at": (now - timedelta(seconds=i)).isoformat()}
              for i in range(20) for kind, ms in beacons]
    client.post("/v1/events/storefront", json={"events": events}, headers=shop).raise_for_status()

    # Fulfillment feed: orders from the past two weeks with full journeys (delays and transit per lane), and the
    # orders just placed, delivered now (promise accuracy: delivered vs the promise recorded at checkout).
    feed = []
    carriers = ["ups", "fedex"]
    for i in range(30):
        wid = list(WAREHOUSES)[i % 2]
        country, postal = DESTINATIONS[i % len(DESTINATIONS)]
        placed = now - timedelta(days=14) + timedelta(hours=9 * i)
        steps = [("approved", 0.5), ("picked", 4 + i % 5), ("packed", 6 + i % 7), ("handed_to_carrier", 20 + i % 9),
                 ("delivered", 20 + i % 9 + 30 + 6 * (i % 4))]
        for kind, hours in steps:
            at = placed + timedelta(hours=hours)
            if at < now:
                feed.append({"event_id": f"hist-{i}-{kind}", "order_id": f"hist-{i}", "type": kind,
                             "at": at.isoformat(), "warehouse": wid, "carrier": carriers[i % 2],
                             "country": country, "postal_code": postal, "placed_at": placed.isoformat()})
    for j, order_id in enumerate(orders[:16]):
        country, postal = DESTINATIONS[j % len(DESTINATIONS)]
        for kind in ("approved", "packed", "handed_to_carrier", "delivered"):
            feed.append({"event_id": f"{order_id}-{kind}", "order_id": order_id, "type": kind, "at": now.isoformat(),
                         "warehouse": list(WAREHOUSES)[j % 2], "carrier": carriers[j % 2], "country": country,
                         "postal_code": postal})
    r = client.post("/v1/fulfillment/events", json={"events": feed}, headers=ingest)
    assert r.status_code == 200 and r.json()["accepted"] == len(feed), r.text


# What the page draws, read in one round trip each: the health strip, and every drawn chart's axes.
HEALTH_JS = """
const h = document.getElementById('health');
return {level: h.dataset.level, verdict: h.querySelector('.verdict').textContent,
        tiles: Array.from(h.querySelectorAll('.tile')).map((t) => ({signal: t.dataset.signal, level: t.dataset.level,
          value: t.querySelector('.value').textContent, ctx: t.querySelector('.ctx').textContent,
          href: t.getAttribute('href')}))};"""
AXES_JS = """
const out = {};
for (const el of document.querySelectorAll('.panel[data-panel]')) {
  const c = Chart.getChart(el.querySelector('canvas'));
  if (!c || el.dataset.state !== 'ready') continue;
  out[el.dataset.panel] = Object.values(c.scales).filter((s) => s.options.display !== false)
    .map((s) => ({id: s.id, title: s.options.title && s.options.title.display ? s.options.title.text : null}));
}
return out;"""
SIGNALS = ["checkout", "conversion", "traffic", "sold_out", "payments", "feeds", "alerts"]
TIME_AXIS_PANELS = {"traffic", "checkout", "plans", "cache", "alerts"}


def _console_errors(driver) -> list[dict]:
    """The browser console's errors since the last call (a failed request, a script error). The login page's own
    refusal (401 for a wrong key) is an answer, not an error of the page."""
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"
            and not ("/dashboard/login" in e["message"] and "401" in e["message"])]


def _assert_axes_are_labelled(driver) -> dict:
    """Every axis of every drawn chart says what it measures, and time axes say they are UTC."""
    axes = driver.execute_script(AXES_JS)
    for panel, scales in axes.items():
        for scale in scales:
            assert scale["title"], f"panel {panel}: axis {scale['id']} has no title ({scales})"
        if panel in TIME_AXIS_PANELS:
            x = [s for s in scales if s["id"] == "x"]
            assert x and "UTC" in x[0]["title"], f"panel {panel}: the time axis does not say UTC ({scales})"
    return axes


def _assert_fits(driver, width: int) -> None:
    """At ``width`` px nothing sticks out sideways: no horizontal scroll, every panel and chart inside the window."""
    driver.set_window_size(width, 1400)
    time.sleep(0.8)  # Chart.js redraws on resize
    fit = driver.execute_script(
        "const w = document.documentElement.clientWidth; const out = {w, scroll: document.documentElement.scrollWidth,"
        " over: []}; for (const el of document.querySelectorAll('.panel, .health .tile, canvas')) {"
        " const r = el.getBoundingClientRect(); if (r.width && r.right > w + 1) out.over.push(el.id || el.className"
        " || el.tagName); } return out;")
    assert fit["scroll"] <= fit["w"] and not fit["over"], f"at {width} px: {fit}"


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def test_every_dashboard_panel_renders_live_data_in_headless_chromium(tmp_path):
    _browser_or_skip()
    from selenium.webdriver.common.by import By

    db_url = f"sqlite:///{tmp_path / 'shop.db'}"
    upgrade_database(db_url)
    engine = make_engine(db_url)
    now = datetime.now(timezone.utc)
    _, admin_key = create_api_key(engine, ["admin"], "e2e-admin", now)
    _, shop_key = create_api_key(engine, ["storefront"], "e2e-shop", now)
    _, ingest_key = create_api_key(engine, ["ingest"], "e2e-feed", now)
    engine.dispose()
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    env = {"SHOPFLOOR_DATA_DIR": str(tmp_path / "var"), "SHOPFLOOR_TOWER_BEACON_FLUSH_S": "0",
           "SHOPFLOOR_DASHBOARD_REFRESH_S": "1", "SHOPFLOOR_TOWER_RULES_FILE": str(rules),
           "SHOPFLOOR_TOWER_RULES_INTERVAL_S": "1",
           # A week of history is thin for the demand model: a lower threshold lists the sold-out SKU at risk.
           "SHOPFLOOR_RESTOCK_RISK_THRESHOLD": "0.1", "SHOPFLOOR_EDGE_DIR": str(tmp_path / "edge")}
    _edge_logs(tmp_path / "edge")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    server = ServerProcess(db_url, env=env, log_path=tmp_path / "server.log").start()
    worker = WorkerProcess(db_url, env=env, log_path=tmp_path / "worker.log").start()
    driver = None
    try:
        admin = {"Authorization": f"Bearer {admin_key}"}
        with httpx.Client(base_url=server.url, timeout=30) as client:
            shop = {"Authorization": f"Bearer {shop_key}"}
            orders = _seed(client, admin, shop)
            _backdate_orders(db_url)
            _feed(client, shop, {"Authorization": f"Bearer {ingest_key}"}, orders)
            _wait_for(lambda: client.get("/v1/tower/actions", headers=admin).json()["actions"], 30,
                      "the worker's rules run to log an action")
            # The server writes its per-minute request counts (the traffic panel's data) from a request that
            # finds them 2 s old; on a fast machine the seeding can be over sooner, so one more request flushes them.
            time.sleep(2.2)
            client.get("/v1/tower/actions", headers=admin).raise_for_status()

        driver = _driver(tmp_path / "chromium-profile")
        driver.set_page_load_timeout(30)
        driver.get(server.url + "/dashboard")
        assert driver.current_url.endswith("/dashboard/login"), driver.current_url
        driver.find_element(By.ID, "key").send_keys("sf_wrong_key")
        driver.find_element(By.ID, "login-submit").click()
        # The click starts a navigation that may not have finished when it returns: wait for the refusal page.
        refusal = _wait_for(lambda: driver.find_elements(By.ID, "login-error"), 10, "the refusal notice")
        assert "not valid" in refusal[0].text
        driver.find_element(By.ID, "key").send_keys(admin_key)
        driver.find_element(By.ID, "login-submit").click()
        _wait_for(lambda: driver.current_url.endswith("/dashboard"), 10, "the redirect to the dashboard")
        cookie = driver.get_cookie("shopfloor_dashboard")
        assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict"

        def panels() -> dict:
            # One round trip for every panel's state and what it drew (the page sets these attributes).
            return driver.execute_script(
                "const out = {}; for (const el of document.querySelectorAll('.panel[data-panel]')) {"
                " out[el.dataset.panel] = {state: el.dataset.state, points: Number(el.dataset.points || 0),"
                " rows: Number(el.dataset.rows || 0)}; } return out;")

        seen: dict = {}

        def all_ready():
            seen.update(panels())
            return set(seen) == set(PANELS) and all(v["state"] == "ready" for v in seen.values())

        try:
            # The traffic panel draws complete minutes only, so it stays empty until the wall clock leaves the
            # minute the seeding traffic was recorded in: up to a minute plus the rollup flush, whatever the load.
            _wait_for(all_ready, 100, "every panel to be ready")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; panels seen: {seen}") from None
        finally:
            driver.save_screenshot(str(shots / "dashboard-first-render.png"))
        for p, drawn in seen.items():
            assert drawn["state"] == "ready", (p, seen)
            assert drawn["points"] > 0, f"panel {p} has no chart data: {drawn}"
            if p in TABLE_PANELS:
                assert drawn["rows"] > 0, f"panel {p} has an empty table: {drawn}"
        assert int(driver.find_element(By.ID, "panel-inventory").get_attribute("data-rows")) >= 3  # 2 feeds + risk
        risk_text = driver.find_element(By.ID, "panel-inventory").text
        assert "SKU-006" in risk_text, "the sold-out SKU is not listed at stock risk"
        assert "Checkout watch fired" in driver.find_element(By.ID, "panel-alerts").text

        # Live refresh: new beacons show up without a reload.
        funnel = driver.find_element(By.ID, "panel-funnel")
        before = funnel.text
        refreshed = int(driver.find_element(By.TAG_NAME, "body").get_attribute("data-refreshed") or 0)
        httpx.post(server.url + "/v1/events/storefront", headers={"Authorization": f"Bearer {shop_key}"},
                   json={"events": [{"type": "page_view"}] * 500}, timeout=30).raise_for_status()
        _wait_for(lambda: int(driver.find_element(By.TAG_NAME, "body").get_attribute("data-refreshed")) > refreshed + 1
                  and funnel.text != before, 20, "the funnel to refresh with the new page views")

        # The health strip sums every panel up: one tile per signal, each with a level and a link to its panel.
        health = _wait_for(lambda: (h := driver.execute_script(HEALTH_JS))["level"] != "wait" and h, 20,
                           "the health strip")
        assert [t["signal"] for t in health["tiles"]] == SIGNALS, health
        for tile in health["tiles"]:
            assert tile["level"] in ("ok", "warn", "bad"), tile  # every panel has data, so no tile says "no data"
            assert tile["ctx"] and driver.find_elements(By.CSS_SELECTOR, tile["href"]), tile
        tiles = {t["signal"]: t for t in health["tiles"]}
        assert tiles["checkout"]["value"].endswith("%") and "failed" in tiles["checkout"]["ctx"]
        assert tiles["payments"] == {**tiles["payments"], "level": "ok", "value": "normal"}  # no failover here
        assert tiles["feeds"]["value"] == "0 of 2 stale", tiles["feeds"]
        # The rule fired a minute ago: the alert shows on its tile and the verdict says to watch it.
        assert tiles["alerts"]["level"] == "warn" and "Checkout watch fired" in tiles["alerts"]["ctx"]
        assert health["verdict"].startswith(("Watch:", "Needs attention:")) and "alerts" in health["verdict"]
        assert driver.find_element(By.ID, "updated").text.endswith(" UTC")

        axes = _assert_axes_are_labelled(driver)
        assert TIME_AXIS_PANELS - {"cache"} <= set(axes), axes  # the time charts were drawn and checked
        # Payment outcomes are coloured by meaning: approved green, and no other outcome in that green.
        colours = driver.execute_script("return Chart.getChart(document.querySelector('#panel-payments canvas'))"
                                        ".data.datasets.map((d) => [d.label, d.backgroundColor]);")
        assert ["approved", "#16a34a"] in colours, colours
        assert all(c != "#16a34a" for label, c in colours if label != "approved"), colours
        # The traffic panel puts the last 15 minutes next to their forecast and shows the server errors.
        traffic = driver.find_element(By.ID, "panel-traffic").text
        assert "forecast for those minutes" in traffic and "5xx errors, last 15 min" in traffic
        assert "same hour yesterday" in driver.find_element(By.ID, "panel-checkout").text
        assert not _console_errors(driver)

        _assert_fits(driver, 800)
        driver.save_screenshot(str(shots / "dashboard-800.png"))
        driver.set_window_size(1500, 1400)
        time.sleep(0.5)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1500, min(int(height) + 40, 6000))  # the whole page in one screenshot
        time.sleep(0.5)
        driver.save_screenshot(str(shots / "dashboard.png"))
        if os.environ.get("SHOPFLOOR_DOCS_SCREENSHOT") == "1":
            DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shots / "dashboard.png", DOCS_SCREENSHOT)
        assert (shots / "dashboard.png").stat().st_size > 20_000

        driver.find_element(By.ID, "logout").click()
        _wait_for(lambda: driver.current_url.endswith("/dashboard/login"), 10, "logout")
        driver.get(server.url + "/dashboard")
        assert driver.current_url.endswith("/dashboard/login")
    finally:
        if driver is not None:
            driver.quit()
        worker.stop()
        server.stop()
        log = (tmp_path / "server.log").read_text(errors="replace") if (tmp_path / "server.log").exists() else ""
        assert admin_key not in log, "the admin key appeared in the server log"


def test_an_empty_store_dashboard_explains_every_panel_and_says_there_is_no_traffic_yet(tmp_path):
    """A new store: every panel says why it is empty (not a blank chart), the health strip does not call an idle
    store healthy, the payments panel explains its missing chart, and the console stays clean."""
    _browser_or_skip()
    from selenium.webdriver.common.by import By

    db_url = f"sqlite:///{tmp_path / 'shop.db'}"
    upgrade_database(db_url)
    engine = make_engine(db_url)
    _, admin_key = create_api_key(engine, ["admin"], "e2e-admin", datetime.now(timezone.utc))
    engine.dispose()
    server = ServerProcess(db_url, env={"SHOPFLOOR_DATA_DIR": str(tmp_path / "var"),
                                        "SHOPFLOOR_EDGE_DIR": str(tmp_path / "edge")},
                           log_path=tmp_path / "server.log").start()
    driver = None
    try:
        driver = _driver(tmp_path / "chromium-profile", "--window-size=1400,1000")
        driver.set_page_load_timeout(30)
        driver.get(server.url + "/dashboard/login")
        driver.find_element(By.ID, "key").send_keys(admin_key)
        driver.find_element(By.ID, "login-submit").click()
        _wait_for(lambda: driver.current_url.endswith("/dashboard"), 10, "the redirect to the dashboard")
        states = _wait_for(lambda: (s := driver.execute_script(
            "const out = {}; for (const el of document.querySelectorAll('.panel[data-panel]')) {"
            " out[el.dataset.panel] = {state: el.dataset.state, text: el.querySelector('.empty').textContent,"
            " shown: el.querySelector('.empty').offsetParent !== null}; } return out;"))
            and all(v["state"] != "loading" for v in s.values()) and s, 60, "every panel to load")
        driver.save_screenshot(str(tmp_path / "dashboard-empty.png"))
        assert set(states) == set(PANELS), states
        for name, panel in states.items():
            if name == "payments":  # the configured processors are listed from the start
                assert panel["state"] == "ready", panel
                continue
            assert panel["state"] == "empty" and panel["shown"], (name, panel)
            prefix, _, why = panel["text"].partition(": ")
            assert prefix == ("all quiet" if name == "alerts" else "no data yet") and len(why) > 10, (name, panel)
        payments = driver.find_element(By.ID, "panel-payments").text
        assert "no authorizations counted" in payments and "failover" in payments

        health = driver.execute_script(HEALTH_JS)
        assert [t["signal"] for t in health["tiles"]] == SIGNALS
        levels = {t["signal"]: t["level"] for t in health["tiles"]}
        assert levels == {"checkout": "idle", "conversion": "idle", "traffic": "idle", "sold_out": "idle",
                          "payments": "ok", "feeds": "idle", "alerts": "ok"}, health
        assert health["level"] == "idle" and health["verdict"].startswith("No traffic yet"), health
        assert not _console_errors(driver)
        _assert_fits(driver, 800)
    finally:
        if driver is not None:
            driver.quit()
        server.stop()
