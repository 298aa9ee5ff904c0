"""Daily unit demand of the UCI Online Retail II (2009-10) top products, as a restock backtest panel.

Reads the invoice lines in place (never copied into the repo) and writes ``unique_id, ds, y`` for the ``--top``
products by number of invoice lines (``--skip`` to take a later slice of the ranking): units per calendar day (cancellations, lines with a non-positive quantity or
price, and non-product codes such as POST / M / DOT are dropped; days without a line are zero demand, including the
shop's closed days). The span is 2009-12-01 .. 2010-12-09 (374 days).

    python bench/prepare_uci_restock.py --out /tmp/uci_top200.csv.gz [--top 200] [--skip 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

SRC = Path("/work/shared/data/uci_online_retail/online_retail_II_2009-2010.parquet")
NON_PRODUCT = {"POST", "M", "DOT", "C2", "D", "BANK CHARGES", "ADJUST", "ADJUST2", "AMAZONFEE", "PADS", "TEST001",
               "TEST002", "S", "B", "CRUK"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=SRC)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--top", type=int, default=200)
    ap.add_argument("--skip", type=int, default=0, help="leave out the first SKIP products of the ranking (e.g. 200: "
                    "products ranked 201..200+TOP, a panel disjoint from the default one)")
    args = ap.parse_args()
    df = pd.read_parquet(args.src, columns=["Invoice", "StockCode", "Quantity", "InvoiceDate", "Price"])
    df = df[~df["Invoice"].astype(str).str.startswith("C") & (df["Quantity"] > 0) & (df["Price"] > 0)]
    df = df[~df["StockCode"].astype(str).str.upper().isin(NON_PRODUCT)]
    df["ds"] = pd.to_datetime(df["InvoiceDate"]).dt.normalize()
    top = df["StockCode"].value_counts().iloc[args.skip: args.skip + args.top].index
    df = df[df["StockCode"].isin(top)]
    daily = df.groupby(["StockCode", "ds"], as_index=False)["Quantity"].sum()
    full = pd.date_range(daily["ds"].min(), daily["ds"].max(), freq="D")
    wide = daily.pivot(index="StockCode", columns="ds", values="Quantity").reindex(columns=full, fill_value=0)
    long = wide.fillna(0).stack().rename("y").reset_index()
    long.columns = ["unique_id", "ds", "y"]
    long["unique_id"] = "UCI_" + long["unique_id"].astype(str)
    long["y"] = long["y"].astype(int)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    long.to_csv(args.out, index=False)
    print(f"wrote {len(long)} rows, {long['unique_id'].nunique()} series, {len(full)} days to {args.out}")


if __name__ == "__main__":
    main()
