"""`shopfloor forecast` commands: forecast from files or the database, and rolling-origin backtests.

    shopfloor forecast --history F --horizon H [--future F] --out forecast.parquet
    shopfloor forecast --from-db --horizon H --out forecast.parquet
    shopfloor forecast backtest --history F --horizon 28 --windows 3 --step 28 --json
    shopfloor forecast backtest --history F --horizon 56 --score-from 29 --json   # score days 29..56 only
    shopfloor forecast backtest --history F --select-before 2014-07-01 --write-defaults defaults.json
                                   # choose the default on origins before the date, report on later ones
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from .output import check_output_path, console, err_console, fail, load_settings, print_json, require_store

forecast_app = typer.Typer(
    name="forecast",
    help="Probabilistic demand forecasts (mean + nine quantiles) and rolling-origin backtests.",
    invoke_without_command=True,
    no_args_is_help=False,
)


def _load_history(history: Optional[Path], from_db: bool, db_url: Optional[str]):
    from shopfloor.forecast import ForecastInputError, read_frame

    if from_db:
        from shopfloor.store.engine import make_unpooled_engine
        from shopfloor.store.forecast_queries import daily_sku_region_demand

        url = db_url or load_settings().database_url
        require_store(url)
        engine = make_unpooled_engine(url)
        try:
            frame = daily_sku_region_demand(engine)
        finally:
            engine.dispose()
        if frame.empty:
            fail("from-db: no accepted orders found to build demand series")
        return frame
    if history is None:
        fail("--history: give a history file (CSV or Parquet) or use --from-db")
    try:
        frame = read_frame(history)
    except ForecastInputError as exc:
        fail(f"--history: {exc}")
    except Exception as exc:  # noqa: BLE001 - unreadable file: one line, no traceback
        fail(f"--history: cannot read {history}: {exc}")
    _check_magnitudes(frame, "--history", history)
    return frame


#: Demand, prices and flags beyond this are not data but a broken export (1e308 overflows the models' arithmetic).
MAX_ABS_VALUE = 1e12


def _row_label(path: Optional[Path], i: int) -> str:
    """Row ``i`` (0-based position in the frame) as the file shows it: a CSV's line number (the header is row 1),
    a Parquet file's 1-based record."""
    if path is None:
        return f"row {i + 1}"
    is_parquet = path.name.lower().endswith((".parquet", ".pq"))
    return f"row {i + 1}" if is_parquet else f"row {i + 2}"


def _where(option: str, path: Optional[Path]) -> str:
    return f"{option} {path}" if path is not None else option


def _check_magnitudes(frame, option: str, path: Optional[Path]) -> None:
    """Refuse ``y`` or a numeric covariate beyond +-MAX_ABS_VALUE (or infinite), naming the file, row and column."""
    import numpy as np
    import pandas as pd

    for col in frame.columns:
        if col in ("unique_id", "ds"):
            continue
        values = frame[col]
        if col == "y" and not pd.api.types.is_numeric_dtype(values):
            values = pd.to_numeric(values, errors="coerce")
        elif pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
            continue
        arr = np.abs(values.to_numpy(dtype="float64", na_value=np.nan))
        with np.errstate(invalid="ignore"):
            big = arr > MAX_ABS_VALUE
        if big.any():
            i = int(big.argmax())
            fail(f"{_where(option, path)} {_row_label(path, i)}: {col} is {float(values.iloc[i]):g}, beyond the sane "
                 f"bound of {MAX_ABS_VALUE:g} (a broken export?)")


def _explain_ds(frame, option: str, path: Optional[Path]) -> Optional[str]:
    """After ``ds`` failed to parse: the first row at fault, as a one-line message (None if none is found)."""
    import pandas as pd

    if "ds" not in frame.columns:
        return None
    raw = frame["ds"]
    missing = raw.isna()
    if missing.any():
        return f"{_where(option, path)} {_row_label(path, int(missing.to_numpy().argmax()))}: ds is missing"
    import warnings

    with warnings.catch_warnings():  # pandas' parser warnings (mixed zones, formats): the message below says it
        warnings.simplefilter("ignore")
        try:
            parsed = pd.to_datetime(raw, errors="coerce", format="mixed")
        except (ValueError, TypeError):
            parsed = pd.Series([pd.to_datetime(v, errors="coerce") for v in raw], index=raw.index)
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(bad.argmax())
        return f"{_where(option, path)} {_row_label(path, i)}: ds is not a date: {str(raw.iloc[i])!r}"
    return (f"{_where(option, path)}: column ds mixes date formats (e.g. {str(raw.iloc[0])!r}); write every date "
            "as YYYY-MM-DD")


def _input_error(exc, frame, path: Optional[Path], option: str = "--history", future=None,
                 future_path: Optional[Path] = None) -> str:
    """A ForecastInputError as one line naming the option (and, for bad dates, the file and row)."""
    text = str(exc)
    if exc.column == "ds":
        is_future = text.startswith("future")
        found = _explain_ds(future, "--future", future_path) if is_future and future is not None else (
            _explain_ds(frame, option, path) if not is_future and frame is not None else None)
        if found:
            return found
        text = text.splitlines()[0]
    if text.startswith("future"):
        return f"{_where('--future', future_path)}: {text}"
    if exc.column == "horizon":
        return f"--horizon: {text}"
    return f"{_where(option, path)}: {text}"


def _source(from_db: bool) -> str:
    return "--from-db" if from_db else "--history"


def _check_model(spec: str, option: str = "--model") -> None:
    """Refuse an unknown model or a malformed ensemble before any work, listing the choices."""
    if spec == "auto":
        return
    from shopfloor.forecast.models import parse_weighted_spec

    try:
        parse_weighted_spec(spec)
    except ValueError as exc:
        fail(f"{option}: {str(exc).replace('choose from ', 'choose from auto, ', 1)}")


def _save_and_print_json(result: dict, out: Optional[Path], as_json: bool) -> bool:
    """Write a backtest's result to ``out`` (if given) and print it as JSON when asked; True when it was printed."""
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(result, indent=2, default=str))
        tmp.replace(out)  # never a half-written result
    if as_json:
        print_json(result)
    return as_json


#: Three years of daily forecasts; beyond that a daily demand model says nothing useful, and the work grows with it.
MAX_HORIZON_DAYS = 1096


def _dask_client(address: Optional[str]):
    """A ``distributed.Client`` on the scheduler at ``address`` (None: run locally)."""
    if not address:
        return None
    try:
        from distributed import Client
    except ImportError:
        fail("--dask-scheduler: needs the dask extra (pip install 'shopfloor[dask]')")
    try:
        return Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:
        fail(f"--dask-scheduler: cannot reach a Dask scheduler at {address}: {exc}")


def _run_forecast(
    history: Optional[Path], horizon: int, future: Optional[Path], out: Path, model: str, from_db: bool,
    db_url: Optional[str], n_jobs: int, as_json: bool, dask_scheduler: Optional[str] = None,
) -> None:
    from shopfloor.forecast import ForecastInputError, forecast_demand, read_frame, write_frame

    if not 1 <= horizon <= MAX_HORIZON_DAYS:
        fail(f"--horizon: must be a number of days from 1 to {MAX_HORIZON_DAYS}")
    if n_jobs < 1:
        fail("--jobs: must be at least 1")
    check_output_path(out, "--out")
    _check_model(model)
    frame = _load_history(history, from_db, db_url)
    fut = None
    if future is not None:
        try:
            fut = read_frame(future)
        except Exception as exc:  # noqa: BLE001
            fail(f"--future: cannot read {future}: {exc}")
        _check_magnitudes(fut, "--future", future)
        not_in_future = _future_lacks(frame, fut)
    client = _dask_client(dask_scheduler)
    try:
        quiet = as_json or not err_console.is_terminal  # a spinner only for a person watching stderr
        with _null() if quiet else err_console.status(f"forecasting {horizon} days ahead", spinner="dots"):
            result = forecast_demand(frame, horizon, fut, model=model, n_jobs=n_jobs, dask_client=client)
    except ForecastInputError as exc:
        fail(_input_error(exc, frame, None if from_db else history, _source(from_db), fut, future))
    finally:
        if client is not None:
            client.close()
    write_frame(result, out)
    fallbacks = result.attrs.get("fallbacks", {})
    summary = {
        "out": str(out),
        "rows": int(len(result)),
        "series": int(result["unique_id"].nunique()),
        "horizon": horizon,
        "model": result.attrs.get("model"),
        "fallback_series": len(fallbacks),
        "fallback_reasons": _fallback_reasons(fallbacks),
        "failed_members": list(result.attrs.get("failed_members", {})),
        "cold_start_series": len(result.attrs.get("cold_start", [])),
        "dask_scheduler": dask_scheduler,
    }
    if fut is not None:
        summary["future_rows_covered"] = _future_rows_covered(result, fut)
        summary["covariates_not_in_future"] = not_in_future
    if as_json:
        print_json(summary)
    else:
        ran = ""
        if fallbacks:
            # Say what actually ran: a member that failed (or gave non-finite values) was replaced, for the series
            # concerned, by the trailing 28-day mean.
            members = _members(summary["model"])
            gone = [m for m in members if m in summary["failed_members"]]
            instead = ("every member failed" if members and len(gone) == len(members) else
                       f"in place of {', '.join(gone)}" if gone else "in place of a member's non-finite values")
            ran = (f"; fallback for {summary['fallback_series']} of {summary['series']} series: trailing 28-day "
                   f"mean, {instead}")
        console.print(
            f"wrote {summary['rows']} rows for {summary['series']} series to {out} "
            f"(model {summary['model']}{ran}; {summary['cold_start_series']} cold-start)", soft_wrap=True
        )
    if summary.get("covariates_not_in_future"):
        err_console.print(
            f"[yellow]note:[/] --future {future} lacks the history's covariate column(s) "
            f"{', '.join(map(repr, summary['covariates_not_in_future']))}: the models were trained without them "
            "(give their values over the horizon, e.g. planned prices, to use them)", soft_wrap=True)
    covered = summary.get("future_rows_covered")
    if covered is not None and covered < summary["rows"]:
        # Not an error (a new SKU may have no planned prices yet), but a shifted or partial file is a likely mistake.
        err_console.print(
            f"[yellow]note:[/] --future covers {covered} of the {summary['rows']} (unique_id, ds) rows of the "
            "horizon; the others carried each series' last known covariates forward")


def _members(spec: Optional[str]) -> list[str]:
    from shopfloor.forecast.models import parse_spec

    try:
        return parse_spec(spec or "")
    except ValueError:
        return []


def _fallback_reasons(fallbacks: dict) -> dict[str, int]:
    """``{reason: number of series}``, most frequent first (a reason names the member that failed and why)."""
    from collections import Counter

    return dict(Counter(str(r) for r in fallbacks.values()).most_common())


def _future_lacks(history, future) -> list[str]:
    """The history's covariate columns a --future file does not give. The models use a covariate over the horizon
    only when the future file gives it, so these are left out of the models, not guessed (rows a file leaves out
    are different: each series' last known value is carried forward, with a note). Said on stderr, not refused:
    a history exported with calendar columns nobody plans ahead (week numbers, say) still forecasts."""
    from shopfloor.forecast.frames import covariate_columns

    return [c for c in covariate_columns(history) if c not in future.columns]


def _future_rows_covered(result, future) -> int:
    """How many (unique_id, ds) rows of the forecast horizon the --future file has covariates for."""
    import pandas as pd

    def keys(frame):
        out = pd.DataFrame({"unique_id": frame["unique_id"].astype(str),
                            # naive and zone-aware stamps both become naive UTC days, so they can be compared
                            "ds": pd.to_datetime(frame["ds"], errors="coerce", utc=True).dt.tz_convert(None)
                            .dt.normalize()})
        return out.drop_duplicates()

    return int(len(keys(result).merge(keys(future), on=["unique_id", "ds"], how="inner")))


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@forecast_app.callback()
def forecast(
    ctx: typer.Context,
    history: Optional[Path] = typer.Option(None, "--history", help="Long frame unique_id, ds, y (+ numeric covariates), CSV or Parquet."),
    horizon: int = typer.Option(28, "--horizon", help="Days to forecast."),
    future: Optional[Path] = typer.Option(None, "--future", help="Covariates over the horizon: unique_id, ds + the history's covariate columns."),
    out: Path = typer.Option(Path("forecast.parquet"), "--out", help="Output file (.parquet or .csv)."),
    model: str = typer.Option("auto", "--model", help="auto (backtested default), a model name, or an ensemble like lgbm+ets."),
    from_db: bool = typer.Option(False, "--from-db", help="Build SKU x region x day series from accepted orders in the database."),
    db_url: Optional[str] = typer.Option(None, "--db-url", help="Database URL for --from-db (default: SHOPFLOOR_DATABASE_URL)."),
    n_jobs: int = typer.Option(1, "--jobs", min=1, help="CPU threads/processes for the models."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary instead of text."),
    dask_scheduler: Optional[str] = typer.Option(
        None, "--dask-scheduler", help="Run every model on this Dask cluster (e.g. tcp://10.0.0.5:8786): "
        "statistical members through statsforecast/fugue, LightGBMs through mlforecast's distributed training."),
) -> None:
    """Forecast daily demand: writes unique_id, ds, mean and nine quantiles (q_0.005 .. q_0.995)."""
    if ctx.invoked_subcommand is not None:
        return
    if history is None and not from_db:
        console.print(ctx.get_help())
        raise typer.Exit(0)
    _run_forecast(history, horizon, future, out, model, from_db, db_url, n_jobs, as_json, dask_scheduler)


@forecast_app.command("backtest")
def backtest_cmd(
    history: Optional[Path] = typer.Option(None, "--history", help="Long frame unique_id, ds, y (+ covariates)."),
    horizon: int = typer.Option(28, "--horizon", help="Days forecast from each origin."),
    windows: int = typer.Option(3, "--windows", help="Number of rolling origins."),
    step: int = typer.Option(28, "--step", help="Days between origins."),
    model: list[str] = typer.Option(["auto"], "--model", help="Model(s) to score (repeatable); baselines are always added."),
    conformal_windows: int = typer.Option(3, "--conformal-windows", help="Calibration windows for the baselines' conformal intervals."),
    score_from: int = typer.Option(1, "--score-from", help="First horizon day scored (e.g. 29 with --horizon 56 scores days 29..56)."),
    from_db: bool = typer.Option(False, "--from-db", help="Backtest on SKU x region x day series from the database."),
    db_url: Optional[str] = typer.Option(None, "--db-url", help="Database URL for --from-db."),
    n_jobs: int = typer.Option(1, "--jobs", min=1, help="CPU threads/processes for the models."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the JSON result to this file."),
    as_json: bool = typer.Option(False, "--json", help="Print the full JSON result."),
    select_before: Optional[str] = typer.Option(
        None, "--select-before", help="YYYY-MM-DD. Choose the default (members, weights, dispersion) only on origins "
        "whose scored days end before this date, then report it on >= 6 later origins (days 1-28 and 29-56 of a "
        "56-day forecast, per origin). --windows/--step/--score-from do not apply."),
    candidate: list[str] = typer.Option([], "--candidate", help="With --select-before: a candidate ensemble "
                                        "(repeatable; default: the built-in list). Its weights are fitted."),
    report_only: bool = typer.Option(False, "--report-only", help="With --select-before: skip selection and report "
                                     "the installed default (refused if it was selected on later data)."),
    write_defaults: Optional[Path] = typer.Option(None, "--write-defaults", help="With --select-before: write the "
                                                  "selection (what `auto` means) to this JSON file."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Keep per-origin member forecasts here, so a "
                                             "rerun or another candidate costs only its own fits."),
    report_step: int = typer.Option(91, "--report-step", help="With --select-before: days between reporting origins."),
    select_step: int = typer.Option(91, "--select-step", help="With --select-before: days between selection origins."),
    baseline_intervals: str = typer.Option("conformal", "--baseline-intervals", help="With --select-before: the "
                                           "reported baselines' intervals, conformal (conformal-windows + 1 fits) "
                                           "or model (AutoETS's own, one fit)."),
) -> None:
    """Rolling-origin backtest with RMSSE, dollar-weighted RMSSE, scaled pinball and 50/95 % coverage."""
    if out is not None:
        check_output_path(out, "--out")
    for name in model:
        _check_model(name)
    if select_before is not None:
        _protocol_backtest(history, from_db, db_url, select_before, candidate, model, report_only, write_defaults,
                           cache_dir, report_step, select_step, conformal_windows, n_jobs, out, as_json,
                           baseline_intervals)
        return

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from shopfloor.forecast import BacktestSpec, ForecastInputError, backtest

    for name, value in (("--horizon", horizon), ("--windows", windows), ("--step", step)):
        if value < 1:
            fail(f"{name}: must be a positive integer")
    if horizon > MAX_HORIZON_DAYS:
        fail(f"--horizon: at most {MAX_HORIZON_DAYS} days")
    if not 1 <= score_from <= horizon:
        fail("--score-from: must be between 1 and --horizon")
    if conformal_windows < 2:
        fail("--conformal-windows: conformal intervals need at least 2 calibration windows")
    frame = _load_history(history, from_db, db_url)
    spec = BacktestSpec(
        horizon=horizon, windows=windows, step=step, conformal_windows=conformal_windows, score_from=score_from
    )
    try:
        # On stderr, and gone when it stops (nothing at all when stderr is not a terminal): stdout stays the result.
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err_console,
                      transient=True, disable=as_json or not err_console.is_terminal) as bar:
            task = bar.add_task("backtest", total=None)
            result = backtest(
                frame, spec, models=tuple(model), n_jobs=n_jobs,
                progress=lambda msg: bar.update(task, description=msg),
            )
    except ForecastInputError as exc:
        option = {"conformal_windows": "--conformal-windows", "model": "--model"}.get(exc.column or "")
        fail(f"{option}: {exc}" if option else _input_error(exc, frame, None if from_db else history, _source(from_db)))
    except ValueError as exc:
        fail(f"backtest: {exc}")
    if _save_and_print_json(result, out, as_json):
        return
    scored = f", days {score_from}..{horizon} scored" if score_from > 1 else ""
    table = Table(title=f"backtest h={horizon}, {windows} windows, step {step}{scored}")
    cols = ["rmsse", "wrmsse", "spl", "wspl", "coverage_50", "coverage_95"]
    table.add_column("model")
    for c in cols:
        table.add_column(c.replace("coverage_", "cov"), justify="right")
    undefined = False
    for name, scores in result["models"].items():
        undefined = undefined or any(scores.get(c) is None for c in ("rmsse", "spl"))
        table.add_row(name, *("-" if scores.get(c) is None else f"{scores[c]:.4f}" for c in cols))
    console.print(table)
    if undefined:
        console.print("-: not defined. RMSSE and SPL are scaled by each series' day-to-day change since its first "
                      "sale; a series that never changed (e.g. all zeros) has no scale and is left out, and with "
                      "none left the score is null in --json. wrmsse/wspl also need a price column.", soft_wrap=True)
    if "targets" in result:
        console.print({k: v for k, v in result["targets"].items() if k != "met"})
        console.print({"met": result["targets"]["met"]})


def _protocol_backtest(
    history, from_db, db_url, select_before, candidates, models, report_only, write_defaults, cache_dir,
    report_step, select_step, conformal_windows, n_jobs, out, as_json, baseline_intervals="conformal",
) -> None:
    """``backtest --select-before DATE``: selection on earlier origins, report on later ones."""
    import json
    from dataclasses import replace

    import pandas as pd
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from shopfloor.forecast import ForecastConfig, ForecastInputError
    from shopfloor.forecast.demand import load_default_selection
    from shopfloor.forecast.protocol import (
        DEFAULT_CANDIDATES,
        ProtocolSpec,
        SelectionGrid,
        check_reportable,
        protocol_origins,
        report,
        select_default,
    )
    from shopfloor.forecast.frames import validate_history

    try:
        before = pd.Timestamp(select_before)
    except (ValueError, TypeError, OverflowError):
        before = pd.NaT
    if pd.isna(before):  # "" and "NaT" parse to NaT
        fail(f"--select-before: not a date: {select_before!r} (use YYYY-MM-DD)")
    if write_defaults is not None:
        check_output_path(write_defaults, "--write-defaults")
    if cache_dir is not None:
        check_output_path(cache_dir, "--cache-dir", directory=True)
    if baseline_intervals not in ("conformal", "model"):
        fail("--baseline-intervals: conformal or model")
    for name, value in (("--report-step", report_step), ("--select-step", select_step)):
        if value < 1:
            fail(f"{name}: must be a positive integer")
    frame = _load_history(history, from_db, db_url)
    spec = ProtocolSpec(select_before=before, report_step=report_step, select_step=select_step,
                        conformal_windows=conformal_windows, baseline_intervals=baseline_intervals)
    result: dict = {"select_before": str(before.date())}
    try:
        hist = validate_history(frame)
        selection_cuts, reporting_cuts = protocol_origins(hist, spec)
        if len(reporting_cuts) < 6:
            fail(f"--select-before: only {len(reporting_cuts)} reporting origin(s) after {before.date()} "
                 f"(need 6; reporting origins are every {report_step} days back from the last day). Use an "
                 "earlier date or a smaller --report-step")
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err_console,
                      transient=True, disable=as_json or not err_console.is_terminal) as bar:
            task = bar.add_task("protocol", total=None)

            def progress(msg: str) -> None:
                bar.update(task, description=msg)

            if report_only:
                selection = load_default_selection()
                check_reportable(selection, before)
            else:
                grid = SelectionGrid(candidates=tuple(candidates) or DEFAULT_CANDIDATES)
                selection, _ = select_default(hist, spec, grid, cutoffs=selection_cuts, cache_dir=cache_dir,
                                              n_jobs=n_jobs, progress=progress)
                result["selection"] = selection.to_json()
                if write_defaults is not None:
                    write_defaults.parent.mkdir(parents=True, exist_ok=True)
                    write_defaults.write_text(json.dumps(selection.to_json(), indent=2) + "\n")
            base = ForecastConfig()
            chosen_cfg = replace(base, dispersion=selection.dispersion_config(base.dispersion))
            labelled = {"selected": (selection.model, chosen_cfg)}
            for extra in models:
                if extra != "auto":
                    labelled[extra] = (extra, base)
            result["report"] = report(hist, spec, labelled, cutoffs=reporting_cuts, cache_dir=cache_dir,
                                      n_jobs=n_jobs, progress=progress)
    except ForecastInputError as exc:
        if exc.column == "select_before":
            fail(f"--select-before: {exc}")
        fail(_input_error(exc, frame, None if from_db else history, _source(from_db)))
    except ValueError as exc:
        fail(f"backtest: {exc}")
    if _save_and_print_json(result, out, as_json):
        return
    _print_protocol(result)


def _print_protocol(result: dict) -> None:
    from rich.table import Table

    sel = result.get("selection")
    if sel:
        console.print(f"[bold]selected[/] on {len(sel['selected_on']['cutoffs'])} origins before "
                      f"{sel['select_before']}: model {sel['model']}, dispersion scale {sel['dispersion_scale']}, "
                      f"growth {sel.get('dispersion_growth')}")
    rep = result["report"]
    labels = [k for k in rep["rows"][0]["scores"] if not k.startswith("baseline:")]
    for label in labels:
        table = Table(title=f"{label}: reporting origins (out-of-sample), dollar-weighted RMSSE / SPL")
        for col in ("cutoff", "days", "model", "AutoETS", "SNaive", "vs AutoETS", "wSPL", "wSPL AutoETS",
                    "cov95"):
            table.add_column(col, justify="right")
        for row in rep["rows"]:
            s, e, n = row["scores"][label], row["scores"]["baseline:ets"], row["scores"]["baseline:snaive"]
            table.add_row(row["cutoff"], row["days"], f"{s['wrmsse']:.4f}", f"{e['wrmsse']:.4f}",
                          f"{n['wrmsse']:.4f}", f"{100 * (s['wrmsse'] / e['wrmsse'] - 1):+.1f} %",
                          f"{s['wspl']:.4f}", f"{e['wspl']:.4f}", f"{s['coverage_95']:.1f}")
        console.print(table)
        for days, summ in rep["summary"].items():
            t = summ["targets"].get(label)
            if t:
                console.print(f"days {days}: {t['wrmsse_pct_below_ets']:.1f} % below AutoETS (worst origin "
                              f"{t['worst_origin_pct_worse_than_ets']:+.1f} %), wSPL "
                              f"{t['wspl_pct_below_conformal_ets']:.1f} % below conformal AutoETS, cov95 "
                              f"{t['coverage_95']:.1f}; met: {t['met']}")


def register(app: typer.Typer) -> None:
    """Attach ``shopfloor forecast`` (and ``forecast backtest``) to the root app."""
    app.add_typer(forecast_app, name="forecast")
