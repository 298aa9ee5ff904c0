"""``shopfloor gameday``: load plus real faults against the running system, then the report."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, TypeVar

import typer

from .output import PLOT_SUFFIXES, check_output_path, console, err_console, fail, print_json

T = TypeVar("T")


def gameday(
    scenario: str = typer.Option("checkout", help="checkout (or faults): buyers against the server and worker under "
                                                  "payment faults and kills. edge: browsing and buying shoppers "
                                                  "through two nginx edge nodes and a shield while an edge node and "
                                                  "the origin fail and a SKU sells out (needs nginx: "
                                                  "tools/install-nginx.sh). flash_crowd: a crowd (some of it bots) for "
                                                  "the few units of one product behind the waiting room, while "
                                                  "ordinary shoppers buy other products; compared with the same run "
                                                  "without the crowd. regions: shoppers through the edge in front "
                                                  "of two regions (Patroni + etcd) while a warehouse's feed stops "
                                                  "and region A dies whole (needs tools/install-regions.sh and "
                                                  "tools/install-nginx.sh)."),
    crowd_shoppers: int = typer.Option(20_000, min=10, max=200_000, help="flash_crowd: shoppers for the hot product."),
    units: int = typer.Option(200, min=1, max=100_000, help="flash_crowd: units of the hot product."),
    bot_share: float = typer.Option(0.1, min=0, max=1, help="flash_crowd: share of the crowd that are bots."),
    redis_url: str = typer.Option(None, help="flash_crowd: keep the waiting room and the rate limits in this Redis "
                                             "(default: in the server process)."),
    workers: int = typer.Option(1, min=1, max=16, help="flash_crowd: server processes (more than one needs "
                                                      "--redis-url)."),
    baseline_database_url: str = typer.Option(
        None, help="flash_crowd with --database-url: a second empty database for the run without the crowd."),
    seconds: float = typer.Option(60.0, min=10, max=3600, help="Length of the load phase (faults are spread over "
                                                                 "it)."),
    shoppers: int = typer.Option(12, min=1, max=256, help="Concurrent shoppers checking out over HTTP (edge: "
                                                         "browsing shoppers; two more buy)."),
    seed: int = typer.Option(7, help="Seed of the shoppers and the simulated processors."),
    drain_timeout: float = typer.Option(180.0, min=5, max=3600,
                                        help="Seconds to wait, after the load, for the worker to deliver everything."),
    database_url: str = typer.Option(
        None, help="An empty database to run against (default: a fresh SQLite file in a temporary folder)."),
    schedule: Path = typer.Option(
        None, help="Faults to inject instead of the default schedule: a .yaml or .json list of "
                   "{at, action, target, patch, label} (see examples/gameday.yaml; regions: "
                   "examples/gameday-regions.yaml)."),
    report_out: Path = typer.Option(None, help="Also write the report as JSON to this file."),
    plot_out: Path = typer.Option(None, help="Write a PNG: purchases per second and latency, faults marked."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON instead of tables."),
    slow_subscriber: float = typer.Option(
        0.0, "--slow-subscriber", min=0, max=600,
        help="Seconds a second webhook subscriber takes to answer (0: no subscribers). A fast subscriber runs beside "
             "it and must receive every accepted order; compare the checkout latencies with a run without it."),
) -> None:
    """Load and real faults against the server and worker, then checks: nothing lost, oversold or charged twice.

    Shoppers (some in a flash sale, some double-clicking "buy") check out against the real
    server and worker while processors lose responses and go down, the rate service is blackholed, and the server,
    the worker and the simulated processors' own process are killed with SIGKILL and restarted. Then everything
    heals, the worker drains the outbox, and the report checks that nothing was lost, nothing oversold and nobody
    charged twice. Exits 1 when a check fails.

    --scenario flash_crowd instead runs 20,000 shoppers (some of them bots) for the 200 units of one product behind
    the waiting room, beside ordinary shoppers, and a baseline run without the crowd; it reports units, sold, the
    sell-out notice, the admitted, ordinary and baseline p99s and the bots' share of the units."""
    if scenario == "flash_crowd":
        _flash_crowd(database_url, baseline_database_url, crowd_shoppers, units, bot_share, seed, redis_url,
                     report_out, as_json, workers)
        return
    if scenario == "faults":
        scenario = "checkout"
    if scenario == "regions":
        if plot_out is not None or database_url is not None:
            fail("--plot-out / --database-url: not for --scenario regions (it runs its own two PostgreSQL regions)")
        _regions(seconds, shoppers, seed, drain_timeout, schedule, report_out, as_json)
        return
    if scenario not in ("checkout", "edge"):
        fail(f"--scenario: checkout, edge, flash_crowd or regions (got {scenario!r})")
    from ..gameday import CHECKS, DEFAULT_SCHEDULE, load_schedule, plot_gameday, run_gameday

    if scenario == "edge":
        if schedule is not None or plot_out is not None:
            fail("--schedule / --plot-out: only for --scenario checkout")
        _edge(seconds, shoppers, seed, drain_timeout, database_url, report_out, as_json)
        return

    if plot_out is not None:  # before the run: a bad path must not cost a whole game day and its report
        check_output_path(plot_out, "--plot-out", suffixes=PLOT_SUFFIXES)
    faults = DEFAULT_SCHEDULE
    if schedule is not None:
        try:
            faults = load_schedule(schedule)
        except ValueError as exc:
            fail(f"--schedule: {exc}")
    _check_database_url(database_url, "--database-url")
    result = _run("game day", lambda progress: run_gameday(
        database_url, seconds=seconds, shoppers=shoppers, seed=seed, drain_timeout_s=drain_timeout, schedule=faults,
        slow_subscriber_s=slow_subscriber, progress=progress), (RuntimeError, ValueError), others_on="database_url")
    if plot_out is not None:
        plot_out.parent.mkdir(parents=True, exist_ok=True)
        plot_gameday(result, plot_out)
    if not _write_report(result.to_dict(), report_out, as_json):
        _print_report(result, CHECKS)
        if result.subscribers:
            sub = result.subscribers
            console.print(f"webhook subscribers: fast got {sub['fast']['unique_messages']} messages (order.placed lag "
                          f"p50 {sub['fast']['order_placed_lag_p50_s']} s, p99 {sub['fast']['order_placed_lag_p99_s']} "
                          f"s), missing {sub['fast_missing_order_placed']}; slow (answers after "
                          f"{sub['slow_answers_after_s']} s) got {sub['slow']['requests']} requests", soft_wrap=True)
        if plot_out is not None:
            console.print(f"plot: {plot_out}")
    if not result.passed:
        raise typer.Exit(1)


def _edge(seconds: float, shoppers: int, seed: int, drain_timeout: float, database_url: str | None,
          report_out: Path | None, as_json: bool) -> None:
    from ..gameday import run_edge_gameday

    _check_database_url(database_url, "--database-url")
    result = _run("edge game day", lambda progress: run_edge_gameday(
        database_url, seconds=seconds, browsers=shoppers, seed=seed, drain_timeout_s=drain_timeout,
        progress=progress), (RuntimeError, ValueError, FileNotFoundError))
    report = result.to_dict()
    if not _write_report(report, report_out, as_json):
        _print_views_by_phase("product pages by phase", result.phases, failed_over=True)
        console.print(f"product-page availability {result.product_page_availability:.4f}, edge hit ratio "
                      f"{result.edge_hit_ratio:.4f}, stale in_stock after the sell-out "
                      f"{result.stale_in_stock_after_sellout_s:.2f} s")
        _print_check_lines(result, "edge game day")
    if not result.passed:
        raise typer.Exit(1)


def _regions(seconds: float, shoppers: int, seed: int, drain_timeout: float, schedule: Path | None,
             report_out: Path | None, as_json: bool) -> None:
    from ..gameday import REGIONS_ACTIONS, REGIONS_SCHEDULE, load_schedule, run_regions_gameday

    faults = REGIONS_SCHEDULE
    if schedule is not None:
        try:
            faults = load_schedule(schedule, REGIONS_ACTIONS)
        except ValueError as exc:
            fail(f"--schedule: {exc}")
    result = _run("regions game day", lambda progress: run_regions_gameday(
        seconds=seconds, browsers=min(shoppers, 8), seed=seed, drain_timeout_s=drain_timeout, schedule=faults,
        progress=progress), (RuntimeError, ValueError, FileNotFoundError))
    report = result.to_dict()
    if not _write_report(report, report_out, as_json):
        _print_views_by_phase("product pages through the edge, by phase", result.phases, failed_over=False)
        console.print(f"RTO {result.rto_s} s, orders lost in the failover {result.orders_lost_in_failover} of "
                      f"{result.orders_acknowledged_before_failover}, product-page availability "
                      f"{result.product_page_availability:.4f}, unchanged promises during the warehouse delay "
                      f"{result.unchanged_promises_during_delay}")
        _print_check_lines(result, "regions game day")
    if not result.passed:
        raise typer.Exit(1)


def _flash_crowd(database_url, baseline_database_url, shoppers, units, bot_share, seed, redis_url, report_out,
                 as_json, workers) -> None:
    from ..gameday import FlashCrowdConfig, run_flash_crowd

    for name, url in (("--database-url", database_url), ("--baseline-database-url", baseline_database_url)):
        _check_database_url(url, name)
    if (database_url is None) != (baseline_database_url is None):
        fail("--baseline-database-url: give it together with --database-url (two empty databases: the crowd's "
             "and the run without the crowd)")
    if workers > 1 and not redis_url:
        fail("--workers: more than one server process needs --redis-url (one shared queue and rate limits)")
    cfg = FlashCrowdConfig(shoppers=shoppers, units=units, bot_share=bot_share, seed=seed, server_workers=workers)
    result = _run("flash crowd", lambda progress: run_flash_crowd(
        database_url, baseline_database_url, config=cfg, redis_url=redis_url, progress=progress),
        (RuntimeError, ValueError))
    report = result.to_dict()
    if not _write_report(report, report_out, as_json):
        from rich.table import Table

        figures = Table(title="flash crowd", title_justify="left")
        figures.add_column("figure")
        figures.add_column("value", justify="right")
        for name in ("units", "sold", "sellout_notice_max_s", "admitted_p99_ms", "ordinary_p99_ms", "baseline_p99_ms",
                     "bot_units_share", "pre_open_units_share"):
            figures.add_row(name, str(report[name]))
        console.print(figures)
        _print_verdicts("checks", result.checks.items())
    if not result.passed:
        raise typer.Exit(1)


def _check_database_url(url: str | None, option: str) -> None:
    """Refuse a database URL that is neither SQLite nor PostgreSQL, naming ``option``."""
    if url is not None and not url.startswith(("sqlite", "postgresql", "postgres")):
        fail(f"{option}: unsupported database {url.split(':', 1)[0]!r} (sqlite or postgresql)")


def _run(label: str, run: Callable[[Callable[[str], None]], T], errors: tuple[type[Exception], ...],
         others_on: str | None = None) -> T:
    """``run(progress)`` under a spinner on stderr that shows ``label: <progress message>``. An exception in
    ``errors`` exits with its message; with ``others_on``, any other one too, as ``<others_on>: <type>: <its first
    line>`` (e.g. the database is unreachable: one line, no traceback)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    others: tuple[type[Exception], ...] = (Exception,) if others_on is not None else ()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err_console,
                  transient=True) as bar:
        task = bar.add_task(label, total=None)
        try:
            return run(lambda msg: bar.update(task, description=f"{label}: {msg}"))
        except errors as exc:
            fail(str(exc))
        except others as exc:
            fail(f"{others_on}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")


def _print_views_by_phase(title: str, phases: list[dict], *, failed_over: bool) -> None:
    """The edge and regions game days' product-page views per phase; ``failed_over``: with the column of views that
    took more than one edge node."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in ("from", "phase", "views", "available", *(["failed over"] if failed_over else []), "p99 ms"):
        table.add_column(col)
    for p in phases:
        table.add_row(f"{p['from_s']:.0f} s", p["phase"], str(p["views"]),
                      "-" if p["availability"] is None else f"{p['availability']:.4f}",
                      *([str(p["failed_over"])] if failed_over else []),
                      "-" if p["p99_ms"] is None else f"{p['p99_ms']:,.0f}")
    console.print(table)


def _print_verdicts(title: str, checks: Iterable[tuple[str, int]]) -> None:
    """A table of (check, count) pairs, each ``ok`` at 0 and ``FAILED`` otherwise."""
    from rich.table import Table

    verdicts = Table(title=title, title_justify="left")
    verdicts.add_column("check")
    verdicts.add_column("count", justify="right")
    verdicts.add_column("")
    for key, n in checks:
        verdicts.add_row(key.replace("_", " "), str(n), "[green]ok[/]" if n == 0 else "[bold red]FAILED[/]")
    console.print(verdicts)


def _print_check_lines(result, name: str) -> None:
    """One line per check of ``result`` (``ok`` at 0), then whether the ``name`` passed."""
    for key, n in result.checks.items():
        console.print(f"  {key.replace('_', ' ')}: {n} {'ok' if n == 0 else 'FAILED'}")
    console.print(f"[bold green]{name} passed[/]" if result.passed else f"[bold red]{name} FAILED[/]")


def _write_report(report: dict, report_out: Path | None, as_json: bool) -> bool:
    """Write the report to ``report_out`` when given, and print it as JSON with ``--json``; True when printed."""
    if report_out is not None:
        import json

        report_out.parent.mkdir(parents=True, exist_ok=True)
        report_out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    if as_json:
        print_json(report)
    return as_json


def _print_report(result, checks: tuple[str, ...]) -> None:
    from rich.table import Table

    faults = Table(title="faults injected", title_justify="left")
    faults.add_column("at", justify="right")
    faults.add_column("what")
    for f in result.faults:
        extra = f" (back in {f['restart_s']} s)" if "restart_s" in f else ""
        faults.add_row(f"{f['at_s']:.1f} s", f["label"] + extra)
    console.print(faults)

    phases = Table(title="checkouts by phase (latency: first try to answer)", title_justify="left")
    for col, just in (("from", "right"), ("phase", "left"), ("n", "right"), ("201", "right"), ("4xx", "right"),
                      ("retry", "right"), ("p50 ms", "right"), ("p99 ms", "right")):
        phases.add_column(col, justify=just, no_wrap=True)
    for p in result.phases:
        st = p["statuses"]
        refused = sum(v for k, v in st.items() if k.isdigit() and 400 <= int(k) < 500)
        phases.add_row(f"{p['from_s']:.0f} s", p["phase"], str(p["checkouts"]), str(st.get("201", 0)),
                       str(refused), str(p["retried"]),
                       "-" if p["p50_ms"] is None else f"{p['p50_ms']:,.0f}",
                       "-" if p["p99_ms"] is None else f"{p['p99_ms']:,.0f}")
    console.print(phases)

    t = result.totals
    d = result.drain
    console.print(
        f"{t['accepted']:,} accepted of {t['checkouts']:,} purchases; flash sale: {t['flash_sold']} of "
        f"{t['flash_units']} units sold to {t['flash_attempts']:,} attempts; {t['retried_through_outages']} "
        f"purchases retried through an outage; {t['replays']} double-clicks replayed.")
    console.print(
        f"drain: {'settled' if d['settled'] else 'NOT settled'} after {d['seconds']} s "
        f"(outbox pending {d['outbox_pending']}, payments pending {d['payment_pending_orders']}, "
        f"provisional quotes left {d['provisional_quotes_left']})")
    _print_verdicts("guarantees", ((key, result.checks[key]) for key in checks))
    console.print("[bold green]game day passed[/]" if result.passed else "[bold red]game day FAILED[/]")


def register(app: typer.Typer) -> None:
    """Attach ``shopfloor gameday`` to the root app."""
    app.command("gameday")(gameday)
