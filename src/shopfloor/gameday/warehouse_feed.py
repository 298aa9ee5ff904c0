"""The warehouses' fulfillment feed during a game day, and the ``warehouse_delay`` fault on it.

Every tick, each warehouse reports one finished order (approved about two days ago, packed, handed to the carrier a
day ago, delivered now), so its feed stays fresh and its lead times stay what its history says. A delayed warehouse's
events are held back instead (its feed stops); ``warehouse_back`` releases them, so they arrive late, with the times
they happened at. Promises from that warehouse must widen or say provisional once the feed's age passes the stale
threshold; :func:`unchanged_promises` counts the ones that did not."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class PromiseSeen:
    """One promise a shopper was given: when (seconds into the load phase), for which destination, from which
    warehouse, and what it said."""

    at_s: float
    destination: str
    warehouse: str | None
    deliver_by: str | None
    provisional: bool
    reasons: tuple[str, ...] = ()


class WarehouseFeed:
    def __init__(self, warehouses: dict[str, str], destinations: list[tuple[str, str]], seed: int = 7) -> None:
        """``warehouses``: warehouse id -> its origin region; ``destinations``: (country, postal code) pairs."""
        self.warehouses = dict(warehouses)
        self.destinations = list(destinations)
        self.rng = random.Random(seed)
        self.delayed: dict[str, datetime] = {}
        self.held: dict[str, list[dict[str, Any]]] = {}

    def _order(self, wid: str, delivered_at: datetime, transit_h: float, processing_h: float,
               prefix: str) -> list[dict[str, Any]]:
        country, postal = self.rng.choice(self.destinations)
        handed = delivered_at - timedelta(hours=transit_h)
        placed = handed - timedelta(hours=processing_h)
        oid = f"{prefix}-{wid}-{uuid.uuid4().hex[:10]}"
        base = {"order_id": oid, "warehouse": wid, "country": country, "postal_code": postal,
                "origin_region": self.warehouses[wid], "placed_at": placed.isoformat()}
        steps = (("approved", placed + timedelta(minutes=30)), ("packed", placed + timedelta(hours=processing_h / 2)),
                 ("handed_to_carrier", handed), ("delivered", delivered_at))
        return [{**base, "event_id": f"{oid}-{kind}", "type": kind, "at": at.isoformat()} for kind, at in steps]

    def history(self, now: datetime, orders_per_lane: int = 12) -> list[dict[str, Any]]:
        """Four weeks of finished orders from every warehouse to every destination, so promises are learned (not
        the provisional cold-start default) before the game day begins."""
        events = []
        for wid in self.warehouses:
            for country, postal in self.destinations:
                for _ in range(orders_per_lane):
                    delivered = now - timedelta(hours=self.rng.uniform(1, 24 * 26))
                    for e in self._order(wid, delivered, self.rng.lognormvariate(3.4, 0.3),
                                         self.rng.lognormvariate(2.9, 0.3), "hist"):
                        events.append({**e, "country": country, "postal_code": postal})
        return events

    def tick(self, now: datetime) -> list[dict[str, Any]]:
        """This tick's events from every warehouse whose feed flows; a delayed warehouse's are held back."""
        out = []
        for wid in self.warehouses:
            events = self._order(wid, now, self.rng.lognormvariate(3.4, 0.3), self.rng.lognormvariate(2.9, 0.3),
                                 "feed")
            if wid in self.delayed:
                self.held.setdefault(wid, []).extend(events)
            else:
                out.extend(events)
        return out

    def delay(self, wid: str, now: datetime) -> None:
        if wid not in self.warehouses:
            raise ValueError(f"warehouse_delay.target: unknown warehouse {wid!r} ({', '.join(self.warehouses)})")
        self.delayed.setdefault(wid, now)

    def release(self, wid: str) -> list[dict[str, Any]]:
        """The warehouse's feed flows again; what it held back arrives now, late."""
        self.delayed.pop(wid, None)
        return self.held.pop(wid, [])


def unchanged_promises(seen: list[PromiseSeen], warehouse: str, delayed_from_s: float, known_from_s: float,
                       until_s: float) -> dict[str, Any]:
    """Promises from ``warehouse`` given between ``known_from_s`` (its delay is known: the feed is past the stale
    threshold and the promise caches have turned over) and ``until_s`` that went out unchanged: not provisional and
    promising delivery no later than the latest such promise for the same destination before the delay began
    (``delayed_from_s``). Also counts the promises looked at, and the baseline's provisional ones (a baseline that
    was all provisional proves nothing)."""
    before = [p for p in seen if p.warehouse == warehouse and p.at_s < delayed_from_s]
    baseline: dict[str, str] = {}
    for p in before:
        if not p.provisional and p.deliver_by is not None:
            baseline[p.destination] = max(baseline.get(p.destination, p.deliver_by), p.deliver_by)
    during = [p for p in seen if p.warehouse == warehouse and known_from_s <= p.at_s < until_s]
    unchanged = [p for p in during if not p.provisional and p.deliver_by is not None
                 and (baseline.get(p.destination) is None or p.deliver_by <= baseline[p.destination])]
    return {"unchanged": len(unchanged), "during": len(during), "baseline_destinations": len(baseline),
            "baseline_provisional": sum(1 for p in before if p.provisional),
            "unchanged_at_s": [round(p.at_s, 2) for p in unchanged[:20]],
            "timeline": flag_changes([p for p in seen if p.warehouse == warehouse])}


def flag_changes(seen: list[PromiseSeen]) -> list[list[Any]]:
    """``[at_s, provisional]`` at the first promise and at each change of the provisional flag (for the report)."""
    out: list[list[Any]] = []
    for p in sorted(seen, key=lambda p: p.at_s):
        if not out or out[-1][1] != p.provisional:
            out.append([round(p.at_s, 2), p.provisional])
    return out[:50]
