"""`shopfloor fulfillment` commands."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import typer

from .output import console, fail, open_store, print_json

fulfillment_app = typer.Typer(help="Fulfillment events: import feeds into the promise statistics.",
                              no_args_is_help=True)

REQUIRED = ("event_id", "order_id", "type", "at", "warehouse")
OPTIONAL = ("carrier", "country", "postal_code", "region", "placed_at", "origin_region",
            "sku", "qty", "reason", "restock")
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f", ""}
#: Units one returned event may carry, as ``POST /v1/fulfillment/events`` allows.
RETURN_QTY_MAX = 100_000
#: Longest text per column (the store's column sizes, as the API allows).
MAX_LENGTH = {"event_id": 120, "order_id": 120, "warehouse": 64, "carrier": 64, "postal_code": 16, "region": 64,
              "origin_region": 64, "sku": 64}
#: Events written per transaction (each batch is folded into the statistics at once).
BATCH = 1000


def _parse_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        import pandas as pd

        t = pd.Timestamp(text)
        if t is pd.NaT:
            raise ValueError("not a time") from None
        return t.to_pydatetime()


def read_events(path: Path) -> list:
    """Every ``FulfillmentEvent`` of a CSV or Parquet file in the API's shape, all rows checked before any is
    returned. Raises ValueError naming the row (the CSV line: the header is row 1) and the column on bad input."""
    import pandas as pd

    from ..fulfillment.stats import EVENT_TYPES, RETURN_REASONS, FulfillmentEvent

    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            df = pd.read_parquet(path)
        elif path.suffix.lower() in {".csv", ".txt"}:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
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
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"missing column(s) {', '.join(missing)}")

    def ts(value, field: str, row: int, required: bool):
        if value is None or value is pd.NaT or (isinstance(value, str) and not value.strip()) or (
                not isinstance(value, (str, datetime)) and pd.isna(value)):
            if required:
                raise ValueError(f"row {row}: {field} is required")
            return None
        try:
            t = value if isinstance(value, datetime) else _parse_time(str(value).strip())
            if t is pd.NaT:
                raise ValueError("not a time")
        except (ValueError, TypeError, OverflowError):
            raise ValueError(f"row {row}: {field} {str(value)[:40]!r} is not a date-time (ISO 8601 with a UTC "
                             "offset, e.g. 2024-05-01T10:00:00Z)") from None
        if t.tzinfo is None:
            raise ValueError(f"row {row}: {field} must carry a UTC offset (e.g. 2024-05-01T10:00:00Z)")
        if isinstance(t, pd.Timestamp):
            t = t.to_pydatetime()
        try:
            return t.astimezone(timezone.utc)
        except OverflowError:  # e.g. 9999-12-31T23:00:00-05:00: past the last representable year in UTC
            raise ValueError(f"row {row}: {field} {str(value)[:40]!r} is outside years 1 to 9999 in UTC") from None

    def whole(text: str, field: str, row: int, lo: int, hi: int) -> int:
        try:
            number = int(text)
        except ValueError:
            try:
                f = float(text)
            except ValueError:
                f = math.nan
            if not math.isfinite(f) or f != int(f):
                raise ValueError(f"row {row}: {field} {text[:40]!r} is not a whole number "
                                 f"(allowed: {lo} to {hi:,})") from None
            number = int(f)
        if not lo <= number <= hi:
            raise ValueError(f"row {row}: {field} {text[:40]} is out of range (allowed: {lo} to {hi:,})")
        return number

    events = []
    for i, rec in enumerate(df.to_dict("records"), start=2):
        def opt(name):
            v = rec.get(name)
            return None if v is None or v == "" or (not isinstance(v, str) and pd.isna(v)) else str(v)

        for f in ("event_id", "order_id", "warehouse"):
            if not opt(f):
                raise ValueError(f"row {i}: {f} is required")
        for f, most in MAX_LENGTH.items():
            if opt(f) is not None and len(opt(f)) > most:
                raise ValueError(f"row {i}: {f} is longer than {most} characters")
        country = opt("country")
        if country is not None and not (len(country) == 2 and country.isascii() and country.isalpha()):
            raise ValueError(f"row {i}: country {country[:40]!r} is not a two-letter country code")
        if rec["type"] not in EVENT_TYPES:
            raise ValueError(f"row {i}: type must be one of {', '.join(EVENT_TYPES)}")
        returned = {}
        if rec["type"] == "returned":
            for f in ("sku", "qty", "reason"):
                if not opt(f):
                    raise ValueError(f"row {i}: {f} is required for a returned event")
            qty = whole(opt("qty").strip(), "qty", i, 1, RETURN_QTY_MAX)
            if opt("reason") not in RETURN_REASONS:
                raise ValueError(f"row {i}: reason must be one of {', '.join(RETURN_REASONS)}")
            flag = (opt("restock") or "").strip().lower()
            if flag not in _TRUE | _FALSE:
                raise ValueError(f"row {i}: restock must be true or false")
            returned = {"sku": opt("sku"), "qty": qty, "reason": opt("reason"), "restock": flag in _TRUE}
        elif not country and not opt("region"):
            raise ValueError(f"row {i}: country or region is required")
        events.append(FulfillmentEvent(
            event_id=opt("event_id"), order_id=opt("order_id"), type=rec["type"],
            at=ts(rec.get("at"), "at", i, True), warehouse=opt("warehouse"), carrier=opt("carrier"),
            country=country, postal_code=opt("postal_code"), region=opt("region"),
            placed_at=ts(rec.get("placed_at"), "placed_at", i, False), origin_region=opt("origin_region"),
            **returned,
        ))
    return events


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

    Every row is checked before anything is written. Idempotent: events already stored are skipped, so running
    the same file again after an interruption finishes the import.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from ..domain.errors import DomainError
    from ..promise.service import promise_service

    if not file.is_file():
        fail(f"FILE: {file} does not exist")
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
