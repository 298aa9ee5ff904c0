"""Bulk order import from a file (CSV or Parquet): our long format or Shopify's orders export.

Every row is validated before anything is written; errors are reported by row and field. Orders are then written
in batches, one transaction each, idempotent on ``(channel, external_id)``: importing the same file twice changes
nothing, and a run cut short (a crash, Ctrl-C) is resumed by running it again.

Row numbers count data rows from 1 (the header is not a row), so row N is line N+1 of a CSV file.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from .orders_in import ImportedLine, ImportedOrder, OrderWriter, to_minor_units

LONG_COLUMNS = ("external_id", "created_at", "sku", "qty", "unit_price", "currency", "country", "postal_code")
#: The columns of Shopify's orders export that an import reads (the export has many more).
SHOPIFY_COLUMNS = ("Name", "Created at", "Currency", "Lineitem quantity", "Lineitem price", "Lineitem sku",
                   "Shipping Country", "Shipping Zip")
FORMATS = ("long", "shopify")
_SKU = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_EXTERNAL_ID = re.compile(r"^[\x21-\x7e]{1,100}$")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
_POSTAL = re.compile(r"^[A-Za-z0-9 -]{0,16}$")


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "message": self.message}


@dataclass
class ImportPlan:
    """What a file holds after validation: the valid orders (with the rows they came from) and every error."""

    orders: list[ImportedOrder]
    errors: list[RowError]
    rows: int
    invalid_orders: int = 0
    not_imported: int = 0  # valid but left out on purpose (cancelled in the export)
    rows_of: dict[str, int] = field(default_factory=dict)  # external id -> number of rows


@dataclass
class ImportSummary:
    imported: int
    skipped: int
    errors: list[RowError]

    def as_dict(self) -> dict[str, Any]:
        return {"imported": self.imported, "skipped": self.skipped, "errors": [e.as_dict() for e in self.errors]}


class ImportFileError(ValueError):
    """The file cannot be read as an import at all (missing, unknown type, missing columns)."""


def read_rows(path: Path) -> tuple[list[str], Iterator[dict[str, str]]]:
    """The header and the rows of a CSV or Parquet file, every value as text ('' for missing)."""
    if not path.exists():
        raise ImportFileError(f"FILE: {path} does not exist")
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        columns = list(table.column_names)

        def parquet_rows() -> Iterator[dict[str, str]]:
            for batch in table.to_batches(max_chunksize=10_000):
                cols = {name: batch.column(i).to_pylist() for i, name in enumerate(batch.schema.names)}
                for i in range(batch.num_rows):
                    yield {k: _text(v[i]) for k, v in cols.items()}

        return columns, parquet_rows()
    if suffix in (".csv", ".csv.gz"):
        import gzip

        opener = gzip.open if suffix == ".csv.gz" else open
        handle = opener(path, "rt", newline="", encoding="utf-8-sig")
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])

        def csv_rows() -> Iterator[dict[str, str]]:
            try:
                for row in reader:
                    yield {k: (v or "") for k, v in row.items() if k is not None}
            finally:
                handle.close()

        return columns, csv_rows()
    raise ImportFileError(f"FILE: {path.name} is neither .csv, .csv.gz nor .parquet")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def detect_format(columns: Sequence[str]) -> str:
    return "shopify" if "Lineitem sku" in columns else "long"


_TIMES: dict[str, datetime | str] = {}


#: The years an imported order may be dated in: a year-1 or year-9999 order (a placeholder in an export) would skew
#: every demand history, forecast and promise it takes part in.
IMPORT_YEARS = (1990, 2199)
OUT_OF_RANGE = "is a valid time outside the years"


def _time_error(raw: str, exc: ValueError) -> str:
    said = str(exc)
    return f"{raw!r} {said}" if said.startswith(OUT_OF_RANGE) else f"{raw!r} is not an ISO 8601 time: {said}"


def _parse_time(raw: str) -> datetime:
    """Like :func:`_parse_time_uncached`; the lines of one order repeat its time, so each text is parsed once."""
    hit = _TIMES.get(raw)
    if hit is None:
        try:
            hit = _parse_time_uncached(raw)
        except ValueError as exc:
            hit = str(exc)
        if len(_TIMES) > 100_000:
            _TIMES.clear()
        _TIMES[raw] = hit
    if isinstance(hit, str):
        raise ValueError(hit)
    return hit


def _parse_time_uncached(raw: str) -> datetime:
    """ISO 8601 or Shopify's export form ``2026-11-30 09:15:02 -0500``; a UTC offset is required."""
    text = raw.strip().replace("Z", "+00:00")
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}(?::\d{2})?(?:\.\d+)?) ?([+-]\d{2}):?(\d{2})", text)
    if m:
        text = f"{m.group(1)}T{m.group(2)}{m.group(3)}:{m.group(4)}"
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        if "offset must be a timedelta" in str(exc):
            raise ValueError("its UTC offset is out of range (-23:59 .. +23:59)") from None
        raise
    if when.tzinfo is None:
        raise ValueError("needs a UTC offset (e.g. 2026-11-30T09:15:02Z)")
    when = when.astimezone(timezone.utc)
    if not IMPORT_YEARS[0] <= when.year <= IMPORT_YEARS[1]:
        raise ValueError(f"{OUT_OF_RANGE} {IMPORT_YEARS[0]}..{IMPORT_YEARS[1]} an order history can hold "
                         "(a placeholder date or a broken export?)")
    return when


@dataclass
class _Draft:
    first_row: int
    created_at: datetime | None
    currency: str
    country: str
    postal_code: str
    lines: list[ImportedLine] = field(default_factory=list)
    bad: bool = False
    rows: int = 0
    cancelled: bool = False


def plan_import(columns: Sequence[str], rows: Iterable[dict[str, str]], fmt: str,
                progress: Callable[[int], None] | None = None) -> ImportPlan:
    """Validate every row and group lines into orders. Pure: reads nothing but ``rows``, writes nothing."""
    if fmt not in FORMATS:
        raise ImportFileError(f"--format: choose one of {', '.join(FORMATS)}")
    needed = LONG_COLUMNS if fmt == "long" else SHOPIFY_COLUMNS
    missing = [c for c in needed if c not in columns]
    if missing:
        raise ImportFileError(f"FILE: the {fmt} format needs the column(s) {', '.join(missing)}")
    errors: list[RowError] = []
    drafts: dict[str, _Draft] = {}
    ids: dict[str, str] = {}  # Shopify: order name -> external id (the Id column when the export has it)
    n = 0
    for n, row in enumerate(rows, start=1):
        if progress is not None and n % 5000 == 0:
            progress(5000)
        if fmt == "long":
            _long_row(n, row, drafts, errors)
        else:
            _shopify_row(n, row, drafts, ids, errors)
    if progress is not None:
        progress(n % 5000)
    orders: list[ImportedOrder] = []
    invalid = cancelled = 0
    rows_of: dict[str, int] = {}
    for key, d in drafts.items():
        external_id = ids.get(key, key)
        if d.bad or d.created_at is None:
            invalid += 1
            continue
        if d.cancelled:
            cancelled += 1
            continue
        orders.append(ImportedOrder(external_id, d.created_at, d.currency, d.country, d.postal_code,
                                    tuple(d.lines)))
        rows_of[external_id] = d.rows
    errors.sort(key=lambda e: (e.row, e.field))
    return ImportPlan(orders, errors, n, invalid, cancelled, rows_of)


def _long_row(n: int, row: dict[str, str], drafts: dict[str, _Draft], errors: list[RowError]) -> None:
    before = len(errors)

    def err(field_name: str, message: str) -> None:
        errors.append(RowError(n, field_name, message))

    external_id = row["external_id"].strip()
    if not _EXTERNAL_ID.match(external_id):
        err("external_id", "required: 1-100 printable characters without spaces")
    created_at = None
    try:
        created_at = _parse_time(row["created_at"])
    except ValueError as exc:
        err("created_at", _time_error(row['created_at'], exc) if row["created_at"]
            else "required")
    sku = row["sku"].strip()
    if not _SKU.match(sku):
        err("sku", "required: 1-64 of A-Z a-z 0-9 . _ -")
    qty = _int(row["qty"], 1, 1_000_000, "qty", err)
    price = _int(row["unit_price"], 0, 10**12, "unit_price", err,
                 hint="an integer in minor units (499 for 4.99)")
    currency, country, postal = row["currency"].strip().upper(), row["country"].strip().upper(), row["postal_code"].strip()
    if not _CURRENCY.match(currency):
        err("currency", "an ISO 4217 code such as EUR")
    if not _COUNTRY.match(country):
        err("country", "an ISO 3166 two-letter code such as DE")
    if not _POSTAL.match(postal):
        err("postal_code", "at most 16 of A-Z a-z 0-9, space and -")
    if not external_id:
        return
    d = drafts.get(external_id)
    if d is None:
        d = drafts[external_id] = _Draft(n, created_at, currency, country, postal)
    else:
        for name, mine, theirs in (("created_at", created_at, d.created_at), ("currency", currency, d.currency),
                                   ("country", country, d.country), ("postal_code", postal, d.postal_code)):
            if mine is not None and theirs is not None and mine != theirs:
                err(name, f"differs from row {d.first_row} of the same order {external_id}")
    d.rows += 1
    if len(errors) > before:
        d.bad = True
    elif qty is not None and price is not None:
        d.lines.append(ImportedLine(sku, qty, price))


def _shopify_row(n: int, row: dict[str, str], drafts: dict[str, _Draft], ids: dict[str, str],
                 errors: list[RowError]) -> None:
    before = len(errors)

    def err(field_name: str, message: str) -> None:
        errors.append(RowError(n, field_name, message))

    name = row["Name"].strip()
    if not _EXTERNAL_ID.match(name.replace(" ", "_")):
        err("Name", "required: the order's name, such as #1001")
        return
    d = drafts.get(name)
    if d is None:  # the first row of an order carries its order-level columns
        created_at = None
        try:
            created_at = _parse_time(row["Created at"])
        except ValueError as exc:
            err("Created at", _time_error(row['Created at'], exc) if row["Created at"] else "required")
        currency = row["Currency"].strip().upper()
        if not _CURRENCY.match(currency):
            err("Currency", "an ISO 4217 code such as EUR")
        country = row["Shipping Country"].strip().upper()
        if country and not _COUNTRY.match(country):
            err("Shipping Country", "an ISO 3166 two-letter code such as DE")
        postal = row["Shipping Zip"].strip().lstrip("'")
        if not _POSTAL.match(postal):
            err("Shipping Zip", "at most 16 of A-Z a-z 0-9, space and -")
        d = drafts[name] = _Draft(n, created_at, currency, country, postal)
        if (row.get("Id") or "").strip():
            ids[name] = row["Id"].strip()
        d.cancelled = bool((row.get("Cancelled at") or "").strip())
    sku = row["Lineitem sku"].strip()
    if not _SKU.match(sku):
        err("Lineitem sku", "required: 1-64 of A-Z a-z 0-9 . _ -")
    qty = _int(row["Lineitem quantity"], 1, 1_000_000, "Lineitem quantity", err)
    price = None
    try:
        price = to_minor_units(row["Lineitem price"], d.currency or "USD")
    except ValueError as exc:
        err("Lineitem price", str(exc))
    d.rows += 1
    if len(errors) > before:
        d.bad = True
    elif qty is not None and price is not None:
        d.lines.append(ImportedLine(sku, qty, price))


def _int(raw: str, lo: int, hi: int, name: str, err: Callable[[str, str], None], hint: str = "") -> int | None:
    text = raw.strip()
    try:
        value = int(text)
    except ValueError:
        err(name, f"{text!r} is not {hint or 'a whole number'}" if text else "required")
        return None
    if not lo <= value <= hi:
        err(name, f"{value} is outside {lo}..{hi}")
        return None
    return value


def run_import(writer: OrderWriter, plan: ImportPlan, *, channel: str, policy: str, on_error: str,
               batch_orders: int = 1000, progress: Callable[[int], None] | None = None) -> ImportSummary:
    """Write a validated plan. ``on_error="stop"`` writes nothing when any row has an error; ``"skip"`` writes the
    valid orders and skips the invalid ones. ``skipped`` counts orders not written: invalid, cancelled in the
    export, or imported before (same channel and external id)."""
    if on_error not in ("stop", "skip"):
        raise ImportFileError("--on-error: choose stop or skip")
    left_out = plan.invalid_orders + plan.not_imported
    if plan.errors and on_error == "stop":
        return ImportSummary(0, len(plan.orders) + left_out, plan.errors)
    imported = already = 0
    for i in range(0, len(plan.orders), batch_orders):
        batch = plan.orders[i:i + batch_orders]
        result = writer.write(batch, channel=channel, policy=policy)
        imported += len(result.imported)
        already += len(result.already)
        if progress is not None:
            progress(sum(plan.rows_of.get(o.external_id, 0) for o in batch))
    return ImportSummary(imported, already + left_out, plan.errors)
