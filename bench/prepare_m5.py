"""Convert the M5 subset (read in place, never copied into the repo) to shopfloor's long forecasting frame.

Writes ``unique_id, ds, y, price, snap, event`` (the columns the held-back scoring passes) to --out.
``price`` is NaN while the item is not on sale; ``event`` is 1 on days with a calendar event.

    python bench/prepare_m5.py --src /work/shared/data/m5_walmart --out /tmp/m5_long.parquet
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--src", type=Path, default=Path("/work/shared/data/m5_walmart"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--until", default=None, help="keep days <= this date (YYYY-MM-DD)")
    args = parser.parse_args()
    raw = pd.read_csv(args.src / "tiny_m5_long.csv.gz")
    frame = pd.DataFrame(
        {
            "unique_id": raw["item_id"] + "_" + raw["store_id"],
            "ds": pd.to_datetime(raw["date"]),
            "y": raw["value"].astype("float32"),
            "price": raw["sell_price"].astype("float32"),
            "snap": raw["snap"].astype("int8"),
            "event": raw["event_name_1"].notna().astype("int8"),
        }
    )
    if args.until:
        frame = frame[frame["ds"] <= pd.Timestamp(args.until)]
    frame = frame.sort_values(["unique_id", "ds"]).reset_index(drop=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(args.out, index=False)
    print(f"wrote {len(frame)} rows, {frame['unique_id'].nunique()} series to {args.out}")


if __name__ == "__main__":
    main()
