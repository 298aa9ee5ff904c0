"""`shopfloor payments` commands."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import typer

from ..config import Settings
from .output import console, db_error, fail, load_settings, print_json, require_store, where

payments_app = typer.Typer(help="Payment processors: breakers, error rates, ledgers.", no_args_is_help=True)


def collect_status(settings: Settings, *, max_age_s: float, ledger_window_s: float) -> dict[str, Any]:
    """Status as persisted by the server processes (see docs/payments.md, "Operator view").

    * Breaker states and window error rates come from the snapshots each process writes at most every
      ``payments_health_snapshot_interval_s`` (only snapshots younger than ``max_age_s`` count as live).
    * The ledger block counts what the simulated gateways recorded in the last ``ledger_window_s`` seconds.
    """
    from sqlalchemy import case, func, select

    from ..bootstrap import simulator_url
    from ..domain.clock import SystemClock
    from ..orders.payments_service import PROCESSOR_ORDER_KEY, ProcessorHealthStore
    from ..store.engine import make_unpooled_engine
    from ..store.payments_tables import payments_runtime, sim_gateway_charges, sim_gateway_faults

    clock = SystemClock()
    engine = make_unpooled_engine(settings.database_url)
    # The simulated gateways are another system: on SQLite their ledger and faults live in their own file.
    sim_url = simulator_url(settings)
    sim_engine = engine if sim_url is None else make_unpooled_engine(sim_url)
    try:
        snapshots = ProcessorHealthStore(engine, clock).read(max_age_s=max_age_s)
        since = clock.now() - timedelta(seconds=ledger_window_s)
        t = sim_gateway_charges
        with engine.connect() as conn:
            stored_order = conn.execute(
                select(payments_runtime.c.value).where(payments_runtime.c.key == PROCESSOR_ORDER_KEY)
            ).scalar_one_or_none()
        faults: dict[str, Any] = {}
        ledger_rows: list[Any] = []
        if sim_url is None or _sqlite_file_exists(sim_url):  # no file yet: nothing was charged
            with sim_engine.connect() as conn:
                faults = {r.name: r.config for r in conn.execute(select(sim_gateway_faults))}
                ledger_rows = conn.execute(
                    select(
                        t.c.processor,
                        func.count().label("requests"),
                        func.sum(case((t.c.authorized, 1), else_=0)).label("authorized"),
                        func.sum(case((t.c.declined, 1), else_=0)).label("declined"),
                        func.sum(case((t.c.captured, 1), else_=0)).label("captured"),
                        func.sum(case((t.c.voided, 1), else_=0)).label("voided"),
                    )
                    .where(t.c.created_at >= since)
                    .group_by(t.c.processor)
                ).all()
    finally:
        engine.dispose()
        if sim_engine is not engine:
            sim_engine.dispose()

    order = list(stored_order) if stored_order else list(settings.payments_processors)
    names = list(dict.fromkeys([*order, *settings.payments_processors, *(s["processor"] for s in snapshots)]))
    ledger = {r.processor: r for r in ledger_rows}
    out = []
    for name in names:
        snaps = [s for s in snapshots if s["processor"] == name]
        calls = sum(s["window_calls"] for s in snaps)
        failures = sum(s["window_failures"] for s in snaps)
        counters: dict[str, int] = {}
        for s in snaps:
            for k, v in (s["counters"] or {}).items():
                counters[k] = counters.get(k, 0) + int(v)
        row = ledger.get(name)
        out.append(
            {
                "processor": name,
                "position": order.index(name) if name in order else None,
                "breakers": {s["instance"]: s["breaker_state"] for s in snaps},
                "recent_calls": calls,
                "recent_failures": failures,
                "recent_error_rate": round(failures / calls, 4) if calls else None,
                "counters": counters,
                "snapshot_age_s": (
                    round(min((clock.now() - s["updated_at"]).total_seconds() for s in snaps), 1) if snaps else None
                ),
                "ledger": {
                    "window_s": ledger_window_s,
                    "requests": int(row.requests) if row else 0,
                    "authorized": int(row.authorized or 0) if row else 0,
                    "declined": int(row.declined or 0) if row else 0,
                    "captured": int(row.captured or 0) if row else 0,
                    "voided": int(row.voided or 0) if row else 0,
                },
                "faults": faults.get(name),
            }
        )
    return {"order": order, "processors": out, "rates_faults": faults.get("rates")}


def _sqlite_file_exists(url: str) -> bool:
    from pathlib import Path

    path = url.split("sqlite:///", 1)[1] if "sqlite:///" in url else ""
    return bool(path) and Path(path).exists()


@payments_app.command("status")
def status(
    json_out: bool = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table."),
    max_age: float = typer.Option(
        300.0, "--max-age", help="Ignore breaker snapshots older than this many seconds (dead processes)."
    ),
    window: float = typer.Option(3600.0, "--window", help="Seconds of simulated-gateway ledger to summarise."),
) -> None:
    """Breaker states and recent error rates per processor, as the server processes last reported them."""
    year = 366 * 86400.0  # snapshots and the ledger are kept far less long; past this a value is a typo
    for option, value in (("--max-age", max_age), ("--window", window)):
        if not (0 < value <= year):  # NaN fails this too
            fail(f"{option} must be a number of seconds > 0 and at most {year:,.0f} (a year), got {value}")
    settings = load_settings()
    require_store(settings.database_url)
    try:
        data = collect_status(settings, max_age_s=max_age, ledger_window_s=window)
    except Exception as exc:  # database unreachable or not migrated
        fail(f"database: cannot read payment status from {where(settings.database_url)}: "
             f"{db_error(exc, settings.database_url)}")
    if json_out:
        print_json(data)
        return
    from rich.table import Table

    table = Table(title=f"payment processors (order: {' > '.join(data['order'])})")
    for col in ("processor", "breakers", "recent error rate", "calls", "ledger auth/decl/capt", "faults"):
        table.add_column(col)
    for p in data["processors"]:
        breakers = ", ".join(sorted(set(p["breakers"].values()))) or "no live process"
        rate = "-" if p["recent_error_rate"] is None else f"{100 * p['recent_error_rate']:.1f}%"
        led = p["ledger"]
        f = p["faults"] or {}
        fault_txt = "down" if f.get("down") else ", ".join(
            f"{k}={v}" for k, v in f.items() if k.endswith("_rate") and v
        ) or "-"
        table.add_row(
            p["processor"], breakers, rate, str(p["recent_calls"]),
            f"{led['authorized']}/{led['declined']}/{led['captured']}", fault_txt,
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Attach this area's commands to the root app."""
    app.add_typer(payments_app, name="payments")
