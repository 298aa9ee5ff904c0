"""Small Olist-shaped files (orders, items, customers, sellers) for `promise backtest` tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

import pandas as pd


def write_olist(folder: Path, n: int = 20, *, carrier_h: Callable[[int], float] = lambda i: 30,
                delivered_h: Callable[[int], float] = lambda i: 200) -> dict[str, Path]:
    """``n`` one-item orders placed nine hours apart from 2017-01-02 09:00, order ``i`` handed to the carrier
    ``carrier_h(i)`` and delivered ``delivered_h(i)`` hours after it was placed; the four files' paths by name."""
    t0 = datetime(2017, 1, 2, 9)
    orders = [{"order_id": f"o{i}", "customer_id": f"c{i}", "order_purchase_timestamp": t0 + timedelta(hours=9 * i),
               "order_approved_at": t0 + timedelta(hours=9 * i + 1),
               "order_delivered_carrier_date": t0 + timedelta(hours=9 * i + carrier_h(i)),
               "order_delivered_customer_date": t0 + timedelta(hours=9 * i + delivered_h(i)),
               "order_estimated_delivery_date": (t0 + timedelta(days=25)).date()} for i in range(n)]
    files = {
        "orders": pd.DataFrame(orders),
        "items": pd.DataFrame({"order_id": [f"o{i}" for i in range(n)], "order_item_id": 1, "seller_id": "s0"}),
        "customers": pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "customer_state": "SP",
                                   "customer_zip_code_prefix": "1000"}),
        "sellers": pd.DataFrame({"seller_id": ["s0"], "seller_state": ["SP"]}),
    }
    paths = {}
    for name, frame in files.items():
        paths[name] = folder / f"{name}.csv"
        frame.to_csv(paths[name], index=False)
    return paths


def promise_backtest_args(paths: dict[str, Path], out: Path, *extra: str) -> list[str]:
    """The `promise backtest` command line for those files, writing its rows to ``out``."""
    return ["promise", "backtest", *[a for name, p in paths.items() for a in (f"--{name}", str(p))],
            "--out", str(out), *extra]
