"""Root Typer app. Sub-apps live in sibling modules; this file only assembles them."""

from __future__ import annotations

import typer
from typer.core import TyperOption

from .. import __version__
from . import (
    anomalies_cmd,
    bench_cmd,
    capacity_cmd,
    core_cmd,
    edge_cmd,
    forecast_cmd,
    fulfillment_cmd,
    gameday_cmd,
    orders_cmd,
    payments_cmd,
    promise_cmd,
    regions_cmd,
    restock_cmd,
    rules_cmd,
    simulate_cmd,
    webhooks_cmd,
)

app = typer.Typer(
    name="shopfloor",
    help="shopfloor: buy path, promise engine, forecasting brain and control tower for online stores.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)



def _flags_show_no_type(option_class: type = TyperOption) -> None:
    """Typer 0.29 prints a flag's type in help (``--json  <bool>``), which reads as if the flag took a value.
    A flag's row shows no type here; options that take a value keep theirs."""
    shown = getattr(option_class, "display_type_rich", None)
    if shown is None or getattr(shown, "flags_show_no_type", False):
        return

    def display_type_rich(self, ctx):
        return None if getattr(self, "is_flag", False) else shown(self, ctx)

    display_type_rich.flags_show_no_type = True
    option_class.display_type_rich = display_type_rich


_flags_show_no_type()


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"shopfloor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """shopfloor: buy path, promise engine, forecasting brain and control tower for online stores."""


core_cmd.register(app)
edge_cmd.register(app)
regions_cmd.register(app)
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
simulate_cmd.register(app)
webhooks_cmd.register(app)
orders_cmd.register(app)
