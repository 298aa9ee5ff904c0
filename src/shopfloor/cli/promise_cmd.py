"""`shopfloor promise` commands."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import typer

from ..validation import TIME_WITH_UTC_OFFSET
from .output import PLOT_SUFFIXES, check_output_path, console, err_console, fail, load_settings, print_json

promise_app = typer.Typer(help="Delivery promises: backtests and calibration.", no_args_is_help=True)

#: The columns `promise backtest` reads from each Olist file (the option is the file's name).
_COLUMNS = {
    "orders": ("order_id", "customer_id", "order_purchase_timestamp", "order_approved_at",
               "order_delivered_carrier_date", "order_delivered_customer_date", "order_estimated_delivery_date"),
    "items": ("order_id", "order_item_id", "seller_id"),
    "customers": ("customer_id", "customer_state", "customer_zip_code_prefix"),
    "sellers": ("seller_id", "seller_state"),
}
_DATE_COLUMNS = _COLUMNS["orders"][2:]
#: The order's later steps, none of which may come before its purchase.
_AFTER_PURCHASE = ("order_approved_at", "order_delivered_carrier_date", "order_delivered_customer_date")
#: The earliest time an order file may carry: Olist's data starts in 2016; a year-1 or 1970 date is a placeholder
#: that would skew every duration it takes part in.
_EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
#: A time of day, with or without an offset (a bare date carries no offset either way).
_TIME = r"[T ]\d{1,2}:\d{2}"


def _latest(now: datetime) -> tuple[datetime, float]:
    """The latest time an order may carry and the hours it allows: the run's clock plus ``fulfillment_max_future_h``
    (the bound `fulfillment import` and the API hold event times to)."""
    from datetime import timedelta

    hours = float(load_settings().fulfillment_max_future_h)
    return now + timedelta(hours=hours), hours


def _check_orders(frame, path: Path) -> None:
    """The orders file's times, or exit naming the row and column: every date parses; the times carry a UTC offset
    either all or none (bare dates aside); each lies between 2000-01-01 and the run's clock (plus
    ``fulfillment_max_future_h``); approval, hand-off and delivery do not precede the purchase; no order_id repeats."""
    import warnings

    import pandas as pd

    now = datetime.now(timezone.utc)
    latest, hours = _latest(now)
    parsed = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas' parser warnings are never shown: each problem is named below
        for col in _DATE_COLUMNS:
            values = frame[col]
            given = values.notna() & (values.str.strip() != "")
            times = pd.to_datetime(values.where(given), errors="coerce", format="ISO8601", utc=True)
            beyond: dict[int, pd.Timestamp] = {}  # values pandas' vectorised parse cannot hold (e.g. year 9999)
            for i in (times.isna() & given).to_numpy().nonzero()[0]:
                try:  # confirm with the replay's own parser (pd.Timestamp) before refusing
                    ts = pd.Timestamp(values.iloc[i].strip())
                    ok = not pd.isna(ts)
                except (ValueError, TypeError, OverflowError):
                    ok = False
                if not ok:
                    fail(f"--orders {path} row {i + 2}, column {col}: not a date: {values.iloc[i]!r}")
                beyond[int(i)] = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
            parsed[col] = (values, given, times, beyond)
        # A mix of times with and without a UTC offset: the naive ones' zone is a guess.
        kinds = []
        for col in _DATE_COLUMNS:
            values, given, _, _ = parsed[col]
            text = values.where(given, "").str.strip()
            timed = given & text.str.contains(_TIME, regex=True)
            aware = timed & text.str.contains(TIME_WITH_UTC_OFFSET, regex=True)
            kinds.append((col, values, timed, aware))
        n_aware = sum(int(a.sum()) for _, _, _, a in kinds)
        n_timed = sum(int(t.sum()) for _, _, t, _ in kinds)
        if 0 < n_aware < n_timed:
            def first(kind: str):  # (row, column order, column, value) of the first time of that kind
                return min((int(m.to_numpy().nonzero()[0][0]), _DATE_COLUMNS.index(col), col, values)
                           for col, values, timed, aware in kinds
                           for m in ((aware if kind == "aware" else timed & ~aware),) if m.any())

            head, odd = sorted([first("aware"), first("naive")])
            has = "has a" if bool(kinds[odd[1]][3].iloc[odd[0]]) else "has no"
            r, _, col, values = odd
            r0, _, col0, values0 = head
            fail(f"--orders {path} row {r + 2}: {col} {values.iloc[r].strip()} {has} UTC offset, unlike row "
                 f"{r0 + 2} {col0} {values0.iloc[r0].strip()} (give every time with an offset, or none)")
    # Each time within 2000-01-01 .. the run's clock (+ fulfillment_max_future_h).
    problems = []
    for col in _DATE_COLUMNS:
        values, given, times, beyond = parsed[col]
        late = (times > latest).to_numpy().nonzero()[0]
        early = (times < _EARLIEST).to_numpy().nonzero()[0]
        rows = [(int(i), times.iloc[i]) for i in (*late, *early)] + list(beyond.items())
        for i, ts in rows:
            if ts > latest:
                why = (f"is after the run's clock (more than {hours:g} h ahead of {now:%Y-%m-%d %H:%M} UTC; see "
                       "fulfillment_max_future_h)")
            else:
                why = f"is before {_EARLIEST:%Y-%m-%d} (the earliest time an order file may carry)"
            problems.append((i, _DATE_COLUMNS.index(col), f"{col} {values.iloc[i].strip()} {why}"))
    if problems:
        i, _, text = min(problems)
        fail(f"--orders {path} row {i + 2}: {text}")
    # No step before the purchase.
    purchased = parsed["order_purchase_timestamp"][2]
    problems = []
    for col in _AFTER_PURCHASE:
        values, _, times, _ = parsed[col]
        for i in (times < purchased).to_numpy().nonzero()[0]:
            problems.append((int(i), _DATE_COLUMNS.index(col),
                             f"{col} {values.iloc[i].strip()} is before order_purchase_timestamp "
                             f"{frame['order_purchase_timestamp'].iloc[i].strip()}"))
    if problems:
        i, _, text = min(problems)
        fail(f"--orders {path} row {i + 2}: {text}")
    # Each order once: a repeated order_id would be replayed and scored twice.
    ids = frame["order_id"]
    dup = ids.duplicated(keep="first") & ids.notna()
    if dup.any():
        i = int(dup.to_numpy().argmax())
        j = int((ids == ids.iloc[i]).to_numpy().argmax())
        fail(f"--orders {path} row {i + 2}: order_id {ids.iloc[i]!r} repeats row {j + 2} (each order once)")


def _check_inputs(files: dict[str, Path]) -> None:
    """Read each file once before the replay and exit with one line naming the option, the file and (for a bad
    value) the row and column: an empty or unreadable file, a missing column, a date that does not parse, an item
    number that is not whole. Rows are the file's lines (the header is row 1)."""
    import pandas as pd

    for name, path in files.items():
        try:
            frame = pd.read_csv(path, dtype=str)
        except pd.errors.EmptyDataError:
            fail(f"--{name}: {path} is empty (no header row; expected columns {', '.join(_COLUMNS[name])})")
        except Exception as exc:  # noqa: BLE001 - parser errors, bad encodings, unreadable files: one line
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            fail(f"--{name}: cannot read {path} as CSV: {first}")
        missing = [c for c in _COLUMNS[name] if c not in frame.columns]
        if missing:
            fail(f"--{name} {path}: missing column(s) {', '.join(missing)} (columns: "
                 f"{', '.join(map(str, frame.columns))})")
        if name == "orders":
            _check_orders(frame, path)
        if name == "items":
            ids = frame["order_item_id"]
            bad = ~ids.fillna("").str.strip().str.fullmatch(r"[+-]?\d+")
            if bad.any():
                i = int(bad.to_numpy().argmax())
                fail(f"--items {path} row {i + 2}, column order_item_id: not a whole number: {ids.iloc[i]!r}")


@promise_app.command("backtest")
def backtest(
    orders: Path = typer.Option(..., "--orders", help="Olist orders CSV (purchase, approved, carrier, delivered, "
                                "estimated dates)."),
    items: Path = typer.Option(..., "--items", help="Olist order items CSV (order_id, order_item_id, seller_id)."),
    customers: Path = typer.Option(..., "--customers", help="Olist customers CSV (state and zip prefix)."),
    sellers: Path = typer.Option(..., "--sellers", help="Olist sellers CSV (state)."),
    score_from: str | None = typer.Option(None, "--score-from", help="Score orders purchased on/after this date "
                                          "(YYYY-MM-DD); earlier orders are history only."),
    confidence: float = typer.Option(0.9, "--confidence", help="Confidence of the promised date (0.5-0.999)."),
    out: Path = typer.Option(Path("promises.csv"), "--out", help="Where to write one row per scored order."),
    plot: Path | None = typer.Option(None, "--plot", help="Also write a calibration plot (PNG) here."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON summary."),
) -> None:
    """Replay orders strictly forward in time, promise each at its purchase moment, and score the promises."""
    from ..promise.backtest import load_olist, replay, write_csv

    for name, p in (("orders", orders), ("items", items), ("customers", customers), ("sellers", sellers)):
        if not p.exists():
            fail(f"--{name}: {p} does not exist")
    if not 0.5 <= confidence < 1.0:
        fail("--confidence: must be in [0.5, 1)")
    check_output_path(out, "--out")
    if plot is not None:
        check_output_path(plot, "--plot", suffixes=PLOT_SUFFIXES)
    start = None
    if score_from:
        try:
            start = datetime.fromisoformat(score_from).replace(tzinfo=timezone.utc)
        except ValueError:
            fail(f"--score-from: {score_from!r} is not a date (YYYY-MM-DD)")
    _check_inputs({"orders": orders, "items": items, "customers": customers, "sellers": sellers})
    try:
        data = load_olist(orders, items, customers, sellers)
    except (ValueError, KeyError) as exc:
        fail(f"--orders/--items/--customers/--sellers: {exc}")
    if not data:
        fail("--orders: no orders to replay")
    from rich.progress import Progress

    with Progress(console=err_console, transient=True,
                  disable=as_json or not err_console.is_terminal) as progress:
        task = progress.add_task("replaying", total=len(data) * 4)
        result = replay(data, confidence=confidence, score_from=start,
                        progress=lambda n: progress.update(task, completed=n))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    write_csv(result.rows, tmp)
    tmp.replace(out)  # never a half-written file
    if plot is not None:
        from ..promise.calibration_plot import plot_calibration

        plot.parent.mkdir(parents=True, exist_ok=True)
        plot_calibration(result.rows, plot, confidence)
    summary = dict(result.summary, out=str(out))
    if as_json:
        print_json(summary)
    else:
        ref = summary["reference"]
        console.print(f"{summary['orders_scored']} orders scored: on time {summary['on_time_rate']} "
                      f"(reference {ref['on_time_rate']}), mean promised days {summary['mean_promised_days']} "
                      f"(reference {ref['mean_promised_days']}), p50 MAE {summary['p50_eta_mae_days']} days")


def register(app: typer.Typer) -> None:
    """Attach ``shopfloor promise`` to the root app."""
    app.add_typer(promise_app, name="promise")
