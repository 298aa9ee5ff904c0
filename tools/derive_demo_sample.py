"""Derive the small demo catalog + demand sample shipped with shopfloor from UCI Online Retail II (CC BY 4.0).

    python tools/derive_demo_sample.py ../shared/data/uci_online_retail/online_retail_II_2009-2010.parquet

Writes src/shopfloor/demo/data/catalog.csv, daily_demand.csv.gz and daily_returns.csv.gz. Only aggregates are
shipped: top SKUs by invoice count, their median unit price, a keyword category, daily units per SKU and market,
and daily units cancelled (invoices whose number starts with "C") per SKU and market.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

OUT = Path(__file__).resolve().parents[1] / "src" / "shopfloor" / "demo" / "data"
CATEGORIES = [
    ("christmas", r"CHRISTMAS|XMAS|ADVENT|SANTA"), ("lighting", r"LIGHT|LANTERN|CANDLE|T-LIGHT"),
    ("bags", r"BAG|TOTE"), ("kitchen", r"MUG|CUP|PLATE|BOWL|JAR|TEA|CAKE|BAKING|LUNCH|BOTTLE"),
    ("decor", r"HEART|SIGN|FRAME|HANGING|WREATH|CUSHION|CLOCK|MIRROR|DOORMAT"),
    ("stationery", r"CARD|WRAP|PAPER|NOTEBOOK|PEN|STICKER|TAPE"), ("storage", r"BOX|TIN|BASKET|HOLDER"),
]


def category(desc: str) -> str:
    for name, pattern in CATEGORIES:
        if re.search(pattern, desc or ""):
            return name
    return "gifts"


def _market(country: str) -> str:
    return "GB" if country == "United Kingdom" else ("DE" if country in {
        "Germany", "France", "Netherlands", "Belgium", "Austria", "Switzerland", "Denmark", "Sweden", "Italy",
        "Spain", "Portugal", "Finland", "Norway", "Poland"} else "OTHER")


def derive_returns(raw: pd.DataFrame, skus: set[str]) -> pd.DataFrame:
    """Daily units cancelled per kept SKU and market: the sample's returns (the source gives no reason)."""
    c = raw[raw["Invoice"].astype(str).str.startswith("C") & (raw["Quantity"] < 0)
            & raw["StockCode"].astype(str).isin(skus)].copy()
    c["date"] = pd.to_datetime(c["InvoiceDate"]).dt.date
    c["market"] = c["Country"].map(_market)
    c["qty"] = -c["Quantity"]
    return (c.groupby(["StockCode", "market", "date"])["qty"].sum().reset_index()
            .rename(columns={"StockCode": "sku"}))


def write_returns(path: str) -> None:
    """Only daily_returns.csv.gz, for the SKUs already in catalog.csv."""
    raw = pd.read_parquet(path)
    skus = set(pd.read_csv(OUT / "catalog.csv", dtype=str)["sku"])
    out = derive_returns(raw, skus)
    out.to_csv(OUT / "daily_returns.csv.gz", index=False, compression="gzip")
    print(f"{len(out)} return rows -> {OUT}")


def main(path: str, top: int = 120) -> None:
    raw = pd.read_parquet(path)
    df = raw
    df = df[~df["Invoice"].astype(str).str.startswith("C") & (df["Quantity"] > 0) & (df["Price"] > 0)]
    df = df[df["StockCode"].astype(str).str.match(r"^\d{5}[A-Z]?$")]
    counts = df.groupby("StockCode")["Invoice"].nunique().sort_values(ascending=False)
    keep = counts.head(top).index
    df = df[df["StockCode"].isin(keep)].copy()
    df["date"] = pd.to_datetime(df["InvoiceDate"]).dt.date
    df["market"] = df["Country"].map(_market)
    cat = (
        df.groupby("StockCode")
        .agg(name=("Description", lambda s: s.mode().iat[0]), price=("Price", "median"),
             invoices=("Invoice", "nunique"))
        .reset_index()
        .rename(columns={"StockCode": "sku"})
    )
    cat["name"] = cat["name"].str.strip().str.title()
    cat["category"] = cat["name"].str.upper().map(category)
    cat["price"] = (cat["price"] * 100).round().astype(int)
    cat["currency"] = "GBP"
    cat = cat.sort_values("invoices", ascending=False)
    demand = (
        df.groupby(["StockCode", "market", "date"])["Quantity"].sum().reset_index()
        .rename(columns={"StockCode": "sku", "Quantity": "qty"})
    )
    OUT.mkdir(parents=True, exist_ok=True)
    cat[["sku", "name", "category", "price", "currency", "invoices"]].to_csv(OUT / "catalog.csv", index=False)
    demand.to_csv(OUT / "daily_demand.csv.gz", index=False, compression="gzip")
    derive_returns(raw, set(cat["sku"].astype(str))).to_csv(OUT / "daily_returns.csv.gz", index=False,
                                                           compression="gzip")
    print(f"{len(cat)} skus, {len(demand)} demand rows -> {OUT}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[2] == "--returns-only":
        write_returns(sys.argv[1])
    else:
        main(sys.argv[1])
