"""The statistical forecasting path runs unchanged on a Dask LocalCluster through statsforecast's fugue backend."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from shopfloor.forecast import forecast_demand
from tests.support.ci import skip_or_fail

try:  # both come with the dev extra, which CI installs: there a missing one fails the run instead of skipping it
    import distributed
    import fugue  # noqa: F401
except ImportError as exc:
    skip_or_fail(f"the Dask tests need dask[distributed] and fugue (pip install -e '.[dev]'): {exc}",
                 allow_module_level=True)


def _panel(n_series=4, n_days=90):
    rng = np.random.default_rng(7)
    days = pd.date_range("2024-01-01", periods=n_days, freq="D")
    return pd.concat(
        [pd.DataFrame({"unique_id": f"sku{i}/east", "ds": days, "y": rng.poisson(1 + i, n_days).astype(float)})
         for i in range(n_series)],
        ignore_index=True,
    )


def test_dask_cluster_forecast_matches_the_local_one():
    panel = _panel()
    local = forecast_demand(panel, 7, model="tsb+snaive")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            remote = forecast_demand(panel, 7, model="tsb+snaive", dask_client=client)
    pd.testing.assert_frame_equal(
        local.sort_values(["unique_id", "ds"]).reset_index(drop=True),
        remote.sort_values(["unique_id", "ds"]).reset_index(drop=True),
        check_dtype=False,
    )


def _priced_panel(n_series=8, n_days=200):
    rng = np.random.default_rng(11)
    days = pd.date_range("2024-01-01", periods=n_days, freq="D")
    frames = []
    for i in range(n_series):
        lam = (2.0 + i) * (1.0 + 0.5 * np.sin(2 * np.pi * np.arange(n_days) / 7))
        frames.append(pd.DataFrame({"unique_id": f"sku{i}", "ds": days, "y": rng.poisson(lam).astype(float),
                                    "price": 2.0 + i, "event": (days.dayofyear % 40 == 0).astype(int)}))
    return pd.concat(frames, ignore_index=True)


def test_the_lightgbm_members_train_on_the_dask_cluster_and_forecast_like_the_local_ones():
    from dataclasses import replace

    from shopfloor.forecast import ForecastConfig, LGBMConfig
    from shopfloor.forecast import models as models_module

    panel = _priced_panel()
    last = panel["ds"].max()
    future = pd.DataFrame([(u, last + pd.Timedelta(days=k), 2.0 + int(u[3:]), 0)
                           for u in panel["unique_id"].unique() for k in range(1, 15)],
                          columns=["unique_id", "ds", "price", "event"])
    cfg = ForecastConfig(lgbm=LGBMConfig(n_estimators=40, num_leaves=7, min_child_samples=5, train_days=150))
    calls = []
    original = models_module._dask_lgbm

    def spy(*args, **kwargs):
        calls.append(args[-1])
        return original(*args, **kwargs)

    models_module._dask_lgbm = spy
    try:
        local = forecast_demand(panel, 14, future, model="lgbm+lgbm_direct7+ets", config=cfg)
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                      dashboard_address=None) as cluster:
            with distributed.Client(cluster) as client:
                remote = forecast_demand(panel, 14, future, model="lgbm+lgbm_direct7+ets", config=cfg,
                                         dask_client=client)
                assert calls and all(c is client for c in calls)  # lgbm, and lgbm_direct7's two direct models
    finally:
        models_module._dask_lgbm = original
    assert len(calls) == 3
    assert remote.attrs["fallbacks"] == {}
    both = local.merge(remote, on=["unique_id", "ds"], suffixes=("_local", "_dask"))
    assert len(both) == len(local) == 8 * 14
    # Different row sampling and data partitioning: close, not identical.
    per_series = both.groupby("unique_id")[["mean_local", "mean_dask"]].mean()
    assert np.allclose(per_series["mean_dask"], per_series["mean_local"], rtol=0.25, atol=0.5)
    assert (remote["mean"] > 0).all()


def test_forecast_command_runs_on_the_cluster_named_by_dask_scheduler(tmp_path):
    from typer.testing import CliRunner

    from shopfloor.cli.main import app

    panel = _priced_panel(n_series=4, n_days=120)
    hist = tmp_path / "history.parquet"
    panel.to_parquet(hist)
    out = tmp_path / "fc.parquet"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None,
                                  scheduler_port=0) as cluster:
        res = CliRunner().invoke(app, ["forecast", "--history", str(hist), "--horizon", "7", "--out", str(out),
                                       "--model", "lgbm+tsb", "--dask-scheduler", cluster.scheduler_address,
                                       "--json"])
        assert res.exit_code == 0, res.output
        summary, _ = json.JSONDecoder().raw_decode(res.output[res.output.index('{\n  "out"'):])
        assert summary["dask_scheduler"] == cluster.scheduler_address
        # the work ran on the cluster's workers
        assert cluster.scheduler.transition_counter > 0
    fc = pd.read_parquet(out)
    assert len(fc) == 4 * 7 and (fc["mean"] >= 0).all()


def test_an_unreachable_dask_scheduler_is_a_clean_error(tmp_path):
    from typer.testing import CliRunner

    from shopfloor.cli.main import app

    hist = tmp_path / "history.parquet"
    _priced_panel(n_series=2, n_days=60).to_parquet(hist)
    res = CliRunner().invoke(app, ["forecast", "--history", str(hist), "--horizon", "7", "--out",
                                   str(tmp_path / "fc.parquet"), "--dask-scheduler", "tcp://127.0.0.1:9"])
    assert res.exit_code != 0
    assert "--dask-scheduler" in res.output and "Traceback" not in res.output


def test_the_multi_horizon_lightgbm_trains_on_the_dask_cluster():
    import lightgbm as lgb

    from shopfloor.forecast import ForecastConfig
    from shopfloor.forecast.horizon_lgbm import HorizonLGBMConfig

    panel = _priced_panel(n_series=6, n_days=300)
    cfg = ForecastConfig(mh=HorizonLGBMConfig(n_estimators=40, min_child_samples=20))
    local = forecast_demand(panel, 14, model="lgbm_mh", config=cfg)
    fitted = []
    original = lgb.DaskLGBMRegressor.fit

    def spy(self, *args, **kwargs):
        fitted.append(self.client)
        return original(self, *args, **kwargs)

    lgb.DaskLGBMRegressor.fit = spy
    try:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                      dashboard_address=None) as cluster:
            with distributed.Client(cluster) as client:
                remote = forecast_demand(panel, 14, model="lgbm_mh", config=cfg, dask_client=client)
                assert fitted == [client]
    finally:
        lgb.DaskLGBMRegressor.fit = original
    assert remote.attrs["fallbacks"] == {}
    both = local.merge(remote, on=["unique_id", "ds"], suffixes=("_local", "_dask"))
    per_series = both.groupby("unique_id")[["mean_local", "mean_dask"]].mean()
    assert np.allclose(per_series["mean_dask"], per_series["mean_local"], rtol=0.25, atol=0.5)


def test_every_member_of_the_default_runs_on_the_dask_cluster():
    import lightgbm as lgb

    from shopfloor.forecast import DEFAULT_MODEL, ForecastConfig, LGBMConfig
    from shopfloor.forecast import models as models_module
    from shopfloor.forecast.demand import DEPT_PATTERN, STORE_PATTERN
    from shopfloor.forecast.horizon_lgbm import HorizonLGBMConfig
    from shopfloor.forecast.models import parse_spec

    members = parse_spec(DEFAULT_MODEL)
    panel = _priced_panel(n_series=6, n_days=300)
    small = dict(n_estimators=30, min_child_samples=20)
    cfg = ForecastConfig(lgbm=LGBMConfig(n_estimators=30, num_leaves=7, min_child_samples=5, train_days=150),
                         mh=HorizonLGBMConfig(**small),
                         rel=HorizonLGBMConfig(normalise=True, origin_days=200, bags=2, **small),
                         rel_recent=HorizonLGBMConfig(normalise=True, recent=True, origin_days=200, bags=2, **small),
                         # one model per series ("sku0" -> group "sku0"): six grouped fits; per department (no
                         # match in these ids): one pooled fit
                         tw_store=HorizonLGBMConfig(origin_days=200, draws_per_origin_day=2, min_group_series=1,
                                                    group_pattern=STORE_PATTERN, **small),
                         tw_dept=HorizonLGBMConfig(origin_days=200, draws_per_origin_day=2, min_group_series=1,
                                                   group_pattern=DEPT_PATTERN, **small))
    local = forecast_demand(panel, 14, config=cfg)
    fitted, recursive = [], []
    original_fit, original_rec = lgb.DaskLGBMRegressor.fit, models_module._dask_lgbm

    def spy_fit(self, *args, **kwargs):
        fitted.append(self.client)
        return original_fit(self, *args, **kwargs)

    def spy_rec(*args, **kwargs):
        recursive.append(args[-1])
        return original_rec(*args, **kwargs)

    lgb.DaskLGBMRegressor.fit, models_module._dask_lgbm = spy_fit, spy_rec
    try:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                      dashboard_address=None) as cluster:
            with distributed.Client(cluster) as client:
                remote = forecast_demand(panel, 14, config=cfg, dask_client=client)
                # each bag of lgbm_rel(_recent) and lgbm_mh train through LightGBM's Dask estimator on this
                # cluster, the recursive lgbm through mlforecast's distributed path
                expected = (2 * ("lgbm_rel" in members) + 2 * ("lgbm_rel_recent" in members) + ("lgbm_mh" in members)
                            + 6 * ("lgbm_tw_store" in members) + ("lgbm_tw_dept" in members))
                assert expected > 0
                assert fitted == [client] * expected
                assert recursive == [client] * ("lgbm" in members)
                assert cluster.scheduler.transition_counter > 0
    finally:
        lgb.DaskLGBMRegressor.fit, models_module._dask_lgbm = original_fit, original_rec
    assert remote.attrs["fallbacks"] == {}
    both = local.merge(remote, on=["unique_id", "ds"], suffixes=("_local", "_dask"))
    assert len(both) == len(local) == 6 * 14
    per_series = both.groupby("unique_id")[["mean_local", "mean_dask"]].mean()
    assert np.allclose(per_series["mean_dask"], per_series["mean_local"], rtol=0.25, atol=0.5)
