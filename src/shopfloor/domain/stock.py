"""Allocation: which warehouse(s) ship which lines. Pure; the store applies the result with guarded updates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from .catalog import Warehouse
from .errors import OutOfStock


@dataclass(frozen=True, slots=True)
class OrderLineRequest:
    sku: str
    qty: int


@dataclass(frozen=True, slots=True)
class Allocation:
    sku: str
    warehouse: str
    qty: int


@dataclass(frozen=True, slots=True)
class StockLevel:
    sku: str
    warehouse: str
    on_hand: int
    reserved: int

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


def merge_lines(lines: Iterable[OrderLineRequest]) -> list[OrderLineRequest]:
    """Merge repeated SKUs into one line each, keeping first-seen order."""
    if lines.__class__ in (list, tuple) and len(lines) == 1 and lines[0].__class__ is OrderLineRequest:
        return [lines[0]]  # one line: nothing to merge (the common order; plan_allocation merges again)
    totals: dict[str, int] = {}
    for line in lines:
        totals[line.sku] = totals.get(line.sku, 0) + line.qty
    return [OrderLineRequest(s, q) for s, q in totals.items()]


def _warehouse_rank(warehouses: Mapping[str, Warehouse], country: str, postal_code: str):
    def rank(wid: str) -> tuple[int, str]:
        w = warehouses.get(wid)
        match = w.prefix_match_len(country, postal_code) if w else -1
        same_country = 1 if (w and w.country.upper() == country.upper()) else 0
        # Higher is better for match and same_country; ties broken by id for determinism.
        return (-(match + 1) * 2 - same_country, wid)

    return rank


_RANKS: dict[tuple[str, str], tuple[Mapping[str, Warehouse], dict[str, tuple[int, str]]]] = {}


def _ranks(warehouses: Mapping[str, Warehouse], country: str, postal_code: str) -> dict[str, tuple[int, str]]:
    """Every warehouse's rank for a destination, remembered per destination while ``warehouses`` is the same
    object (the callers keep one mapping for seconds at a time and replace it when they reload). The ranks are
    worked out from the warehouses' postal prefixes; the checkout asks twice per order (the promise and the
    writer's allocation) for the same few destinations."""
    key = (country, postal_code)
    hit = _RANKS.get(key)
    if hit is not None and hit[0] is warehouses:
        return hit[1]
    rank = _warehouse_rank(warehouses, country, postal_code)
    ranks = {wid: rank(wid) for wid in warehouses}
    if len(_RANKS) >= 4096:
        _RANKS.clear()
    _RANKS[key] = (warehouses, ranks)
    return ranks


def home_warehouse(warehouses: Mapping[str, Warehouse], country: str, postal_code: str) -> str | None:
    """The warehouse that serves a destination first (longest postal-prefix match, then same country, then id):
    the one that would have shipped a line that had stock everywhere."""
    if not warehouses:
        return None
    return min(warehouses, key=_warehouse_rank(warehouses, country, postal_code))


def plan_allocation(
    lines: Sequence[OrderLineRequest],
    levels: Iterable[StockLevel],
    warehouses: Mapping[str, Warehouse],
    country: str,
    postal_code: str,
) -> list[Allocation]:
    """Choose warehouses for an order, whole order or nothing.

    Policy: one warehouse that can ship every line (no split shipment), preferring the one that serves the
    destination; only when no single warehouse can, split line by line, again preferring local warehouses and
    then those with the most available stock. Raises ``OutOfStock`` with per-SKU shortages.
    """
    lines = merge_lines(lines)
    avail: dict[str, dict[str, int]] = {}
    for lvl in levels:
        free = lvl.on_hand - lvl.reserved
        if free > 0:
            per_sku = avail.get(lvl.sku)
            if per_sku is None:
                per_sku = avail[lvl.sku] = {}
            per_sku[lvl.warehouse] = free
    none: dict[str, int] = {}

    shortages = []
    for line in lines:
        total = sum(avail.get(line.sku, none).values())
        if total < line.qty:
            shortages.append({"sku": line.sku, "requested": line.qty, "available": max(total, 0)})
    if shortages:
        raise OutOfStock(shortages)

    ranks = _ranks(warehouses, country, postal_code)

    def rank(wid: str) -> tuple[int, str]:  # a level's warehouse missing from the mapping: ranked as before
        r = ranks.get(wid)
        return r if r is not None else _warehouse_rank(warehouses, country, postal_code)(wid)

    if len(lines) == 1:  # the common order: the best-ranked warehouse that holds the whole line
        line = lines[0]
        whole = [w for w, free in avail[line.sku].items() if free >= line.qty]
    else:
        candidates = set.intersection(*(set(avail[l.sku]) for l in lines)) if lines else set()
        whole = [w for w in candidates if all(avail[l.sku][w] >= l.qty for l in lines)]
    if whole:
        best = min(whole, key=rank)
        return [Allocation(l.sku, best, l.qty) for l in lines]

    allocations: list[Allocation] = []
    for line in lines:
        remaining = line.qty
        order = sorted(avail[line.sku], key=lambda w: (rank(w)[0], -avail[line.sku][w], w))
        for wid in order:
            if remaining == 0:
                break
            take = min(remaining, avail[line.sku][wid])
            if take > 0:
                allocations.append(Allocation(line.sku, wid, take))
                remaining -= take
    return allocations


def lock_order(allocations: Iterable[Allocation]) -> list[Allocation]:
    """The one fixed order in which stock rows are locked/updated (sku, then warehouse): no deadlocks."""
    return sorted(allocations, key=lambda a: (a.sku, a.warehouse))
