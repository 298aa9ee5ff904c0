"""``shopfloor orders import``: orders from another platform or system, in bulk."""

from __future__ import annotations

from pathlib import Path

import typer

from .output import console, err_console, fail, open_store, print_json

orders_app = typer.Typer(help="Orders from other channels.", no_args_is_help=True)


@orders_app.command("import")
def import_orders(
    file: Path = typer.Argument(..., help="A .csv, .csv.gz or .parquet file.", show_default=False),
    fmt: str = typer.Option("auto", "--format", help="long (external_id, created_at, sku, qty, unit_price, "
                            "currency, country, postal_code; unit_price in minor units), shopify (Shopify's "
                            "orders export) or auto (shopify when the file has a 'Lineitem sku' column)."),
    on_error: str = typer.Option("stop", "--on-error", help="stop: write nothing if any row is invalid; skip: "
                                 "write the valid orders and skip every order with an invalid row."),
    stock_policy: str = typer.Option("ignore", "--stock-policy", help="consume: on-hand drops; reserve: the "
                                     "quantities are reserved; ignore: history only, stock untouched."),
    channel: str = typer.Option("import", "--channel", help="Where the orders come from; with the external id it "
                                "makes the import idempotent (use shopify:<shop> to match orders its webhooks "
                                "already brought in)."),
    batch_size: int = typer.Option(1000, "--batch-size", min=1, max=100_000, help="Orders per transaction."),
    json_out: bool = typer.Option(False, "--json", help='Print {"imported", "skipped", "errors": [{"row", '
                                  '"field", "message"}]} (orders; rows count data rows from 1).'),
) -> None:
    """Import orders from FILE; every row is checked first.

    Nothing is written while a row is invalid (unless --on-error skip). Running the same file again changes
    nothing, and an interrupted import is resumed by running it again.
    Imported orders count as demand history for forecasting. Exits 1 when rows are invalid and --on-error is stop.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..bootstrap import build_integrations
    from ..integrations import STOCK_POLICIES, ImportFileError, plan_import, read_rows, run_import

    if fmt not in ("auto", "long", "shopify"):
        fail("--format: choose long, shopify or auto")
    if on_error not in ("stop", "skip"):
        fail("--on-error: choose stop or skip")
    if stock_policy not in STOCK_POLICIES:
        fail(f"--stock-policy: choose {', '.join(STOCK_POLICIES)}")
    if not channel.strip() or len(channel) > 300:
        fail("--channel: 1-300 characters")
    try:
        columns, rows = read_rows(file)
    except ImportFileError as exc:
        fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - an unreadable file: one line, not a traceback
        fail(f"FILE: cannot read {file.name}: {type(exc).__name__}: {exc}")
    from ..integrations.importer import detect_format

    fmt = detect_format(columns) if fmt == "auto" else fmt
    c = open_store()
    writer = build_integrations(c)["integrations.order_writer"]
    columns_bar = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns_bar, console=err_console, transient=True) as bar:
            reading = bar.add_task("validating rows", total=None)
            try:
                plan = plan_import(columns, rows, fmt, progress=lambda n: bar.advance(reading, n))
            except ImportFileError as exc:
                fail(str(exc))
            bar.update(reading, total=plan.rows, completed=plan.rows)
            writing = bar.add_task("writing orders", total=sum(plan.rows_of.values()))
            summary = run_import(writer, plan, channel=channel, policy=stock_policy, on_error=on_error,
                                 batch_orders=batch_size, progress=lambda n: bar.advance(writing, n))
    finally:
        c.close()
    if json_out:
        print_json(summary.as_dict())
    else:
        console.print(f"[green]imported {summary.imported} order(s)[/], skipped {summary.skipped}, "
                      f"{len(summary.errors)} row error(s) ({plan.rows} rows, format {fmt})")
        for e in summary.errors[:20]:
            console.print(f"  row {e.row}, {e.field}: {e.message}", soft_wrap=True)
        if len(summary.errors) > 20:
            console.print(f"  ... and {len(summary.errors) - 20} more (--json lists all)")
    if summary.errors and on_error == "stop":
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(orders_app, name="orders")
