"""Purchase orders as values: validation, status rules and CSV parsing (pure; storage is in ``store.restock``)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..domain.errors import InvalidInput, InvalidTransition

PO_STATUSES = ("open", "received", "cancelled")
CSV_REQUIRED = ("po_id", "sku", "warehouse", "qty", "expected_at")
CSV_OPTIONAL = ("status", "supplier")
#: Units one purchase order may carry, as ``PUT /v1/purchase-orders/{po_id}`` allows.
PO_QTY_MAX = 10_000_000
#: Years an expected arrival may fall in, as the API allows (a date outside is a typo or a placeholder).
PO_FIRST_YEAR, PO_LAST_YEAR = 2000, 2199


@dataclass(frozen=True)
class PurchaseOrderIn:
    """A purchase order as submitted (API body or CSV row)."""

    po_id: str
    sku: str
    warehouse: str
    qty: int
    expected_at: datetime
    status: str = "open"
    supplier: str | None = None

    def __post_init__(self) -> None:
        problems = validate_purchase_order(self)
        if problems:
            raise InvalidInput(f"invalid purchase order {self.po_id!r}: {problems[0]['message']}", problems)

    def as_row(self) -> dict[str, Any]:
        return {
            "po_id": self.po_id, "sku": self.sku, "warehouse": self.warehouse, "qty": self.qty,
            "expected_at": self.expected_at, "status": self.status, "supplier": self.supplier,
        }


def validate_purchase_order(po: PurchaseOrderIn) -> list[dict[str, Any]]:
    """Field-level problems (empty when valid)."""
    out: list[dict[str, Any]] = []
    for name in ("po_id", "sku", "warehouse"):
        val = getattr(po, name)
        if not isinstance(val, str) or not val.strip() or len(val) > 64:
            out.append({"field": name, "message": f"{name} must be a non-empty string of at most 64 characters"})
    if not isinstance(po.qty, int) or isinstance(po.qty, bool) or not 1 <= po.qty <= PO_QTY_MAX:
        out.append({"field": "qty", "message": f"qty must be a whole number from 1 to {PO_QTY_MAX:,}"})
    if not isinstance(po.expected_at, datetime) or po.expected_at.tzinfo is None:
        out.append({"field": "expected_at", "message": "expected_at must be a timezone-aware ISO 8601 datetime"})
    if po.status not in PO_STATUSES:
        out.append({"field": "status", "message": f"status must be one of {', '.join(PO_STATUSES)}"})
    if po.supplier is not None and (not isinstance(po.supplier, str) or len(po.supplier) > 120):
        out.append({"field": "supplier", "message": "supplier must be a string of at most 120 characters"})
    return out


def check_po_update(existing: dict[str, Any], new: PurchaseOrderIn) -> None:
    """A received or cancelled purchase order is final: only an identical replay is accepted."""
    if existing["status"] == "open":
        return
    same = all(existing[k] == v for k, v in new.as_row().items() if k != "expected_at") and (
        existing["expected_at"] == new.expected_at
    )
    if not same:
        raise InvalidTransition(
            f"purchase order {new.po_id} is {existing['status']} and can no longer change",
            [{"field": "status", "po_id": new.po_id, "from": existing["status"], "to": new.status}],
        )


def parse_datetime(value: str, field: str, where: str) -> datetime:
    """ISO 8601 date or datetime; a bare date or a naive time is taken as UTC."""
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{where}{field}: {value!r} is not an ISO 8601 date/datetime", [{"field": field, "value": value}]
        ) from None
    try:
        return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00: before year 1 in UTC
        raise InvalidInput(f"{where}{field}: {value!r} is outside years 1 to 9999 in UTC",
                           [{"field": field, "value": value}]) from None


def parse_purchase_orders_csv(text: str) -> list[PurchaseOrderIn]:
    """Parse a CSV with header ``po_id,sku,warehouse,qty,expected_at[,status][,supplier]``.

    Raises :class:`InvalidInput` naming the first bad row and field; nothing is returned partially.
    """
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in CSV_REQUIRED if c not in header]
    if missing:
        raise InvalidInput(
            f"CSV header is missing column(s): {', '.join(missing)}", [{"field": c} for c in missing]
        )
    unknown = [c for c in header if c not in CSV_REQUIRED + CSV_OPTIONAL]
    if unknown:
        raise InvalidInput(f"CSV header has unknown column(s): {', '.join(unknown)}", [{"field": c} for c in unknown])
    out: list[PurchaseOrderIn] = []
    seen: set[str] = set()
    for lineno, raw in enumerate(reader, start=2):
        where = f"line {lineno}: "
        if None in raw:  # csv puts the fields past the header's under None
            raise InvalidInput(f"{where}has {len(header) + len(raw[None])} fields, the header {len(header)}",
                               [{"field": "line", "line": lineno}])
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        nul = next((k for k, v in row.items() if "\x00" in v), None)
        if nul is not None:  # PostgreSQL's text cannot hold it, and the API refuses it too
            raise InvalidInput(f"{where}{nul}: text may not contain the NUL character (\\u0000)",
                               [{"field": nul, "line": lineno}])
        try:
            qty = int(row["qty"])
        except ValueError:
            raise InvalidInput(f"{where}qty: {row['qty']!r} is not an integer", [{"field": "qty", "line": lineno}]) from None
        if not 1 <= qty <= PO_QTY_MAX:
            raise InvalidInput(f"{where}qty: {row['qty'][:40]} is out of range (allowed: 1 to {PO_QTY_MAX:,})",
                               [{"field": "qty", "line": lineno, "min": 1, "max": PO_QTY_MAX}])
        expected = parse_datetime(row["expected_at"], "expected_at", where)
        if not PO_FIRST_YEAR <= expected.year <= PO_LAST_YEAR:
            raise InvalidInput(f"{where}expected_at: {row['expected_at'][:40]} is outside the accepted range, years "
                               f"{PO_FIRST_YEAR} to {PO_LAST_YEAR} (UTC)",
                               [{"field": "expected_at", "line": lineno}])
        try:
            po = PurchaseOrderIn(
                po_id=row["po_id"], sku=row["sku"], warehouse=row["warehouse"], qty=qty, expected_at=expected,
                status=row.get("status") or "open", supplier=row.get("supplier") or None,
            )
        except InvalidInput as exc:
            first = exc.details[0]
            raise InvalidInput(f"{where}{first['field']}: {first['message']}", [{**first, "line": lineno}]) from None
        if po.po_id in seen:
            raise InvalidInput(f"{where}po_id: {po.po_id!r} appears twice in the file", [{"field": "po_id", "line": lineno}])
        seen.add(po.po_id)
        out.append(po)
    return out
