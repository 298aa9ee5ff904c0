"""The replenishment agent: one JSON line in per store day, one JSON line out with the orders to place.

``shopfloor restock agent`` wraps :class:`ReplenishmentAgent` around stdin/stdout; the backtest and
``bench/restock_agent.py`` drive the same class (in process, or through the command as a subprocess), so the
numbers they report are the shipped policy's.

In (one object per line)::

    {"date": "2016-05-23", "sales": {"SKU": units sold that day}, "on_hand": {"SKU": units at close},
     "on_order": {"SKU": units ordered, not yet received}, "catalog": {"SKU": {"category": "...", "price": 1.0}},
     "history": [{"date": "2016-05-01", "sku": "SKU", "units": 3}, ...]}      # optional, first line only

Out: ``{"orders": {"SKU": qty}}`` (only SKUs with something to order) for orders placed at the end of that day, or
``{"error": {"code": "invalid_input", "field": "sales.SKU", "message": "..."}}`` for a line that cannot be used;
the agent keeps its state and goes on with the next line.

Returns and cancellations: a day's ``sales`` are net units, and a negative count (returns above that day's sales)
reads as 0. ``history`` rows are netted the same way, per SKU and day: a negative row offsets the same SKU's units
that day (an order cancelled the day it was placed was no demand: a wholesale order and its cancellation an hour
later read as nothing, not as a spike the spread and the global model would remember for months), and a SKU-day whose
net is below zero reads as 0 (a return of an earlier sale is not negative demand). The agent counts both
(``returns_read_as_zero``, ``history_return_rows``) and the command reports them on stderr. Negative ``on_hand`` or
``on_order`` is refused. History rows more than ``MAX_HISTORY_DAYS`` (about ten years) before the first day are not
read, and counted (``history_rows_too_old``).

Fractional units (goods sold by weight or volume, or any other measure): the engine models demand in whole units
of the SKU's own measure (a kilogram, a litre). A SKU's fractional sales reach it rounded on the running total
(the total of the integers it sees never differs from the true total by more than half a unit, so a SKU selling
0.3 kg a day is seen selling one kilogram about every third day), history rows the same way; stock and orders on
the way may be fractional, and orders are whole units (rounded up). The agent counts the SKUs so read
(``fractional_skus``).

The agent sees sales, not demand: a SKU whose ``on_hand`` at close is 0 sold out, so its sales are a lower bound
and the engine treats them as censored. SKUs it manages are those in ``catalog`` (or, without a catalog, every SKU
named so far); a SKU with no ``on_hand`` entry is taken to hold nothing.
"""

from __future__ import annotations

import json
import math
from datetime import date, timedelta
from typing import Any, Mapping

import numpy as np

from .restock_engine import EngineTuning, RestockEngine, replay_history


class AgentInputError(ValueError):
    """A line the agent cannot use; ``field`` names the offending field (``sales.SKU``, ``history[3].units``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": "invalid_input", "field": self.field, "message": self.message}}


_KNOWN_KEYS = {"date", "sales", "on_hand", "on_order", "catalog", "history"}


def _date(value: Any, field: str) -> date:
    if not isinstance(value, str):
        raise AgentInputError(field, f"expected a date string YYYY-MM-DD, got {type(value).__name__}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise AgentInputError(field, f"not a date (YYYY-MM-DD): {value!r}") from None


#: The most units one SKU may sell, hold or have on order in a day: past it a value is a data error (a price or an
#: id in the units column), and the engine's quantile search would grind on numbers no shelf holds.
MAX_UNITS = 1e9
#: History rows dated more than this many days (about ten years) before the first day are not read: the engine's
#: longest memory is a year and a quarter (the global model's same-days-a-year-earlier features), and a history block
#: spans every day from its oldest row (a row dated 0001-01-01 by mistake would ask for two thousand years of days).
#: They are counted (``history_rows_too_old``) and the command reports them on stderr.
MAX_HISTORY_DAYS = 3653


def _number(value: Any, field: str, *, integer: bool = True, negative: bool = False,
            bound: float | None = MAX_UNITS) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AgentInputError(field, f"expected a number, got {value!r}")
    if value < 0 and not negative:
        raise AgentInputError(field, f"must be >= 0, got {value!r}")
    if bound is not None and abs(value) > bound:
        raise AgentInputError(field, f"must be at most {bound:,.0f} units, got {value!r}")
    if integer and value != int(value):
        raise AgentInputError(field, f"expected whole units, got {value!r}")
    return float(value)


def _units(obj: Any, name: str, returns: list[int] | None = None) -> dict[str, float]:
    """SKU -> units (whole or fractional, >= 0). With ``returns`` (a one-item counter) a negative count is a day
    whose returns exceeded its sales: no units were demanded that the store can see, so it reads as 0 and is
    counted there."""
    if obj is None:
        return {}
    if not isinstance(obj, Mapping):
        raise AgentInputError(name, f"expected an object of SKU -> units, got {type(obj).__name__}")
    # fast path for a well-formed day (30,000 SKUs): finite non-negative numbers, checked with numpy
    if set(map(type, obj.values())) <= {int, float}:
        vals = np.fromiter(obj.values(), dtype=float, count=len(obj))
        if np.all(np.isfinite(vals)) and np.all(vals >= 0) and np.all(vals <= MAX_UNITS):
            return dict(zip(map(str, obj.keys()), vals.tolist()))
    out = {str(k): _number(v, f"{name}.{k}", integer=False, negative=returns is not None)
           for k, v in obj.items()}
    if returns is not None:
        for k, v in out.items():
            if v < 0:
                out[k] = 0.0
                returns[0] += 1
    return out


class ReplenishmentAgent:
    """Stateful, one store day at a time. :meth:`handle` takes one parsed line and returns the answer object."""

    def __init__(self, *, fill_rate: float = 0.95, lead_time: int = 7, review_days: int = 1,
                 tuning: EngineTuning | None = None, moq: int = 1, pack_size: int = 1) -> None:
        self.engine = RestockEngine(lead_time=lead_time, review_days=review_days, fill_rate=fill_rate,
                                    tuning=tuning)
        self.moq = moq
        self.pack_size = pack_size
        self.last_date: date | None = None
        self.days = 0
        self.catalog: dict[str, dict[str, Any]] = {}
        self._managed: set[str] = set()
        self._managed_idx: np.ndarray | None = None  # engine indices of the managed SKUs (None: recompute)
        # Returns: negative sales of a day read as 0; negative history rows net against the same SKU-day.
        self.returns_read_as_zero = 0
        self.history_return_rows = 0
        self.history_rows_too_old = 0
        # Fractional units: per SKU, the running total of its true sales and of the whole units the engine saw.
        self._true_total: dict[str, float] = {}
        self._seen_total: dict[str, int] = {}

    # --- protocol --------------------------------------------------------------------------------------------
    def handle_line(self, line: str) -> dict[str, Any]:
        """Parse and handle one text line; never raises for bad input (returns the error object)."""
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            return AgentInputError("line", f"not valid JSON ({exc.msg} at column {exc.colno})").to_dict()
        except RecursionError:
            return AgentInputError("line", "JSON nested too deeply to read").to_dict()
        try:
            return self.handle(obj)
        except AgentInputError as exc:
            return exc.to_dict()

    def handle(self, obj: Any) -> dict[str, Any]:
        """Handle one day; raises :class:`AgentInputError` (nothing changes) when the line is unusable."""
        if not isinstance(obj, Mapping):
            raise AgentInputError("line", f"expected a JSON object, got {type(obj).__name__}")
        unknown = set(obj) - _KNOWN_KEYS
        if unknown:
            raise AgentInputError(sorted(unknown)[0], f"unknown field; allowed: {sorted(_KNOWN_KEYS)}")
        if "date" not in obj:
            raise AgentInputError("date", "missing")
        day = _date(obj["date"], "date")
        if self.last_date is not None and day <= self.last_date:
            raise AgentInputError("date", f"{day} is not after the previous day {self.last_date}")
        returns = [0]
        sales = _units(obj.get("sales"), "sales", returns)
        on_hand = _units(obj.get("on_hand"), "on_hand")
        on_order = _units(obj.get("on_order"), "on_order")
        catalog = obj.get("catalog")
        if catalog is not None:
            if not isinstance(catalog, Mapping):
                raise AgentInputError("catalog", f"expected an object of SKU -> details, got "
                                      f"{type(catalog).__name__}")
            for sku, entry in catalog.items():
                if not isinstance(entry, Mapping):
                    raise AgentInputError(f"catalog.{sku}", "expected an object with category and price")
                if "price" in entry and entry["price"] is not None:
                    _number(entry["price"], f"catalog.{sku}.price", integer=False, bound=None)
                if "category" in entry and not isinstance(entry["category"], (str, type(None))):
                    raise AgentInputError(f"catalog.{sku}.category", "expected a string")
        history = obj.get("history")
        rows: list[tuple[date, str, float]] = []
        negative_rows = 0
        too_old = 0
        if history is not None:
            if self.days > 0:
                raise AgentInputError("history", "only the first line may carry history")
            if not isinstance(history, list):
                raise AgentInputError("history", f"expected a list of rows, got {type(history).__name__}")
            for i, row in enumerate(history):
                where = f"history[{i}]"
                if not isinstance(row, Mapping):
                    raise AgentInputError(where, "expected an object with date, sku, units")
                for key in ("date", "sku", "units"):
                    if key not in row:
                        raise AgentInputError(f"{where}.{key}", "missing")
                d = _date(row["date"], f"{where}.date")
                if d >= day:
                    raise AgentInputError(f"{where}.date", f"{d} is not before the first day {day}")
                units = _number(row["units"], f"{where}.units", integer=False, negative=True)
                if (day - d).days > MAX_HISTORY_DAYS:
                    too_old += 1
                    continue
                if units < 0:  # a cancellation or return: netted against the same SKU-day in _replay
                    negative_rows += 1
                rows.append((d, str(row["sku"]), units))
        # --- the line is valid: change state ---
        self.returns_read_as_zero += returns[0]
        self.history_return_rows += negative_rows
        self.history_rows_too_old += too_old
        before = len(self._managed)
        if catalog is not None:
            self.catalog.update({str(k): dict(v) for k, v in catalog.items()})
            self._managed.update(map(str, catalog))
        else:
            self._managed.update(sales, on_hand, on_order)
        if len(self._managed) != before:
            self._managed_idx = None
        if rows:
            self._replay(rows, day)
        return {"orders": self._day(day, self._whole_sales(sales), on_hand, on_order)}

    @property
    def fractional_skus(self) -> int:
        """How many SKUs had fractional units (their demand reaches the engine rounded on the running total)."""
        return len(self._true_total)

    def _whole_sales(self, sales: dict[str, float]) -> dict[str, float]:
        """The day's sales in whole units: a SKU that ever sold a fraction is rounded on its running total."""
        tracked = self._true_total
        if not tracked and all(v == int(v) for v in sales.values()):
            return sales
        out = dict(sales)
        for sku, v in sales.items():
            if sku not in tracked and v == int(v):
                continue
            total = tracked.get(sku, 0.0) + v
            whole = math.floor(total + 0.5)
            out[sku] = float(whole - self._seen_total.get(sku, 0))
            tracked[sku] = total
            self._seen_total[sku] = whole
        return out

    # --- internals -------------------------------------------------------------------------------------------
    def _replay(self, rows: list[tuple[date, str, float]], first_day: date) -> None:
        eng = self.engine
        start = min(d for d, _, _ in rows)
        span = (first_day - start).days
        eng.ensure(sorted({s for _, s, _ in rows} | self._managed))
        block = np.zeros((eng.n, span))
        for d, sku, units in rows:
            block[eng.index[sku], (d - start).days] += units
        np.maximum(block, 0.0, out=block)  # net per SKU-day: cancellations offset, returns beyond it read as 0
        frac = np.flatnonzero(np.any(block != np.floor(block), axis=1))
        if len(frac):  # whole units on each SKU's running total; the days that follow go on from its end
            totals = np.cumsum(block[frac], axis=1)
            whole = np.floor(totals + 0.5)
            block[frac] = np.diff(whole, axis=1, prepend=0.0)
            for i, t, w in zip(frac, totals[:, -1], whole[:, -1]):
                self._true_total[eng.skus[i]] = float(t)
                self._seen_total[eng.skus[i]] = int(w)
        replay_history(eng, block, [(start + timedelta(days=j)).weekday() for j in range(span)], first_day=start)

    def _day(self, day: date, sales: Mapping[str, float], on_hand: Mapping[str, float],
             on_order: Mapping[str, float]) -> dict[str, int]:
        eng = self.engine
        if self._managed_idx is None:
            self._managed_idx = eng.ensure(sorted(self._managed))
        for named in (sales, on_hand, on_order):  # SKUs first named today join before any vector is built
            if named:
                eng.ensure(named)
        s = eng.vector(sales)
        oh = eng.vector(on_hand)
        oo = eng.vector(on_order)
        managed = np.zeros(eng.n, dtype=bool)
        managed[self._managed_idx] = True
        known = managed.copy()
        if sales:
            known[eng.ensure(sales)] = True
        self.last_date = day
        review = self.days % eng.review_days == 0
        self.days += 1
        if not review:
            eng.observe(day.weekday(), s, oh <= 0, known, day=day)
            return {}
        qty = eng.step(day.weekday(), s, oh, oo, known=known, day=day)
        if self.moq > 1 or self.pack_size > 1:
            from .restock import round_order_quantities

            qty = round_order_quantities(qty, self.moq, self.pack_size)
        hit = np.flatnonzero((qty > 0) & managed[: len(qty)])
        return {eng.skus[i]: int(qty[i]) for i in hit}


__all__ = ["AgentInputError", "MAX_HISTORY_DAYS", "ReplenishmentAgent"]
