"""``shopfloor simulate serve``: the simulated payment processors and rate service as their own HTTP process."""

from __future__ import annotations

import typer

from .output import fail, load_settings

simulate_app = typer.Typer(help="Simulated external systems (payment processors, rate service).",
                           no_args_is_help=True)


@simulate_app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8095, min=1, max=65535, help="Port to listen on (8090 is the edge shield's)."),
) -> None:
    """Serve the simulated payment processors and rate service over HTTP.

    The processors are SHOPFLOOR_PAYMENTS_PROCESSORS; their ledger and faults live in the gateway database of
    SHOPFLOOR_DATABASE_URL. Point the shop's processes at it with SHOPFLOOR_PAYMENTS_SIM_URL=http://HOST:PORT; the
    admin API's fault controls keep working.
    """
    import uvicorn

    from ..bootstrap import build_simulator_app
    from ..runtime import port_in_use

    settings = load_settings()
    if port_in_use(host, port):
        fail(f"--port: {host}:{port} is already in use")
    uvicorn.run(build_simulator_app(settings), host=host, port=port, log_level="warning", access_log=False)


def register(app: typer.Typer) -> None:
    app.add_typer(simulate_app, name="simulate")
