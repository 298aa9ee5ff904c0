"""`shopfloor capacity` commands: backtest the predictive planner, and plan the next hours (+ KEDA manifests)."""

from __future__ import annotations

import math
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import typer

from ..validation import not_a_file
from .output import (
    PLOT_SUFFIXES,
    check_output_path,
    console,
    err_console,
    fail,
    load_settings,
    print_json,
    require_store,
)

capacity_app = typer.Typer(
    help="Traffic forecasting and predictive capacity planning (KEDA/Kubernetes plans).", no_args_is_help=True
)


#: Requests per minute beyond this are not traffic but a broken export (1e300 made a 5e298-per-replica plan).
MAX_COUNT_PER_MINUTE = 1e12

#: ``--now`` must lie in these years: pandas holds times from 1677 to 2262 only, and the planner reaches days
#: back and hours ahead of it.
NOW_YEARS = (1900, 2200)


def _check_tz(zone: str, option: str = "--tz") -> None:
    """Refuse a time zone pandas does not know, before any file is read."""
    import pandas as pd

    try:
        pd.Timestamp("2000-01-01").tz_localize(zone)
    except Exception:  # noqa: BLE001 - pytz, zoneinfo and dateutil raise different types
        fail(f"{option}: unknown time zone {zone!r} (use an IANA name such as Europe/Berlin, America/New_York, "
             "Etc/GMT+4 or UTC)")


def _load_trace(trace: Path, tz: str):
    import pandas as pd

    from ..forecast.traffic import TraceError, read_request_trace

    _check_tz(tz)
    try:
        series = read_request_trace(trace, tz=tz)
    except TraceError as exc:
        fail(f"--trace {trace}: {exc.field}: {exc.message}" if exc.field != "trace" else f"--trace: {exc.message}")
    except Exception as exc:  # noqa: BLE001 - anything else about the file: one line, no traceback
        fail(f"--trace {trace}: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
    if len(series) and float(series.max()) > MAX_COUNT_PER_MINUTE:
        counts = pd.to_numeric(pd.read_csv(trace, usecols=["count"])["count"], errors="coerce")
        big = (counts > MAX_COUNT_PER_MINUTE).to_numpy()
        where = f"row {int(big.argmax()) + 2}" if big.any() else "a minute"
        value = counts.iloc[int(big.argmax())] if big.any() else float(series.max())
        fail(f"--trace {trace} {where}: count is {value:g} requests per minute, beyond the sane bound of "
             f"{MAX_COUNT_PER_MINUTE:g} (a broken export?)")
    return series


def _check_now_in_trace(at: datetime, series, trace: Path) -> None:
    """Refuse a --now the trace says nothing about: before its first minute or more than a day after its last
    (the planner would replay minutes that are not in the file, i.e. zero traffic, and answer from no data)."""
    import pandas as pd

    first, last = series.index[0], series.index[-1]
    moment = pd.Timestamp(at)
    if moment < first or moment > last + pd.Timedelta(days=1):
        fail(f"--now: {moment.isoformat()} is outside the trace {trace}, which spans {first.isoformat()} .. "
             f"{last.isoformat()}; give a time within it (or up to a day after its last minute), or leave --now out")


def _trace_until(trace: Path, tz: str, at: datetime | None):
    """The ``--trace`` series, and the moment to decide at: ``--now`` (refused outside the trace) or, when not
    given, the minute after the trace's last."""
    series = _load_trace(trace, tz)
    if at is not None:
        _check_now_in_trace(at, series, trace)
    return series, at or (series.index[-1] + timedelta(minutes=1)).to_pydatetime()


@contextmanager
def _rollup_service(settings):
    """The capacity service over the database's request rollups (without ``--trace``). A database that cannot be
    read exits with one line; a CapacityInputError goes through, for the command to name its option."""
    from ..bootstrap import build_container
    from ..planning.capacity import CapacityInputError
    from ..planning.capacity_service import CapacityService

    require_store(settings.database_url)
    container = build_container(settings)
    try:
        yield CapacityService(container.engine, settings, container.clock)
    except CapacityInputError:
        raise
    except Exception as exc:  # database unreachable or not migrated
        fail(f"database_url: cannot read request rollups ({type(exc).__name__}: {exc})")
    finally:
        container.close()


def _check_positive(value: float | None, option: str) -> None:
    """Refuse a given per-replica capacity that is not a positive, finite number."""
    if value is not None and not (math.isfinite(value) and value > 0):
        fail(f"{option}: must be a positive number, got {value}")


#: CapacityInputError fields that are options of these commands (others are settings or file columns).
_OPTION_OF_FIELD = {
    "capacity_per_replica": "--capacity-per-replica", "lag_minutes": "--lag-minutes", "quantile": "--quantile",
    "headroom": "--headroom", "refit_every": "--refit-every", "scale_in_window": "--scale-in-window",
    "horizon_minutes": "--horizon-minutes", "slot_minutes": "--slot-minutes", "min_replicas": "--min-replicas",
    "now": "--now", "deployment": "--deployment", "namespace": "--namespace", "events": "--events",
}


def _capacity_error(exc, **aliases: str):
    """Exit with a CapacityInputError naming the option it is about (``aliases``: this command's own names), or
    the setting/field when it is not an option."""
    option = aliases.get(exc.field) or _OPTION_OF_FIELD.get(exc.field)
    fail(f"{option}: {exc.message}" if option else f"{exc.field}: {exc.message}")


def _backtest_config(quantile: float | None, headroom: float | None, refit_every: int | None,
                     scale_in_window: int | None):
    """The shipped planner configuration (``PredictiveConfig()``, the one the documented figures are of), with
    only the knobs the user gave changed."""
    from dataclasses import replace

    from ..planning.capacity import PredictiveConfig

    config = PredictiveConfig()
    given = {k: v for k, v in (("headroom", headroom), ("refit_every", refit_every),
                               ("scale_in_window", scale_in_window)) if v is not None}
    if quantile is not None:
        given["forecast"] = replace(config.forecast, quantile=quantile)
    return replace(config, **given) if given else config


def _load_events(events: Path | None, tz: str):
    if events is None:
        return []
    from ..planning.campaigns import CalendarError, read_events

    _check_tz(tz)
    try:
        return read_events(events, tz=tz)
    except CalendarError as exc:
        fail(f"--events {exc.field}: {exc.message}" if exc.field != "events" else f"--events: {exc.message}")


def _parse_now(now: str | None) -> datetime | None:
    """``--now`` as a UTC datetime (naive times are UTC), or None when not given."""
    if now is None:
        return None
    try:
        at = datetime.fromisoformat(now.replace("Z", "+00:00"))
        at = at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        fail(f"--now: {now!r} is not an ISO 8601 timestamp")
    if not NOW_YEARS[0] <= at.year < NOW_YEARS[1]:
        fail(f"--now: {now!r} is outside the years {NOW_YEARS[0]}..{NOW_YEARS[1] - 1} the planner can hold")
    return at


def _parse_seeds(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        fail(f"--flash-crowds: {text!r} is not a comma-separated list of whole-number seeds")
    if not seeds:
        fail("--flash-crowds: give at least one seed, e.g. --flash-crowds 1,2")
    return seeds


@capacity_app.command("backtest")
def backtest(
    trace: list[Path] = typer.Option(
        ..., "--trace", help="CSV with columns minute,count (requests per minute; minute a timestamp with its UTC "
        "offset, a naive timestamp in --tz, or Unix epoch seconds or milliseconds). Repeat for several traces."
    ),
    capacity_per_replica: float | None = typer.Option(
        None,
        "--capacity-per-replica",
        help="Requests per minute one replica serves (trace units). Default: ceil(peak minute / 20), per trace.",
    ),
    lag_minutes: int = typer.Option(10, "--lag-minutes", help="Minutes from requesting a replica to it being ready."),
    schedule_out: Path | None = typer.Option(
        None, "--schedule-out", help="Write the predictive schedule (minute,demand,requested,ready) as CSV here "
        "(one trace only)."
    ),
    plot: Path | None = typer.Option(
        None, "--plot", help="Write a PNG of demand and both planners' ready capacity (one trace only)."
    ),
    tz: list[str] = typer.Option(
        ["UTC"], "--tz", help="Time zone of naive timestamps (e.g. Etc/GMT+4): once for all traces, or once per "
        "--trace in the same order."
    ),
    quantile: float | None = typer.Option(
        None, "--quantile", help="Upper quantile of minute demand the planner covers. Default: the shipped "
        "configuration's (0.96, and 0.98 where the floor is relaxed)."
    ),
    headroom: float | None = typer.Option(
        None, "--headroom", help="Multiplier on the upper-quantile forecast. Default: the shipped configuration's (1)."
    ),
    refit_every: int | None = typer.Option(
        None, "--refit-every", help="Minutes between scheduled re-forecasts. Default: the shipped configuration's (10)."
    ),
    scale_in_window: int | None = typer.Option(
        None, "--scale-in-window", help="Minutes a lower target must last to scale in. Default: the shipped "
        "configuration's (5)."
    ),
    events: Path | None = typer.Option(
        None, "--events", help="Campaign calendar (CSV start,end,kind[,uplift] or YAML/JSON rows): the planner "
        "pre-scales for known events; the report shows the planner with and without it."
    ),
    flash_crowds: str | None = typer.Option(
        None, "--flash-crowds", help="Also replay every trace with seeded synthetic flash crowds (x3-x10, 1-5 min "
        "ramps, 30-120 min, irregular and daily-recurring), one row per seed, e.g. --flash-crowds 1,2,3."
    ),
    crowd_calendar: bool = typer.Option(
        False, "--crowd-calendar", help="Announce the injected crowds as calendar events (uplift learned from the "
        "kind's past crowds), to measure what a campaign calendar is worth."
    ),
    select_on: list[str] = typer.Option(
        [], "--select-on", help="Choose the configuration on the traces whose file name contains this (repeat), "
        "real and with the first crowd seed; every other row is out-of-sample. Default: the built-in defaults."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report (stdout) instead of a table."),
) -> None:
    """Replay traces strictly forward through the reactive HPA baseline and the predictive planner.

    Minutes missing from a trace count as zero demand. Both planners follow the same rules: replicas are ready
    `lag` minutes after their request, removed at once, and cost from request to removal. With one trace (and
    no --flash-crowds or --select-on) the full single-trace report is printed; otherwise one row per trace, each
    labelled in-sample (seen by the choice of configuration) or out-of-sample.
    """
    from ..planning.capacity import CapacityInputError, run_backtest

    _check_positive(capacity_per_replica, "--capacity-per-replica")
    if lag_minutes < 0:
        fail(f"--lag-minutes: must be >= 0, got {lag_minutes}")
    if quantile is not None and not 0.5 <= quantile < 1:
        fail(f"--quantile: must be in [0.5, 1), got {quantile}")
    if headroom is not None and headroom <= 0:
        fail(f"--headroom: must be positive, got {headroom}")
    if refit_every is not None and refit_every < 1:
        fail(f"--refit-every: must be >= 1, got {refit_every}")
    if scale_in_window is not None and scale_in_window < 1:
        fail(f"--scale-in-window: must be >= 1, got {scale_in_window}")
    if len(tz) not in (1, len(trace)):
        fail(f"--tz: give one zone for all traces or one per --trace ({len(trace)}), got {len(tz)}")
    zones = tz * len(trace) if len(tz) == 1 else tz
    for zone in dict.fromkeys(zones):
        _check_tz(zone)
    seeds = _parse_seeds(flash_crowds)
    if crowd_calendar and not seeds:
        fail("--crowd-calendar: needs --flash-crowds")
    if (schedule_out is not None or plot is not None) and (len(trace) > 1 or seeds or select_on):
        fail("--schedule-out/--plot: only with a single --trace (no --flash-crowds or --select-on)")
    if schedule_out is not None:
        check_output_path(schedule_out, "--schedule-out")
    if plot is not None:
        check_output_path(plot, "--plot", suffixes=PLOT_SUFFIXES)
    calendar = _load_events(events, zones[0])
    series_list = [_load_trace(path, zone) for path, zone in zip(trace, zones)]
    config = _backtest_config(quantile, headroom, refit_every, scale_in_window)
    multi = len(trace) > 1 or seeds or select_on
    if multi:
        _backtest_table(trace, series_list, config, calendar, seeds, crowd_calendar, select_on, lag_minutes,
                        capacity_per_replica, as_json)
        return
    series = series_list[0]
    trace_path = trace[0]
    peak = float(series.max())
    if capacity_per_replica is None:
        capacity_per_replica = float(max(1, math.ceil(peak / 20)))
    from rich.progress import Progress

    from ..planning.campaigns import events_on_grid

    start = series.index[0].to_pydatetime()
    grid_events = events_on_grid(calendar, start, len(series)) if calendar else []
    try:
        with Progress(console=err_console, transient=True,
                      disable=as_json or not err_console.is_terminal) as progress:
            task = progress.add_task("replaying minutes", total=len(series))
            report = run_backtest(
                series.to_numpy(dtype=float),
                capacity=capacity_per_replica,
                lag=lag_minutes,
                config=config,
                start=start,
                progress=lambda done: progress.update(task, completed=done),
                events=grid_events,
            )
    except CapacityInputError as exc:
        _capacity_error(exc)
    out = report.to_dict()
    out["trace"] = str(trace_path)
    out["peak_minute"] = peak
    if events is not None:
        out["events_file"] = str(events)
        out["events_in_trace"] = len(grid_events)
    if schedule_out is not None:
        schedule_out.parent.mkdir(parents=True, exist_ok=True)
        from ..forecast.traffic import format_minutes_like_source

        schedule = report.schedule_frame()
        # Same minute labels as the input file, so the schedule joins back onto the trace row for row.
        schedule["minute"] = format_minutes_like_source(series.index, series.attrs.get("source_tz"))
        schedule.to_csv(schedule_out, index=False)
        out["schedule_out"] = str(schedule_out)
    if plot is not None:
        from ..planning.capacity_plot import plot_backtest

        out["plot"] = str(plot_backtest(report, plot))
    if as_json:
        print_json(out)
        return
    from rich.table import Table

    table = Table(
        title=f"capacity backtest: {trace_path.name} (C={capacity_per_replica:g}/min, lag={lag_minutes} min)"
    )
    for col in ("planner", "violation minutes", "replica-minutes"):
        table.add_column(col)
    table.add_row("reactive HPA", str(out["reactive"]["violation_minutes"]), str(out["reactive"]["replica_minutes"]))
    table.add_row("predictive", str(out["predictive"]["violation_minutes"]), str(out["predictive"]["replica_minutes"]))
    if out["with_calendar"] is not None:
        cal = out["with_calendar"]
        table.add_row(f"predictive + calendar ({cal['events']} events)", str(cal["violation_minutes"]),
                      str(cal["replica_minutes"]))
    console.print(table)
    console.print(
        f"violations {out['violation_reduction_pct']}% fewer, replica-minutes {out['extra_replica_minutes_pct']}% more"
    )


def _backtest_table(trace_paths, series_list, config, calendar, seeds, crowd_calendar, select_on, lag,
                    capacity, as_json) -> None:
    from rich.progress import Progress

    from ..planning.capacity import CapacityInputError
    from ..planning.capacity_protocol import CANDIDATES, build_cases, run_protocol

    names = [p.stem for p in trace_paths]
    if len(set(names)) != len(names):
        fail("--trace: two traces have the same file name; rename one so rows can be told apart")
    if select_on and not any(frag.lower() in n.lower() for frag in select_on for n in names):
        fail(f"--select-on: no --trace file name contains {', '.join(select_on)}")
    traces = [(n, s.to_numpy(dtype=float), s.index[0].to_pydatetime()) for n, s in zip(names, series_list)]
    cases = build_cases(traces, crowd_seeds=seeds, calendar=calendar, crowd_calendar=crowd_calendar)
    try:
        with Progress(console=err_console, transient=True,
                      disable=as_json or not err_console.is_terminal) as progress:
            total = len(cases) + (len(CANDIDATES) if select_on else 0)
            task = progress.add_task("replaying traces", total=total)
            result = run_protocol(
                cases, lag=lag, select_on=select_on, config=config, capacity=capacity,
                progress=lambda _name: progress.advance(task),
            )
    except CapacityInputError as exc:
        _capacity_error(exc)
    result["traces"] = [str(p) for p in trace_paths]
    result["flash_crowd_seeds"] = seeds
    if as_json:
        print_json(result)
        return
    from rich.table import Table

    with_cal = any("calendar_violation_ratio" in r for r in result["rows"])
    table = Table(title=f"capacity backtest, lag {lag} min, configuration: {result['configuration']}")
    cols = ["trace", "sample", "C", "reactive viol.", "predictive viol.", "viol. ratio", "replica-min ratio", "target"]
    if with_cal:
        cols += ["+calendar viol. ratio", "+calendar replica-min ratio"]
    cols += ["heuristic viol. ratio", "heuristic replica-min ratio"]
    for col in cols:
        table.add_column(col)
    for r in result["rows"]:
        cells = [r["trace"], r["sample"], f"{r['capacity_per_replica']:g}", str(r["reactive_violation_minutes"]),
                 str(r["predictive_violation_minutes"]), _ratio(r["violation_ratio"]),
                 _ratio(r["replica_minutes_ratio"]), "met" if r["meets_target"] else "NOT met"]
        if with_cal:
            cells += [_ratio(r.get("calendar_violation_ratio")), _ratio(r.get("calendar_replica_minutes_ratio"))]
        cells += [_ratio(r.get("heuristic_violation_ratio")), _ratio(r.get("heuristic_replica_minutes_ratio"))]
        table.add_row(*cells)
    console.print(table)
    if result["selection"]:
        console.print(f"chosen on: {', '.join(result['selection']['cases'])}")


def _ratio(value) -> str:
    return "-" if value is None else f"{value:.3f}"


@capacity_app.command("plan")
def plan(
    trace: Path | None = typer.Option(
        None, "--trace", help="Plan from this minute,count CSV instead of the database's request rollups."
    ),
    tz: str = typer.Option("UTC", "--tz", help="Time zone of naive timestamps in the trace."),
    now: str | None = typer.Option(
        None, "--now", help="Plan as of this UTC time (ISO 8601). Default: now, or just after the trace's end."
    ),
    capacity_rps: float | None = typer.Option(
        None, "--capacity-rps", help="Requests/s per replica at the p99 SLO (default: settings)."
    ),
    lag_minutes: int | None = typer.Option(None, "--lag-minutes", help="Replica boot lag (default: settings)."),
    horizon_minutes: int | None = typer.Option(None, "--horizon-minutes", help="Plan length (default: settings)."),
    slot_minutes: int | None = typer.Option(None, "--slot-minutes", help="Plan grain (default: settings)."),
    demand_forecast: Path | None = typer.Option(
        None, "--demand-forecast", help="CSV/Parquet demand forecast (unique_id=sku or sku/region, ds, mean) for "
        "the cache-warm list. Default: recent order counts from the database."
    ),
    k8s_out: Path | None = typer.Option(
        None, "--k8s-out", help="Write scaledobject.yaml (KEDA) and hpa-fallback.yaml into this directory."
    ),
    deployment: str | None = typer.Option(None, "--deployment", help="Deployment to scale (default: settings)."),
    namespace: str | None = typer.Option(None, "--namespace", help="Namespace (default: settings)."),
    events: Path | None = typer.Option(
        None, "--events", help="Campaign calendar (CSV start,end,kind[,uplift] or YAML/JSON rows; naive times in "
        "--tz): pre-scale for known events (uplift learned from the kind's past events when not given); each "
        "becomes a KEDA cron trigger."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
) -> None:
    """Plan replicas per slot for the next hours from the upper-quantile traffic forecast, plus the cache-warm list.

    The JSON also carries `planner_now`: what the predictive planner asks for this minute (as `capacity desired`)."""
    import pandas as pd

    from ..planning.capacity import (
        CapacityInputError,
        WarmUrlTemplates,
        cache_warm_list,
        plan_capacity,
        policy_from_settings,
    )
    from ..planning.capacity_live import LivePlanner
    from ..planning.k8s import options_from_settings, write_manifests

    settings = load_settings()
    _check_tz(tz)
    at = _parse_now(now)
    _check_positive(capacity_rps, "--capacity-rps")
    for name, value, least in (("--lag-minutes", lag_minutes, 0), ("--horizon-minutes", horizon_minutes, 1),
                               ("--slot-minutes", slot_minutes, 1)):
        if value is not None and value < least:
            fail(f"{name}: must be at least {least} minute{'s' if least != 1 else ''}, got {value}")
    if k8s_out is not None:
        check_output_path(k8s_out, "--k8s-out", directory=True)
    calendar = _load_events(events, tz)
    forecast_frame = None
    if demand_forecast is not None:
        if not demand_forecast.is_file():
            fail(f"--demand-forecast: {demand_forecast} {not_a_file(demand_forecast)}")
        try:
            forecast_frame = (
                pd.read_parquet(demand_forecast)
                if demand_forecast.suffix == ".parquet"
                else pd.read_csv(demand_forecast)
            )
        except Exception as exc:
            fail(f"--demand-forecast: cannot read {demand_forecast}: {exc}")
        missing = [c for c in ("unique_id", "ds", "mean") if c not in forecast_frame.columns]
        if missing:
            fail(f"--demand-forecast {demand_forecast}: missing column(s) {', '.join(map(repr, missing))} (needs "
                 "unique_id, ds, mean, as `shopfloor forecast` writes)")
    overrides = dict(
        capacity_per_minute=None if capacity_rps is None else capacity_rps * 60.0,
        lag_minutes=lag_minutes,
        horizon_minutes=horizon_minutes,
        slot_minutes=slot_minutes,
    )
    try:
        options = options_from_settings(settings, deployment=deployment, namespace=namespace)
        if trace is not None:
            series, at = _trace_until(trace, tz, at)
            policy = policy_from_settings(settings, **overrides)
            the_plan = plan_capacity(
                series, policy, now=at, history_days=settings.capacity_history_days, events=calendar
            )
            planner_now = LivePlanner(policy, history_days=settings.capacity_history_days,
                                      events=calendar).decide(series, at)
            entries, source = [], "none"
            if forecast_frame is not None:
                templates = WarmUrlTemplates(
                    settings.capacity_warm_product_url,
                    settings.capacity_warm_promise_url,
                    settings.capacity_warm_default_country,
                )
                entries = cache_warm_list(
                    forecast_frame,
                    window_start=the_plan.generated_at,
                    window_end=the_plan.generated_at + timedelta(minutes=policy.horizon_minutes),
                    top_n=settings.capacity_warm_top_n,
                    templates=templates,
                )
                source = "demand_forecast"
        else:
            with _rollup_service(settings) as svc:
                the_plan = svc.plan(at, events=calendar, **overrides)
                planner_now = svc.desired(LivePlanner(the_plan.policy, history_days=settings.capacity_history_days,
                                                      events=calendar), at)
                entries, source = svc.warm_list(the_plan, forecast_frame)
    except CapacityInputError as exc:
        _capacity_error(exc, capacity_per_replica="--capacity-rps")
    body = the_plan.to_dict()
    body["planner_now"] = planner_now.to_dict()
    body["cache_warm"] = {"source": source, "urls": [e.to_dict() for e in entries]}
    if k8s_out is not None:
        body["k8s_files"] = [str(p) for p in write_manifests(the_plan, options, k8s_out)]
    if as_json:
        print_json(body)
        return
    from rich.table import Table

    table = Table(title=f"capacity plan from {body['generated_at']} (the predictive planner asks for "
                        f"{planner_now.desired_replicas} now; reactive floor: {body['reactive_floor_now']})")
    for col in ("ready from", "until", "request at", "replicas", "upper rpm"):
        table.add_column(col)
    for w in body["windows"]:
        table.add_row(w["start"], w["end"], w["request_at"], str(w["replicas"]), str(w["forecast_upper_rpm"]))
    console.print(table)
    for ev in body["events"]:
        replicas = ev["replicas"] if ev["replicas"] is not None else "no uplift known: not pre-scaled"
        console.print(f"event {ev['kind']} {ev['start']} .. {ev['end']}: uplift {ev['uplift']} ({ev['uplift_source']}),"
                      f" replicas {replicas}, request at {ev['request_at']}")
    if entries:
        console.print(f"cache-warm list ({source}):")
        for e in entries[:20]:
            console.print(f"  {e.url}  ({e.expected_demand:.1f})")
    if k8s_out is not None:
        console.print(f"wrote {', '.join(body['k8s_files'])}")


@capacity_app.command("desired")
def desired(
    trace: Path | None = typer.Option(
        None, "--trace", help="Replay this minute,count CSV instead of the database's request rollups."
    ),
    tz: str = typer.Option("UTC", "--tz", help="Time zone of naive timestamps in the trace and the calendar."),
    now: str | None = typer.Option(
        None, "--now", help="Decide for the minute holding this UTC time (ISO 8601). Default: now, or the minute "
        "after the trace's end."
    ),
    events: Path | None = typer.Option(
        None, "--events", help="Campaign calendar (CSV start,end,kind[,uplift] or YAML/JSON rows) the planner "
        "pre-scales for."
    ),
    min_replicas: int | None = typer.Option(
        None, "--min-replicas", min=1, help="Replica floor of the replay (default: settings; the backtest uses 1)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the decision as JSON."),
) -> None:
    """How many replicas the predictive planner asks for now (what KEDA's planner trigger polls).

    The planner and configuration `capacity backtest` scores, replayed minute by minute over the recorded traffic
    (the request rollups in the database, or --trace)."""
    from ..planning.capacity import CapacityInputError, policy_from_settings
    from ..planning.capacity_live import LivePlanner

    settings = load_settings()
    _check_tz(tz)
    at = _parse_now(now)
    calendar = _load_events(events, tz)
    try:
        policy = policy_from_settings(settings, min_replicas=min_replicas)
        live = LivePlanner(policy, history_days=settings.capacity_history_days, events=calendar)
        if trace is not None:
            series, at = _trace_until(trace, tz, at)
            decision = live.decide(series, at)
        else:
            with _rollup_service(settings) as svc:
                decision = svc.desired(live, at)
    except CapacityInputError as exc:
        _capacity_error(exc)
    body = decision.to_dict()
    body["planner"] = "PredictivePlanner"
    if as_json:
        print_json(body)
        return
    capped = " (capped at max_replicas)" if decision.capped else ""
    console.print(f"{body['at']}: {decision.desired_replicas} replicas{capped}; the HPA signal alone: "
                  f"{decision.reactive_replicas} (replayed {decision.replayed_minutes} minutes from {body['anchor']})")


def print_demo_capacity(container, *, hours: int = 3) -> dict:
    """For ``shopfloor demo``: print the next ``hours`` of capacity plan and the cache-warm list for the store.

    Plans from the ``request_minutes`` rollups in the container's database (the request-metrics middleware fills
    them); with no traffic recorded yet the plan is the minimum replica count. Returns the plan dict.
    """
    from ..planning.capacity_service import desired_now, service_for

    svc = service_for(container)
    the_plan = svc.plan(horizon_minutes=hours * 60)
    entries, source = svc.warm_list(the_plan)
    body = the_plan.to_dict()
    body["planner_now"] = desired_now(container, svc).to_dict()
    body["cache_warm"] = {"source": source, "urls": [e.to_dict() for e in entries]}
    from rich import box
    from rich.table import Table

    def minute(iso: str) -> str:  # 2026-11-27T23:37:00+00:00 -> 2026-11-27 23:37 (the plan is in UTC)
        return iso[:16].replace("T", " ")

    table = Table(title=f"Capacity plan, next {hours} h (UTC)",
                  caption=f"from {body['observed_minutes']} min of traffic; now: the predictive planner asks for "
                          f"{body['planner_now']['desired_replicas']}, the reactive floor "
                          f"{body['reactive_floor_now']}", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for col, just in (("ready from", "left"), ("until", "left"), ("request at", "left"), ("replicas", "right"),
                      ("upper rpm", "right")):
        table.add_column(col, justify=just, no_wrap=True)
    for w in body["windows"]:
        table.add_row(minute(w["start"]), minute(w["end"]), minute(w["request_at"]), str(w["replicas"]),
                      str(w["forecast_upper_rpm"]))
    console.print(table)
    if not entries:
        console.print(f"[bold]cache-warm list[/] ({source}): (empty)")
        return body
    console.print(f"[bold]cache-warm list[/] ({source}, top {min(10, len(entries))} of {len(entries)}):")
    for e in entries[:10]:
        console.print(f"  {e.url}", overflow="ignore", crop=False, soft_wrap=True)
    return body


def register(app: typer.Typer) -> None:
    """Attach ``shopfloor capacity ...`` to the root app."""
    app.add_typer(capacity_app, name="capacity")
