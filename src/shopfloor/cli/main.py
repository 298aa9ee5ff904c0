"""Root Typer app. Sub-apps live in sibling modules; this file only assembles them."""

from __future__ import annotations

import typer

from . import (
    anomalies_cmd,
    bench_cmd,
    capacity_cmd,
    core_cmd,
    forecast_cmd,
    fulfillment_cmd,
    gameday_cmd,
    payments_cmd,
    promise_cmd,
    restock_cmd,
    rules_cmd,
)

app = typer.Typer(
    name="shopfloor",
    help="shopfloor: buy path, promise engine, forecasting brain and control tower for online stores.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

core_cmd.register(app)
payments_cmd.register(app)
fulfillment_cmd.register(app)
promise_cmd.register(app)
forecast_cmd.register(app)
restock_cmd.register(app)
capacity_cmd.register(app)
anomalies_cmd.register(app)
rules_cmd.register(app)
bench_cmd.register(app)
gameday_cmd.register(app)
