"""The statistical forecasting path runs unchanged on a Dask LocalCluster through statsforecast's fugue backend."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shopfloor.forecast import forecast_demand

distributed = pytest.importorskip("distributed")
pytest.importorskip("fugue")


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
