"""`shopfloor promise` commands."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import typer

from .output import console, fail, print_json

promise_app = typer.Typer(help="Delivery promises: backtests and calibration.", no_args_is_help=True)


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
    start = None
    if score_from:
        try:
            start = datetime.fromisoformat(score_from).replace(tzinfo=timezone.utc)
        except ValueError:
            fail(f"--score-from: {score_from!r} is not a date (YYYY-MM-DD)")
    try:
        data = load_olist(orders, items, customers, sellers)
    except (ValueError, KeyError) as exc:
        fail(f"input: {exc}")
    if not data:
        fail("--orders: no orders to replay")
    from rich.progress import Progress

    with Progress(console=console, transient=True, disable=as_json) as progress:
        task = progress.add_task("replaying", total=len(data) * 4)
        result = replay(data, confidence=confidence, score_from=start,
                        progress=lambda n: progress.update(task, completed=n))
    write_csv(result.rows, out)
    if plot is not None:
        from ..promise.calibration_plot import plot_calibration

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
