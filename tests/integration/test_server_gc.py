"""The server sets its garbage collector's youngest-generation threshold at start-up (SHOPFLOOR_SERVER_GC_GEN0_THRESHOLD):
rarer young collections walk the in-flight requests' objects less often."""

from __future__ import annotations

import gc

import pytest
from fastapi.testclient import TestClient

from shopfloor.api.app import create_app
from shopfloor.bootstrap import build_container
from shopfloor.config import Settings
from shopfloor.store.migrate import upgrade_database


@pytest.fixture
def restore_gc():
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


@pytest.mark.parametrize("gen0", [10_000, 2_500])
def test_the_server_collects_its_youngest_generation_at_the_configured_threshold(tmp_path, restore_gc, gen0):
    url = f"sqlite:///{tmp_path / 'gc.db'}"
    upgrade_database(url)
    gc.set_threshold(700, 10, 10)
    app = create_app(build_container(Settings(database_url=url, server_gc_gen0_threshold=gen0)))
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_threshold() == (gen0, 10, 10)


def test_a_threshold_of_zero_leaves_pythons_setting_alone(tmp_path, restore_gc):
    url = f"sqlite:///{tmp_path / 'gc.db'}"
    upgrade_database(url)
    gc.set_threshold(1234, 10, 10)
    app = create_app(build_container(Settings(database_url=url, server_gc_gen0_threshold=0)))
    with TestClient(app):
        assert gc.get_threshold() == (1234, 10, 10)


@pytest.fixture
def restore_switch_interval():
    import sys

    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


@pytest.mark.parametrize("ms,expected_s", [(0.5, 0.0005), (0.0, 0.005)])
def test_the_server_sets_its_gil_switch_interval_when_configured(tmp_path, restore_gc, restore_switch_interval, ms,
                                                                  expected_s):
    import sys

    url = f"sqlite:///{tmp_path / 'gc.db'}"
    upgrade_database(url)
    sys.setswitchinterval(0.005)
    app = create_app(build_container(Settings(database_url=url, server_switch_interval_ms=ms)))
    with TestClient(app):
        assert sys.getswitchinterval() == pytest.approx(expected_s)
