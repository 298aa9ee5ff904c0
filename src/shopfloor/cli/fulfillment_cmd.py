"""`shopfloor fulfillment` commands."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ..validation import not_a_file
from .output import console, fail, open_store, print_json

if TYPE_CHECKING:
    from ..fulfillment import EventWindow

fulfillment_app = typer.Typer(help="Fulfillment events: import feeds into the promise statistics.",
                              no_args_is_help=True)

#: Events written per transaction (each batch is folded into the statistics at once).
BATCH = 1000
#: How a message quotes a bad value (at most this many characters of it).
_SHOWN = 40
_WHOLE = re.compile(r"[+-]?[0-9]+", re.ASCII)


def _cell(name: str, value):
    """A file's cell as the API would receive it: None for an empty one (an empty CSV cell, a Parquet null), plain
    Python values for pandas' and NumPy's; ``qty`` written as a whole number (CSV text, or a Parquet float column:
    pandas stores an integer column with gaps as floats) becomes the integer, as a JSON integer would be. Everything
    else is left to :class:`EventIn` (``restock`` as text: true/false, yes/no, 1/0)."""
    import pandas as pd

    if value is None or (isinstance(value, str) and value == ""):
        return None
    if not isinstance(value, str) and pd.api.types.is_scalar(value) and pd.isna(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # a NumPy scalar
        value = value.item()
    if name == "qty":
        if isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
    return value


def _has_nul(path: Path) -> bool:
    with path.open("rb") as f:
        return any(b"\0" in chunk for chunk in iter(lambda: f.read(1 << 20), b""))


def _shown(value) -> str:
    return repr(value.isoformat() if isinstance(value, datetime) else value)[:_SHOWN + 2]


def _problem(error: dict) -> str:
    """One validation error of :class:`EventIn` as the CLI says it: the field first (``country 'XYZ' is not a
    two-letter country code``)."""
    from ..fulfillment import EVENT_TYPES, RETURN_QTY_MAX, RETURN_REASONS

    loc, kind, value = error.get("loc", ()), error.get("type", ""), error.get("input")
    msg = error.get("msg", "").removeprefix("Value error, ")
    if not loc:  # a rule over several fields (an event's destination)
        return msg
    name = str(loc[0])
    choices = {"type": EVENT_TYPES, "reason": RETURN_REASONS}
    if kind == "missing":
        return f"{name} is required"
    if kind == "string_too_short":
        return f"{name} is empty"
    if kind == "string_too_long":
        return f"{name} is longer than {error['ctx']['max_length']} characters"
    if kind == "string_pattern_mismatch" and name == "country":
        return f"country {_shown(value)} is not a two-letter country code"
    if kind == "string_pattern_mismatch":
        return f"{name} {_shown(value)} may hold only letters, digits and _ . : - /"
    if kind == "string_type":
        return f"{name} {_shown(value)} is not text"
    if kind == "nul_character":
        return f"{name}: {msg}"
    if kind == "literal_error" and name in choices:
        return f"{name} must be one of {', '.join(choices[name])}"
    if kind == "timezone_aware":
        return f"{name} must carry a UTC offset (e.g. 2024-05-01T10:00:00Z)"
    if kind.startswith(("datetime_", "date_")) and kind != "datetime_range":
        return (f"{name} {_shown(value)} is not a date-time (ISO 8601 with a UTC offset, e.g. "
                "2024-05-01T10:00:00Z)")
    if kind == "datetime_range":
        return f"{name} {msg}"
    if name == "qty" and kind in ("greater_than_equal", "less_than_equal"):
        return f"qty {str(value)[:_SHOWN]} is out of range (allowed: 1 to {RETURN_QTY_MAX:,})"
    if name == "qty":
        return f"qty {_shown(value)} is not a whole number (allowed: 1 to {RETURN_QTY_MAX:,})"
    if kind.startswith("bool_"):
        return f"{name} {_shown(value)} must be true or false"
    return f"{name}: {msg}"


def read_events(path: Path) -> list:
    """Every ``FulfillmentEvent`` of a CSV or Parquet file, each row held to the rules of
    ``POST /v1/fulfillment/events`` (:class:`shopfloor.fulfillment.EventIn`; how far from the clock its times may be
    is :func:`check_times`), all rows checked before any is returned. Raises ValueError naming the row (the CSV
    line: the header is row 1) and the column on bad input."""
    import pandas as pd
    from pydantic import ValidationError

    from ..fulfillment import EVENT_FIELDS, REQUIRED_FIELDS, EventIn

    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            df = pd.read_parquet(path)
        elif path.suffix.lower() in {".csv", ".txt"}:
            # pandas' C parser cuts a cell at a NUL character ("a\0b" is read "a"); its Python parser keeps it
            # for EventIn to refuse, as the API does
            df = pd.read_csv(path, dtype=str, keep_default_na=False, engine="python" if _has_nul(path) else "c")
        else:
            raise ValueError(f"unsupported format {path.suffix!r} (use .csv or .parquet)")
    except pd.errors.EmptyDataError:
        raise ValueError("the file is empty (no header row)") from None
    except UnicodeDecodeError:
        raise ValueError("not a UTF-8 text file") from None
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt Parquet file, an unreadable path: one line
        raise ValueError(f"cannot read it: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}") from None
    columns = [str(c) for c in df.columns]
    missing = [c for c in REQUIRED_FIELDS if c not in columns]
    if missing:
        raise ValueError(f"missing column(s) {', '.join(missing)}")
    unknown = [c for c in columns if c not in EVENT_FIELDS]
    if unknown:  # the API refuses a field it does not know (a misspelt one would be lost)
        raise ValueError(f"unknown column(s) {', '.join(repr(c)[:_SHOWN + 2] for c in unknown)} (the columns are "
                         f"{', '.join(EVENT_FIELDS)})")

    events = []
    for row, rec in enumerate(df.to_dict("records"), start=2):
        cells = {name: _cell(name, value) for name, value in zip(columns, rec.values())}
        try:
            event = EventIn.model_validate({k: v for k, v in cells.items() if v is not None})
        except ValidationError as exc:
            raise ValueError(f"row {row}: {_problem(exc.errors()[0])}") from None
        missing = event.missing_return_fields()
        if missing:
            raise ValueError(f"row {row}: {missing[0]} is required for a returned event")
        events.append(event.to_event())
    return events


def check_times(events: list, window: EventWindow) -> None:
    """Every event's times within ``window`` (as the API holds them: settings ``fulfillment_max_future_h`` and
    ``fulfillment_max_age_days`` around the store's clock). Raises ValueError naming the first row that is not."""
    for row, e in enumerate(events, start=2):
        out = window.check(e)
        if out is not None:
            raise ValueError(f"row {row}: {out.field} {out.text}")


def check_returns_known(engine, events: list) -> None:
    """Every returned SKU must be in the catalog and a restocking return's warehouse known (what the store refuses
    per batch), checked for the whole file before anything is written. Raises ValueError naming the row."""
    from sqlalchemy import select

    from ..store.tables import skus, warehouses

    returns = [(row, e) for row, e in enumerate(events, start=2) if e.type == "returned"]
    if not returns:
        return
    wanted_skus = sorted({e.sku for _, e in returns})
    wanted_wh = sorted({e.warehouse for _, e in returns if e.restock})
    known_skus: set[str] = set()
    known_wh: set[str] = set()
    with engine.connect() as conn:
        for i in range(0, len(wanted_skus), 500):
            known_skus |= {r[0] for r in conn.execute(select(skus.c.sku).where(skus.c.sku.in_(wanted_skus[i:i + 500])))}
        for i in range(0, len(wanted_wh), 500):
            known_wh |= {r[0] for r in conn.execute(
                select(warehouses.c.id).where(warehouses.c.id.in_(wanted_wh[i:i + 500])))}
    for row, e in returns:
        if e.sku not in known_skus:
            raise ValueError(f"row {row}: sku {e.sku!r} is not in the catalog")
        if e.restock and e.warehouse not in known_wh:
            raise ValueError(f"row {row}: warehouse {e.warehouse!r} is unknown (a restocking return goes back on "
                             "hand there)")


@fulfillment_app.command("import")
def import_events(
    file: Path = typer.Argument(..., help="CSV or Parquet file with columns event_id, order_id, type, at, warehouse "
                                "and optionally carrier, country, postal_code, region, placed_at, origin_region; "
                                "returned events also sku, qty, reason and restock (true/false)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary instead of text."),
) -> None:
    """Load fulfillment events into the database (all rows or none).

    Every row is checked before anything is written, by the rules of POST /v1/fulfillment/events (times at most
    fulfillment_max_future_h ahead and fulfillment_max_age_days back included). Idempotent: events already stored
    are skipped, so running the same file again after an interruption finishes the import.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from ..domain.errors import DomainError
    from ..fulfillment import EventWindow
    from ..promise.service import promise_service

    if not file.is_file():
        fail(f"FILE: {file} {not_a_file(file)}")
    try:
        events = read_events(file)
    except ValueError as exc:
        fail(f"{file.name}: {exc}")
    if not events:
        fail(f"{file.name}: the file has no rows (only a header)")
    container = open_store()
    accepted = duplicates = 0
    try:
        try:
            now = container.clock.now()
            check_times(events, EventWindow.from_settings(container.settings, now, "this machine's clock"))
            check_returns_known(container.engine, events)
        except ValueError as exc:
            fail(f"{file.name}: {exc}; nothing was written")
        svc = promise_service(container)
        from rich.progress import Progress

        with Progress(console=console, transient=True, disable=as_json) as progress:
            task = progress.add_task("importing", total=len(events))
            for start in range(0, len(events), BATCH):
                batch = events[start:start + BATCH]
                try:
                    r = svc.ingest(batch)
                except (DomainError, SQLAlchemyError, ValueError, OverflowError) as exc:
                    first = (str(getattr(exc, "orig", None) or exc).splitlines() or [""])[0][:160]
                    cause = exc.message if isinstance(exc, DomainError) else f"{type(exc).__name__}: {first}"
                    done = (f"rows 2-{start + 1} ({start} events) are written" if start else "nothing was written")
                    fail(f"{file.name}: rows {start + 2}-{start + len(batch) + 1} could not be written ({cause}); "
                         f"{done}. The import is idempotent: run it again to finish")
                accepted += r.accepted
                duplicates += r.duplicates
                progress.advance(task, len(batch))
    finally:
        container.close()
    summary = {"file": str(file), "accepted": accepted, "duplicates": duplicates}
    if as_json:
        print_json(summary)
    else:
        console.print(f"imported {accepted} events ({duplicates} already known) from {file}")


def register(app: typer.Typer) -> None:
    """Attach ``shopfloor fulfillment`` to the root app."""
    app.add_typer(fulfillment_app, name="fulfillment")
