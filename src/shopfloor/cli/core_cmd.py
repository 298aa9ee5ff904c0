"""Core commands: db, keys, serve, worker, outbox."""

from __future__ import annotations

import signal
import time
from enum import Enum

import typer

from .output import (
    console,
    err_console,
    fail,
    load_settings,
    open_store,
    print_json,
    require_store,
    upgrade_or_fail,
    where,
)

db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (stored hashed; shown once).", no_args_is_help=True)
outbox_app = typer.Typer(help="Outbox (side-effect queue) inspection and repair.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create the store or apply Alembic migrations to SHOPFLOOR_DATABASE_URL (idempotent)."""
    settings = load_settings()
    upgrade_or_fail(settings.database_url)
    console.print(f"[green]database is at the latest schema:[/] {where(settings.database_url)}", soft_wrap=True)


@keys_app.command("create")
def keys_create(
    scope: list[str] = typer.Option(..., "--scope", help="admin, storefront, ingest or scaler (repeatable; "
                                    "scaler: read the capacity planner's replica count, for KEDA)."),
    name: str = typer.Option("cli", "--name", help="A label for the key."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create an API key in an existing store and print it (it cannot be shown again).

    The store is SHOPFLOOR_DATABASE_URL; it must exist (`shopfloor db upgrade` creates it), so a key never lands
    in a new database file nobody serves. Which store got the key goes to stderr."""
    from ..bootstrap import build_container
    from ..domain.errors import DomainError
    from ..store.keys import create_api_key

    settings = load_settings()
    require_store(settings.database_url)
    c = build_container(settings)
    try:
        key_id, secret = create_api_key(c.engine, scope, name, c.clock.now())
    except DomainError as exc:
        fail(f"--{(exc.details or [{}])[0].get('field', 'scope')}: {exc.message}")
    finally:
        c.close()
    err_console.print(f"created {key_id} ({', '.join(sorted(set(scope)))}) in {where(settings.database_url)}",
                      soft_wrap=True, highlight=False)
    if json_out:
        print_json({"id": key_id, "key": secret, "scopes": sorted(set(scope))})
    else:
        typer.echo(secret)


@keys_app.command("list")
def keys_list(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List keys (ids, scopes, created/revoked; never the secrets)."""
    from ..store.keys import list_api_keys

    c = open_store()
    rows = list_api_keys(c.engine)
    c.close()
    if json_out:
        print_json(rows)
        return
    for r in rows:
        console.print(f"{r['id']}  {','.join(r['scopes']):<24} {r['name']:<16} revoked={bool(r['revoked_at'])}")


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="The key id (key_...).")) -> None:
    """Revoke a key (takes effect within the auth cache TTL, 5 s)."""
    from ..store.keys import revoke_api_key

    c = open_store()
    ok = revoke_api_key(c.engine, key_id, c.clock.now())
    c.close()
    if not ok:
        fail(f"key_id: no key {key_id}")
    console.print(f"revoked {key_id}")


@outbox_app.command("status")
def outbox_status_cmd(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Pending, delivered and dead-lettered events, by type."""
    from ..orders import outbox_status

    c = open_store()
    st = outbox_status(c.engine)
    c.close()
    if json_out:
        print_json(st)
        return
    from rich.table import Table

    t = Table(title="outbox")
    for col in ("type", "status", "count"):
        t.add_column(col)
    for row in st["by_type"]:
        t.add_row(row["type"], row["status"], str(row["count"]))
    console.print(t)
    console.print(f"pending={st['pending']} delivered={st['delivered']} dead={st['dead']} "
                  f"oldest pending={st['oldest_pending_at']}")
    for d in st["dead_letters"]:
        console.print(f"[red]dead[/] {d['event_id']} {d['type']} {d['aggregate_id']}: {d['last_error']}")


@outbox_app.command("requeue-dead")
def outbox_requeue() -> None:
    """Put dead-lettered events back into the queue after fixing their cause."""
    from ..orders import requeue_dead

    c = open_store()
    n = requeue_dead(c.engine, c.clock)
    c.close()
    console.print(f"requeued {n} events")


class LogLevel(str, Enum):
    """uvicorn's log levels (a choice, so a typo is Typer's own usage error, not a KeyError inside uvicorn)."""

    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"
    debug = "debug"
    trace = "trace"


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    workers: int = typer.Option(1, min=1, max=64, help="Server processes."),
    log_level: LogLevel = typer.Option(LogLevel.warning, case_sensitive=False, help="uvicorn log level."),
) -> None:
    """Run migrations, then serve the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from ..api.lean_http import PROTOCOL

    settings = load_settings()
    upgrade_or_fail(settings.database_url)
    uvicorn.run(
        # the proxy headers are read by the app's own middleware (settings.http_proxy_headers; see
        # shopfloor.api.proxy), not uvicorn's, which parses every new client address
        "shopfloor.api.app:served_app_from_env", factory=True, host=host, port=port, workers=workers,
        log_level=LogLevel(log_level).value, access_log=False, http=PROTOCOL, loop="uvloop", proxy_headers=False,
        backlog=settings.http_backlog,
    )


def worker(
    once: bool = typer.Option(False, "--once", help="Process until the queue is empty, then exit."),
) -> None:
    """Deliver outbox events, sweep expired reservations, put inspected returns back on hand, delete funnel and
    request rollups past SHOPFLOOR_TOWER_ROLLUP_RETENTION_DAYS and SHOPFLOOR_CAPACITY_ROLLUP_RETENTION_DAYS.

    Events are delivered at least once and deduplicated by their consumers."""
    from datetime import timedelta

    from ..bootstrap import build_container, build_integrations, build_worker
    from ..orders import release_expired_reservations
    from ..promise.service import promise_service
    from ..store.capacity import purge_request_rollups
    from ..store.tower import TowerRepository

    def sweep() -> None:
        release_expired_reservations(c.engine, c.clock)
        promise_service(c).store.apply_due_restocks(c.clock.now())

    def purge_rollups() -> int:
        """Rollups past their retention, a day of the oldest per table kind; the rows deleted."""
        now, deleted = c.clock.now(), 0
        if settings.tower_rollup_retention_days:
            deleted += TowerRepository(c.engine).purge_rollups(
                now - timedelta(days=settings.tower_rollup_retention_days))
        if settings.capacity_rollup_retention_days:
            deleted += purge_request_rollups(c.engine, now - timedelta(days=settings.capacity_rollup_retention_days))
        return deleted

    settings = load_settings()
    upgrade_or_fail(settings.database_url)
    c = build_container(settings)
    w = build_worker(c)
    dispatcher = build_integrations(c)["webhooks.dispatcher"]
    metrics_server = _serve_worker_metrics(c) if not once else None
    if once:
        sweep()
        purge_rollups()
        n = w.drain()
        dispatcher.drain()
        console.print(f"processed {n} events")
        w.close()
        c.close()
        return
    stopping = {"flag": False}

    def _stop(*_):
        stopping["flag"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    last_sweep = 0.0
    last_tower = 0.0
    next_purge = 0.0
    rules_file, tower_loop = _tower_loop(c)

    def tick() -> None:
        nonlocal last_sweep, last_tower, next_purge
        if time.monotonic() - last_sweep >= settings.sweep_interval_s:
            try:
                sweep()
            except Exception as exc:  # noqa: BLE001 - e.g. a lost connection: sweep again next time, keep delivering
                err_console.print(f"[yellow]sweep failed:[/] {type(exc).__name__}: {exc}")
            last_sweep = time.monotonic()
        if time.monotonic() >= next_purge:
            # once a minute, or at the next sweep while a long history is still being cut down a day at a time
            try:
                more = purge_rollups() > 0
            except Exception as exc:  # noqa: BLE001 - retention must never stop deliveries
                err_console.print(f"[yellow]rollup purge failed:[/] {type(exc).__name__}: {exc}")
                more = False
            next_purge = time.monotonic() + (settings.sweep_interval_s if more else 60.0)
        if time.monotonic() - last_tower >= settings.tower_rules_interval_s:
            last_tower = time.monotonic()
            try:
                edited = rules_file.poll()
                if edited is not None:
                    tower_loop.replace_rules(edited)
                tower_loop.tick()
            except Exception as exc:  # noqa: BLE001 - the control tower must never stop deliveries
                err_console.print(f"[yellow]tower tick failed:[/] {type(exc).__name__}: {exc}")

    # Webhook deliveries run on the dispatcher's own threads, so a slow subscriber never holds up the outbox.
    dispatcher.start(settings.outbox_poll_interval_s)
    console.print("[green]worker running[/] (Ctrl-C to stop)")
    w.run_forever(settings.outbox_poll_interval_s, stop=lambda: stopping["flag"], tick=tick)
    if metrics_server is not None:
        metrics_server.shutdown()
    w.close()
    c.close()


def _serve_worker_metrics(c):
    """Serve the worker's metrics registry over HTTP when SHOPFLOOR_WORKER_METRICS_PORT is set (a thread; None
    otherwise). In multiprocess mode (PROMETHEUS_MULTIPROC_DIR) the API's /metrics shows them as well."""
    port, host = c.settings.worker_metrics_port, c.settings.worker_metrics_host
    registry = c.services.get("metrics.registry")
    if not port or registry is None:
        return None
    from prometheus_client import start_http_server

    from ..tower.metrics import collector_registry_for_scrape

    try:
        server, _thread = start_http_server(port, addr=host, registry=collector_registry_for_scrape(registry))
    except OSError as exc:
        c.close()
        fail(f"SHOPFLOOR_WORKER_METRICS_PORT: cannot listen on {host}:{port}: {exc.strerror or exc}")
    console.print(f"worker metrics on http://{host}:{port}/metrics", soft_wrap=True)
    return server


def _tower_loop(c):
    """Funnel anomaly detection every tick, plus the rules file when one exists (re-read when it changes; a file
    that fails validation is reported, never fatal: the tower must not stop deliveries)."""
    from ..tower import RuleSet, RulesFileWatch, TowerLoop

    def report(message: str) -> None:  # one line each, unwrapped: it usually goes to a log file
        err_console.print(f"[yellow]tower rules:[/] {message}", soft_wrap=True)

    watch = RulesFileWatch(c.settings.tower_rules_file, report=report)
    return watch, TowerLoop(c, watch.poll() or RuleSet())


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.add_typer(keys_app, name="keys")
    app.add_typer(outbox_app, name="outbox")
    app.command("serve")(serve)
    app.command("worker")(worker)
    app.command("demo")(demo)


def demo(
    once: bool = typer.Option(False, "--once", help="Exit after the summary instead of serving until Ctrl-C."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port for the demo server."),
    shoppers: int = typer.Option(400, min=1, max=100_000, help="Simulated checkouts in the burst."),
    workdir: str = typer.Option("var/demo", help="Where the demo store (SQLite), logs and mail are written."),
) -> None:
    """A fresh demo store: real-data catalog, 3 warehouses, shoppers, a flash sale and a summary."""
    from pathlib import Path

    from ..demo import DemoError, run_demo

    load_settings()  # the demo's server and worker read the same SHOPFLOOR_* variables: report a bad one here
    try:
        run_demo(once=once, port=port, workdir=Path(workdir), shoppers=shoppers, console=console)
    except DemoError as exc:
        fail(str(exc))
