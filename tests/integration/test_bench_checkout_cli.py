"""``shopfloor bench checkout``: the benchmark harness itself, on SQLite and PostgreSQL.

The benchmark's figures are only worth something if its correctness checks can fail, so these tests also show that
the store check finds a 201 whose order is missing, and that a store already holding orders is refused.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from typer.testing import CliRunner

from shopfloor.bootstrap import build_container
from shopfloor.cli.main import app
from shopfloor.config import Settings
from shopfloor.domain.stock import OrderLineRequest
from shopfloor.gameday import ensure_fresh_store, seed_bench_store, verify_store
from shopfloor.orders.checkout import PlaceOrder


def _wrk_or_skip() -> None:
    if shutil.which("wrk") is None:
        message = "the checkout benchmark needs wrk: apt-get install -y wrk"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def _place_one(db_url: str) -> str:
    c = build_container(Settings(database_url=db_url))
    try:
        res = c.services["buy_path"].checkout_service.place_order(PlaceOrder(
            "bench", "one-order", "h", (OrderLineRequest("SKU00001", 1),), "US", "94107", {"token": "tok_ok"}, {}))
    finally:
        c.close()
    assert res.status_code == 201
    return res.body["order_id"]


def test_checkout_benchmark_checks_every_201_against_the_store(db_url):
    _wrk_or_skip()
    result = CliRunner().invoke(app, ["bench", "checkout", "--seconds", "1", "--connections", "8",
                                      "--database-url", db_url, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    run, summary = out["runs"][0], out["summary"]
    assert summary["database"] == ("postgresql" if db_url.startswith("postgres") else "sqlite")
    assert run["checkout_statuses"].get("201", 0) > 0 and run["ceiling_rps"] > 0
    assert summary["median_ratio"] == pytest.approx(run["checkout_rps"] / run["ceiling_rps"], abs=1e-3)
    assert (summary["oversold"], summary["lost"], summary["duplicate_orders"], summary["unverified_201"]) == (0, 0, 0, 0)
    # every counted 201 is in the store; the extra orders are requests in flight when a phase ended (<= connections)
    assert 0 <= run["orders_without_counted_201"] <= 3 * 8
    assert run["hot_sku_sold"] <= run["hot_sku_units"]
    # the server's own CPU is measured per phase: a busy server spends some of a core, and a checkout costs it
    # more CPU than a health check
    assert 0 < run["checkout_server_cores_busy"] <= 1.5 and 0 < run["ceiling_server_cores_busy"] <= 1.5
    assert run["checkout_server_cpu_us_per_request"] > run["ceiling_server_cpu_us_per_request"] > 0
    assert summary["median_checkout_server_cpu_us_per_request"] == run["checkout_server_cpu_us_per_request"]
    # The checkout phase's CPU split by OS thread name: the event loop and the group-commit writer are named.
    split = run["checkout_server_cpu_us_by_thread"]
    assert {"main (event loop)", "checkout-writer"} <= set(split), split
    assert sum(split.values()) <= run["checkout_server_cpu_us_per_request"] * 1.05 + 50
    assert summary["median_checkout_server_cpu_us_by_thread"] == split


def test_store_check_counts_a_201_without_its_order_as_lost(db_url):
    seed_bench_store(db_url, 5, 10)
    real = _place_one(db_url)
    checks = verify_store(db_url, [real, "ord_never_written"])
    assert checks["lost"] == 1 and checks["orders_in_db"] == 1
    assert verify_store(db_url, [real])["lost"] == 0


def test_a_store_that_already_holds_orders_is_refused(db_url):
    seed_bench_store(db_url, 5, 10)
    ensure_fresh_store(db_url)  # seeded but no orders yet: fine
    _place_one(db_url)
    with pytest.raises(ValueError, match="already holds 1 orders"):
        ensure_fresh_store(db_url)


def test_cli_rejects_several_runs_on_one_database_and_unknown_databases():
    runner = CliRunner()
    r = runner.invoke(app, ["bench", "checkout", "--runs", "2", "--database-url", "sqlite:///x.db"])
    assert r.exit_code == 2 and "--database-url takes one run" in r.output
    r = runner.invoke(app, ["bench", "checkout", "--database-url", "mysql://root@localhost/x"])
    assert r.exit_code == 2 and "unsupported database 'mysql'" in r.output
    r = runner.invoke(app, ["bench", "checkout", "--connections", "0"])
    assert r.exit_code == 2 and "--connections" in r.output


def test_an_unreachable_benchmark_database_is_one_line_without_its_password():
    _wrk_or_skip()
    r = CliRunner().invoke(app, ["bench", "checkout", "--seconds", "1",
                                 "--database-url", "postgresql://postgres:s3cret@127.0.0.1:1/x"])
    assert r.exit_code == 2 and "database_url" in r.output
    assert "s3cret" not in r.output and "Traceback" not in r.output
