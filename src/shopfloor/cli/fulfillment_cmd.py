"""`shopfloor fulfillment` commands."""

from __future__ import annotations

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


def read_events(path: Path, chunk: int = 1000):
    """Yield lists of ``FulfillmentEvent`` from a CSV or Parquet file in the API's shape. Raises ValueError naming
    the row and field on bad input."""
    import pandas as pd

    from ..fulfillment.stats import EVENT_TYPES, RETURN_REASONS, FulfillmentEvent

    if path.suffix.lower() in {".parquet", ".pq"}:
        df = pd.read_parquet(path)
    elif path.suffix.lower() in {".csv", ".txt"}:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    else:
        raise ValueError(f"file: unsupported format {path.suffix!r} (use .csv or .parquet)")
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"file: missing column(s) {', '.join(missing)}")

    def ts(value, field: str, row: int, required: bool):
        if value is None or value == "" or (not isinstance(value, str) and pd.isna(value)):
            if required:
                raise ValueError(f"row {row}: {field} is required")
            return None
        t = pd.Timestamp(value)
        if t.tzinfo is None:
            raise ValueError(f"row {row}: {field} must carry a UTC offset (e.g. 2024-05-01T10:00:00Z)")
        return t.tz_convert("UTC").to_pydatetime()

    batch = []
    for i, rec in enumerate(df.to_dict("records"), start=2):
        def opt(name):
            v = rec.get(name)
            return None if v is None or v == "" or (not isinstance(v, str) and pd.isna(v)) else str(v)

        for f in ("event_id", "order_id", "warehouse"):
            if not opt(f):
                raise ValueError(f"row {i}: {f} is required")
        if rec["type"] not in EVENT_TYPES:
            raise ValueError(f"row {i}: type must be one of {', '.join(EVENT_TYPES)}")
        returned = {}
        if rec["type"] == "returned":
            for f in ("sku", "qty", "reason"):
                if not opt(f):
                    raise ValueError(f"row {i}: {f} is required for a returned event")
            try:
                qty = float(opt("qty"))
            except ValueError:
                qty = 0.5
            if qty != int(qty) or qty < 1:
                raise ValueError(f"row {i}: qty must be a whole number >= 1")
            if opt("reason") not in RETURN_REASONS:
                raise ValueError(f"row {i}: reason must be one of {', '.join(RETURN_REASONS)}")
            flag = (opt("restock") or "").strip().lower()
            if flag not in _TRUE | _FALSE:
                raise ValueError(f"row {i}: restock must be true or false")
            returned = {"sku": opt("sku"), "qty": int(qty), "reason": opt("reason"), "restock": flag in _TRUE}
        elif not opt("country") and not opt("region"):
            raise ValueError(f"row {i}: country or region is required")
        batch.append(FulfillmentEvent(
            event_id=opt("event_id"), order_id=opt("order_id"), type=rec["type"],
            at=ts(rec.get("at"), "at", i, True), warehouse=opt("warehouse"), carrier=opt("carrier"),
            country=opt("country"), postal_code=opt("postal_code"), region=opt("region"),
            placed_at=ts(rec.get("placed_at"), "placed_at", i, False), origin_region=opt("origin_region"),
            **returned,
        ))
        if len(batch) >= chunk:
            yield batch
            batch = []
    if batch:
        yield batch


@fulfillment_app.command("import")
def import_events(
    file: Path = typer.Argument(..., help="CSV or Parquet file with columns event_id, order_id, type, at, warehouse "
                                "and optionally carrier, country, postal_code, region, placed_at, origin_region; "
                                "returned events also sku, qty, reason and restock (true/false)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary instead of text."),
) -> None:
    """Load fulfillment events into the database (idempotent: events already stored are skipped)."""
    from ..domain.errors import DomainError
    from ..promise.service import promise_service

    if not file.exists():
        fail(f"file: {file} does not exist")
    container = open_store()
    accepted = duplicates = 0
    try:
        svc = promise_service(container)
        from rich.progress import Progress

        with Progress(console=console, transient=True, disable=as_json) as progress:
            task = progress.add_task("importing", total=None)
            for batch in read_events(file):
                r = svc.ingest(batch)
                accepted += r.accepted
                duplicates += r.duplicates
                progress.advance(task, len(batch))
    except (ValueError, DomainError) as exc:
        fail(str(exc))
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
