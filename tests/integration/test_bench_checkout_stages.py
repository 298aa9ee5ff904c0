"""Smoke test of bench/checkout_stages.py: every variant really runs its stages and places durable orders."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

from shopfloor.store.tables import orders

BENCH = Path(__file__).resolve().parents[2] / "bench" / "checkout_stages.py"


def _load():
    spec = importlib.util.spec_from_file_location("checkout_stages", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_stages_run_each_variant_and_compare_against_the_order_path(tmp_path, monkeypatch):
    mod = _load()
    url = f"sqlite:///{tmp_path / 'stages.db'}"
    # run_once sets these for the container it builds; monkeypatch restores them afterwards.
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", url)
    monkeypatch.setenv("SHOPFLOOR_PAYMENTS_SIM_FAULTS", "{}")
    out = mod.run_once(url, checkouts=40, concurrency=8, n_skus=20)
    assert list(out["variants"]) == list(mod.VARIANTS)
    assert out["variants"]["order"]["ratio_cpu"] == 1.0
    for v in out["variants"].values():
        assert v["cpu_us_per_checkout"] > 0 and v["checkouts_per_s"] > 0
    engine = create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(orders)).scalar()
        statuses = dict(conn.execute(select(orders.c.status, func.count()).group_by(orders.c.status)).all())
        with_promise = sum(1 for (p,) in conn.execute(select(orders.c.promise)) if p)
    engine.dispose()
    # 4 variants x (warm-up 40 + measured 40): the payment variants' orders are authorized, the others pending.
    assert n == 4 * 80
    assert statuses == {"payment_pending": 160, "authorized": 160}
    assert with_promise == 160  # order+promise and full


def test_stubbed_externals_skip_the_simulators_but_still_settle_every_order(tmp_path, monkeypatch):
    mod = _load()
    url = f"sqlite:///{tmp_path / 'stages.db'}"
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", url)
    monkeypatch.setenv("SHOPFLOOR_PAYMENTS_SIM_FAULTS", "{}")
    out = mod.run_once(url, checkouts=40, concurrency=8, n_skus=20, stub_externals=True)
    assert out["stub_externals"] is True
    engine = create_engine(url)
    with engine.connect() as conn:
        statuses = dict(conn.execute(select(orders.c.status, func.count()).group_by(orders.c.status)).all())
        quotes = [s for (s,) in conn.execute(select(orders.c.shipping)) if s]
    engine.dispose()
    assert statuses == {"payment_pending": 160, "authorized": 160}
    assert quotes and all(q["carrier"] == "stubcarrier" for q in quotes)
    gateway = create_engine(f"sqlite:///{tmp_path / 'stages.db'}-gateway.db")
    with gateway.connect() as conn:  # the simulated processor's ledger saw no authorization
        assert conn.execute(text("SELECT count(*) FROM sim_gateway_charges")).scalar() == 0
    gateway.dispose()
