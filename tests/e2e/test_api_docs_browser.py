"""/docs in headless Chromium with every outside host unreachable: Swagger UI draws the operations and an
Authorize button from the server's own files."""

from __future__ import annotations

import time

import pytest

from shopfloor.runtime import ServerProcess
from shopfloor.store.migrate import upgrade_database
from tests.e2e.test_dashboard import _browser_or_skip, _driver

pytestmark = pytest.mark.slow


def test_the_api_docs_render_with_an_authorize_button_offline(tmp_path):
    _browser_or_skip()
    db_url = f"sqlite:///{tmp_path / 'docs.db'}"
    upgrade_database(db_url)
    server = ServerProcess(db_url, log_path=tmp_path / "server.log").start()
    driver = None
    try:
        from selenium.webdriver.common.by import By

        # every host name but the local server's is unresolvable: nothing may come from a CDN
        driver = _driver(tmp_path / "profile", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
        driver.get(server.url + "/docs")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not driver.find_elements(By.CSS_SELECTOR, ".opblock"):
            time.sleep(0.2)
        operations = driver.find_elements(By.CSS_SELECTOR, ".opblock")
        assert len(operations) >= 10, driver.page_source[:2000]
        assert driver.find_elements(By.CSS_SELECTOR, "button.authorize")
        assert any("/v1/checkouts" in op.text for op in operations)
    finally:
        if driver is not None:
            driver.quit()
        server.stop()
