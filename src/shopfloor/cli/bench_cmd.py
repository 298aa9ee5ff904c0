"""``shopfloor bench ...``: the benchmarks that drive a real server (``bench/`` holds the research scripts)."""

from __future__ import annotations

import json

import typer

from .output import console, err_console, fail, print_json

bench_app = typer.Typer(help="Benchmarks against the real server.", no_args_is_help=True)


@bench_app.command("checkout")
def checkout(
    seconds: float = typer.Option(10.0, min=1, max=600, help="Length of the ceiling and checkout phases."),
    connections: int = typer.Option(64, min=1, max=4096, help="Concurrent connections of the load generator."),
    runs: int = typer.Option(1, min=1, max=20, help="Independent runs (a fresh store each); medians are reported."),
    workers: int = typer.Option(1, min=1, max=64, help="Server processes."),
    simulators: str = typer.Option("process", help="'process': the simulated processors and rate service run as "
                                                   "their own process (like a real gateway); 'inline': inside the "
                                                   "server."),
    database_url: str = typer.Option(
        None, help="Default: a fresh SQLite file per run. Otherwise an empty database, and --runs 1."),
    as_json: bool = typer.Option(False, "--json", help="Print the runs and the summary as JSON."),
) -> None:
    """Checkout throughput and latency against the /healthz ceiling.

    Measures the server's own /healthz ceiling, then checkouts, then checks the store for oversold, lost and
    duplicate orders. Needs `wrk` (Debian: apt-get install wrk); pins server and load generator to different cores
    when it can.
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from ..gameday import CORRECTNESS_KEYS, run_checkout_benchmark, summarize_checkout_runs

    if simulators not in ("process", "inline"):
        fail(f"--simulators: {simulators!r} is neither 'process' nor 'inline'")
    if database_url is not None and runs > 1:
        fail("--database-url takes one run (the store must be empty before each run); leave it out for several "
             "SQLite runs")
    if database_url is not None and not database_url.startswith(("sqlite", "postgresql", "postgres")):
        fail(f"--database-url: unsupported database {database_url.split(':', 1)[0]!r} (sqlite or postgresql)")
    results = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err_console,
                  transient=True) as bar:
        task = bar.add_task("checkout benchmark", total=runs)
        for i in range(runs):
            try:
                results.append(run_checkout_benchmark(
                    database_url, seconds=seconds, connections=connections, workers=workers, simulators=simulators,
                    progress=lambda phase, i=i: bar.update(task, description=f"run {i + 1}/{runs}: {phase}")))
            except (RuntimeError, ValueError) as exc:
                fail(str(exc))
            except Exception as exc:  # noqa: BLE001 - e.g. the database is unreachable: one line, no traceback
                fail(f"database_url: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            bar.advance(task)
    summary = summarize_checkout_runs(results)
    if as_json:
        print_json({"runs": results, "summary": summary})
        return
    from rich.table import Table

    t = Table(title=f"checkout benchmark ({summary['database']}, {connections} connections, median of {runs})")
    t.add_column("figure")
    t.add_column("value", justify="right")
    for key, label in (("median_ceiling_rps", "/healthz ceiling, req/s"), ("median_checkout_rps", "checkouts/s"),
                       ("median_ratio", "ratio checkout / ceiling"), ("median_checkout_p50_ms", "checkout p50, ms"),
                       ("median_checkout_p99_ms", "checkout p99, ms"), ("median_hot_rps", "hot-SKU phase, req/s"),
                       ("median_hot_p99_ms", "hot-SKU p99, ms"), ("median_server_rss_mb", "server RSS, MB"),
                       ("median_checkout_server_cores_busy", "server cores busy during checkouts"),
                       ("median_checkout_server_cpu_us_per_request", "server CPU per checkout, us"),
                       ("median_ceiling_server_cpu_us_per_request", "server CPU per /healthz, us")):
        if summary.get(key) is not None:
            t.add_row(label, f"{summary[key]:,}")
        if key == "median_checkout_server_cpu_us_per_request":  # where that CPU went, by server thread
            for thread, us in (summary.get("median_checkout_server_cpu_us_by_thread") or {}).items():
                if us is not None:
                    t.add_row(f"  of which {thread}, us", f"{us:,}")
    for key in CORRECTNESS_KEYS:
        t.add_row(key.replace("_", " "), f"[{'green' if summary[key] == 0 else 'bold red'}]{summary[key]}[/]")
    console.print(t)
    if any(summary[k] for k in CORRECTNESS_KEYS):
        err_console.print("[bold red]correctness check failed[/]; per-run details: "
                          + json.dumps([{k: r[k] for k in CORRECTNESS_KEYS} for r in results]))
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Attach ``shopfloor bench ...`` to the root app."""
    app.add_typer(bench_app, name="bench")
