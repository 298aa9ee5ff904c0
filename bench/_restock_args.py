"""Arguments the restock benchmarks share: which panel, and which window of it is scored."""

from __future__ import annotations

import argparse

#: the visible M5 subset (280 series, long format), as the other restock benchmarks read it
M5 = "/work/shared/data/m5_walmart/tiny_m5_long.csv.gz"


def window_arguments(ap: argparse.ArgumentParser, *, end_offset: int = 364) -> None:
    """``--history``, ``--end-offset`` (days dropped from the end; 364 scores M5 2014-15, 728 2013-14, 0 2015-16)
    and ``--test-days``."""
    ap.add_argument("--history", default=M5, help="demand history, long format (date, sku, units)")
    ap.add_argument("--end-offset", type=int, default=end_offset,
                    help="days dropped from the end (364: M5 2014-15, 728: 2013-14, 0: 2015-16)")
    ap.add_argument("--test-days", type=int, default=364, help="days scored after the warm-up")
