"""Restock policy math: pure functions and value objects, no I/O.

Per SKU x warehouse the plan computes

* the **inventory position** ``on_hand + on_order - reserved``;
* the **reorder point** (the ``service_level`` quantile of lead-time demand: a position at or below it means
  the stock now on hand and on order is unlikely to last until a new order could arrive) and the
  **order-up-to level** (the ``service_level`` quantile of demand over lead time + review period), both taken
  from the probabilistic lead-time demand distribution of :mod:`shopfloor.planning.lead_time`;
* the **order quantity** ``order_up_to - position`` under a *capped base-stock* rule (one order is at most
  ``order_cap`` times the order-up-to level's rate per review period, unless that would leave the position
  below the reorder point; see :func:`order_shortfall`), raised to the MOQ and rounded up to whole packs;
* the **projected stockout date** (first day expected cumulative demand outruns stock plus scheduled receipts);
* the **sell-out risk**: probability that demand before the next replenishment exceeds what is available, with
  suggested actions (suppress promotion; in-stock alternatives from the same category).

Policy parameters (lead time, review period, service level, MOQ, pack size) come from a :class:`PolicyBook`
(defaults < supplier < SKU), loaded from a TOML or JSON file named in Settings.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from .lead_time import DemandOutlook


# --- policy configuration -------------------------------------------------------------------------------
#: Capped base stock: one order is at most this many times ``order_up_to * R / (L + R)``. Picked on the M5
#: restock backtest (docs/benchmarks/restock.md); 0 turns the cap off (plain base stock).
DEFAULT_ORDER_CAP = 1.25
#: The longest lead time and review period (days) a policy may name: past a year they are data errors, and the
#: engine's work and memory grow with them (a lead time of 10^8 days ran for minutes, 2x10^9 ran out of memory).
MAX_POLICY_DAYS = 365


@dataclass(frozen=True)
class ReplenishmentPolicy:
    """Replenishment parameters for one SKU (from defaults, its supplier and its own overrides)."""

    lead_time_days: int = 7
    review_days: int = 1
    service_level: float = 0.95
    moq: int = 1
    pack_size: int = 1
    supplier: str | None = None
    order_cap: float = DEFAULT_ORDER_CAP
    #: Portfolio fill-rate target (units sold / units demanded) the planner steers to; ``None`` reads
    #: ``service_level`` as the target (policy files written before fill rates existed).
    fill_rate: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.lead_time_days, int) or not 0 <= self.lead_time_days <= MAX_POLICY_DAYS:
            raise ValueError(f"lead_time_days must be an integer in [0, {MAX_POLICY_DAYS}], "
                             f"got {self.lead_time_days!r}")
        if not isinstance(self.review_days, int) or not 1 <= self.review_days <= MAX_POLICY_DAYS:
            raise ValueError(f"review_days must be an integer in [1, {MAX_POLICY_DAYS}], got {self.review_days!r}")
        if not (isinstance(self.service_level, (int, float)) and 0.5 <= self.service_level < 1):
            raise ValueError(f"service_level must be in [0.5, 1), got {self.service_level!r}")
        if not isinstance(self.moq, int) or self.moq < 1:
            raise ValueError(f"moq must be an integer >= 1, got {self.moq!r}")
        if not isinstance(self.pack_size, int) or self.pack_size < 1:
            raise ValueError(f"pack_size must be an integer >= 1, got {self.pack_size!r}")
        check_order_cap(self.order_cap)
        if self.fill_rate is not None:
            check_fill_rate(self.fill_rate)

    @property
    def fill_rate_target(self) -> float:
        """The fill-rate target in force: ``fill_rate``, else ``service_level``."""
        return float(self.fill_rate if self.fill_rate is not None else self.service_level)


def check_fill_rate(value: Any) -> float:
    """``value`` if it is a valid fill-rate target (a number in [0.5, 1)), else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.5 <= value < 1:
        raise ValueError(f"fill_rate must be a number in [0.5, 1), got {value!r}")
    return float(value)


def check_order_cap(value: Any) -> float:
    """``value`` if it is a valid capped-base-stock factor (0 = no cap, else 1..100), else ``ValueError``."""
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not (value == 0 or 1 <= value <= 100)):
        raise ValueError(f"order_cap must be 0 (no cap) or a number in [1, 100], got {value!r}")
    return float(value)


_POLICY_KEYS = {f.name for f in fields(ReplenishmentPolicy)}


def _check_keys(where: str, data: Mapping[str, Any]) -> None:
    unknown = set(data) - _POLICY_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown policy key(s) {sorted(unknown)}; allowed: {sorted(_POLICY_KEYS)}")


POLICY_FILE_FORMATS = {".toml": "TOML", ".yaml": "YAML", ".yml": "YAML", ".json": "JSON"}


def _mapping(where: str, value: Any) -> dict[str, Any]:
    """``value`` as a dict, or a ValueError naming ``where`` (a section given as a list or a number, say)."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a table of keys and values, got {type(value).__name__}")
    return dict(value)


@dataclass(frozen=True)
class PolicyBook:
    """Layered restock policy: ``defaults`` < ``suppliers[sku's supplier]`` < ``skus[sku]``, plus the ``engine``
    section: store-wide knobs of the restock engine (:class:`~shopfloor.planning.restock_engine.EngineTuning`,
    e.g. ``month_halflife`` or ``allocation``) for ``restock plan``, the API and ``restock agent``."""

    defaults: ReplenishmentPolicy = field(default_factory=ReplenishmentPolicy)
    suppliers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    skus: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    engine: Mapping[str, Any] = field(default_factory=dict)

    def engine_tuning(self) -> Any:
        """The engine knobs of this file (:class:`~shopfloor.planning.restock_engine.EngineTuning`), the
        shipped defaults where the ``engine`` section is silent."""
        from .restock_engine import EngineTuning

        return EngineTuning.from_mapping(self.engine)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "PolicyBook":
        """Build from ``{"defaults": {...}, "suppliers": {name: {...}}, "skus": {sku: {...}}, "engine": {...}}``.

        Every layer is validated up front so a typo fails at load time, naming where it is.
        """
        data = _mapping("policy file", data)
        unknown = set(data) - {"defaults", "suppliers", "skus", "engine"}
        if unknown:
            raise ValueError(f"policy file: unknown section(s) {sorted(unknown)}")
        raw_defaults = _mapping("defaults", data.get("defaults", {}))
        _check_keys("defaults", raw_defaults)
        try:
            defaults = ReplenishmentPolicy(**raw_defaults)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"defaults: {exc}") from None
        suppliers = {str(k): _mapping(f"suppliers.{k}", v)
                     for k, v in _mapping("suppliers", data.get("suppliers", {})).items()}
        skus = {str(k): _mapping(f"skus.{k}", v) for k, v in _mapping("skus", data.get("skus", {})).items()}
        engine = _mapping("engine", data.get("engine", {}))
        book = cls(defaults, suppliers, skus, engine)
        try:
            book.engine_tuning()
        except (TypeError, ValueError) as exc:
            raise ValueError(f"engine: {exc}") from None
        for name, layer in suppliers.items():
            _check_keys(f"suppliers.{name}", layer)
            try:
                replace(defaults, **layer)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"suppliers.{name}: {exc}") from None
        for sku, layer in skus.items():
            _check_keys(f"skus.{sku}", layer)
            try:
                book.for_sku(sku)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"skus.{sku}: {exc}") from None
        return book

    @classmethod
    def load(cls, path: str | Path | None) -> "PolicyBook":
        """Read a ``.toml``, ``.yaml``/``.yml`` or ``.json`` policy file (by extension, as the tower's rules files);
        ``None`` gives the built-in defaults."""
        if path is None:
            return cls()
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"restock policy file not found: {p}")
        suffix = p.suffix.lower()
        if suffix not in POLICY_FILE_FORMATS:
            raise ValueError(f"restock policy file {p}: unsupported extension {suffix!r} "
                             f"(use {', '.join(POLICY_FILE_FORMATS)})")
        import yaml

        text = p.read_text()
        try:
            if suffix == ".json":
                data = json.loads(text)
            elif suffix == ".toml":
                data = tomllib.loads(text)
            else:
                data = yaml.safe_load(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"restock policy file {p} is not valid {POLICY_FILE_FORMATS[suffix]}: {exc}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ValueError(f"restock policy file {p} is not valid YAML{where}: "
                             f"{getattr(exc, 'problem', None) or exc}") from None
        return cls.from_mapping({} if data is None else data)

    def for_sku(self, sku: str, supplier: str | None = None) -> ReplenishmentPolicy:
        """Effective policy for ``sku`` (``supplier`` overrides the book's supplier, e.g. from an open PO)."""
        own = self.skus.get(sku, {})
        sup = own.get("supplier") or supplier or self.defaults.supplier
        policy = self.defaults
        if sup is not None and sup in self.suppliers:
            policy = replace(policy, **self.suppliers[sup])
        policy = replace(policy, **own)
        if sup is not None and policy.supplier is None:
            policy = replace(policy, supplier=sup)
        return policy


# --- small pure functions -------------------------------------------------------------------------------
def inventory_position(on_hand: int, on_order: int, reserved: int) -> int:
    """Stock that can still serve future demand: ``on_hand + on_order - reserved``."""
    if on_hand < 0 or on_order < 0 or reserved < 0:
        raise ValueError("on_hand, on_order and reserved must be >= 0")
    return on_hand + on_order - reserved


def round_order_quantity(raw: float, moq: int = 1, pack_size: int = 1) -> int:
    """Units to order for a shortfall of ``raw``: 0 if none, else at least ``moq``, in whole packs."""
    if moq < 1 or pack_size < 1:
        raise ValueError("moq and pack_size must be >= 1")
    need = math.ceil(raw) if raw > 0 else 0
    if need <= 0:
        return 0
    need = max(need, moq)
    return -(-need // pack_size) * pack_size


def round_order_quantities(raw: np.ndarray, moq: int = 1, pack_size: int = 1) -> np.ndarray:
    """Vectorised :func:`round_order_quantity` (used by the simulator)."""
    if moq < 1 or pack_size < 1:
        raise ValueError("moq and pack_size must be >= 1")
    need = np.ceil(np.maximum(np.asarray(raw, dtype=float), 0)).astype(np.int64)
    need = np.where(need > 0, np.maximum(need, moq), 0)
    return (-(-need // pack_size) * pack_size).astype(np.int64)


def order_shortfall(
    order_up_to: Any,
    reorder_point: Any,
    position: Any,
    *,
    lead_time_days: int,
    review_days: int,
    order_cap: float = DEFAULT_ORDER_CAP,
) -> np.ndarray:
    """Units to order before MOQ / pack rounding, under a capped base-stock rule (scalars or arrays).

    Plain base stock orders ``order_up_to - position``. Every unit that overshoots a later, lower level stays on
    the shelf (stock is not sent back), so orders that chase a burst of demand are expensive. The cap limits one
    order to ``order_cap * order_up_to * R / (L + R)`` units: ``order_cap`` times the level's own rate per
    review period. The cap never leaves the position below the ``reorder_point`` (when stock is already that
    low, the order restores at least the lead-time cover), so it only smooths orders while stock is healthy.
    ``order_cap=0`` is plain base stock. Capped base stock is the classic near-optimal policy family for lost
    sales with a lead time (Johansen & Thorstenson 1996; Xin 2021); on the M5 backtest it holds up to 1.6 points
    less stock at equal fill than the uncapped rule with the default mean model, and up to 3.7 with SES alone
    (docs/benchmarks/restock.md).
    """
    up = np.asarray(order_up_to, dtype=float)
    pos = np.asarray(position, dtype=float)
    need = np.maximum(up - pos, 0.0)
    if not order_cap:
        return need
    cap = np.maximum(np.ceil(order_cap * up * review_days / max(lead_time_days + review_days, 1)), 1.0)
    floor = np.maximum(np.asarray(reorder_point, dtype=float) - pos, 0.0)
    return np.minimum(need, np.maximum(cap, floor))


def projected_stockout_day(
    available: float, daily_means: Iterable[float], receipts: Mapping[int, int] | None = None
) -> int | None:
    """First day (1 = tomorrow) on which expected cumulative demand exceeds available stock plus receipts.

    ``receipts`` maps day number -> units arriving at the start of that day. ``None`` when stock lasts the
    whole outlook.
    """
    receipts = receipts or {}
    stock = float(available)
    for day, mean in enumerate(daily_means, start=1):
        stock += receipts.get(day, 0)
        stock -= float(mean)
        if stock < 0:
            return day
    return None


# --- plan -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StockPosition:
    """What the store knows about one SKU x warehouse today."""

    sku: str
    warehouse: str
    on_hand: int
    reserved: int
    # open purchase orders: (expected arrival date, units)
    open_receipts: tuple[tuple[date, int], ...] = ()
    supplier: str | None = None

    @property
    def on_order(self) -> int:
        return sum(q for _, q in self.open_receipts)

    @property
    def available(self) -> int:
        return max(self.on_hand - self.reserved, 0)


@dataclass(frozen=True)
class CatalogEntry:
    sku: str
    name: str
    category: str


@dataclass(frozen=True)
class RestockLine:
    sku: str
    warehouse: str
    supplier: str | None
    on_hand: int
    reserved: int
    on_order: int
    inventory_position: int
    lead_time_days: int
    review_days: int
    service_level: float
    mean_daily_demand: float
    lead_time_demand_mean: float
    reorder_point: int
    order_up_to: int
    order_qty: int
    #: the position does not cover the lead-time demand at ``service_level``: the SKU may run out before an order
    #: placed now arrives (expedite it), unlike a routine top-up towards ``order_up_to``
    urgent: bool
    order_by: date | None
    expected_arrival: date | None
    projected_stockout_date: date | None
    stockout_probability: float
    next_replenishment: date
    expected_fill_rate: float | None
    #: The fill-rate target this line is planned for (``service_level`` is then the common quantile level the
    #: fill-rate controller chose to meet it).
    fill_rate_target: float | None = None
    #: True when capped base stock ordered less than ``order_up_to - inventory_position`` (the rest follows at
    #: later reviews; see :func:`order_shortfall`).
    order_capped: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for k in ("order_by", "expected_arrival", "projected_stockout_date", "next_replenishment"):
            out[k] = out[k].isoformat() if out[k] is not None else None
        out["mean_daily_demand"] = round(self.mean_daily_demand, 4)
        out["lead_time_demand_mean"] = round(self.lead_time_demand_mean, 3)
        out["stockout_probability"] = round(self.stockout_probability, 4)
        if self.expected_fill_rate is not None:
            out["expected_fill_rate"] = round(self.expected_fill_rate, 4)
        return out


@dataclass(frozen=True)
class Alternative:
    sku: str
    name: str
    warehouse: str
    available: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SellOutRisk:
    sku: str
    warehouse: str
    name: str
    category: str
    available: int
    stockout_probability: float
    projected_stockout_date: date | None
    next_replenishment: date
    actions: tuple[str, ...]
    alternatives: tuple[Alternative, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "warehouse": self.warehouse,
            "name": self.name,
            "category": self.category,
            "available": self.available,
            "stockout_probability": round(self.stockout_probability, 4),
            "projected_stockout_date": (
                self.projected_stockout_date.isoformat() if self.projected_stockout_date else None
            ),
            "next_replenishment": self.next_replenishment.isoformat(),
            "actions": list(self.actions),
            "alternatives": [a.to_dict() for a in self.alternatives],
        }


@dataclass(frozen=True)
class RestockPlan:
    as_of: date
    lines: tuple[RestockLine, ...]
    risks: tuple[SellOutRisk, ...]

    def to_dict(self) -> dict[str, Any]:
        orders = [ln for ln in self.lines if ln.order_qty > 0]
        return {
            "as_of": self.as_of.isoformat(),
            "summary": {
                "lines": len(self.lines),
                "orders": len(orders),
                "units_to_order": sum(ln.order_qty for ln in orders),
                "urgent": sum(1 for ln in self.lines if ln.urgent),
                "sell_out_risks": len(self.risks),
            },
            "lines": [ln.to_dict() for ln in self.lines],
            "sell_out_risks": [r.to_dict() for r in self.risks],
        }

    CSV_COLUMNS = (
        "sku", "warehouse", "supplier", "on_hand", "reserved", "on_order", "inventory_position",
        "lead_time_days", "review_days", "fill_rate_target", "service_level", "mean_daily_demand", "lead_time_demand_mean",
        "reorder_point", "order_up_to", "order_qty", "order_capped", "urgent", "order_by", "expected_arrival",
        "projected_stockout_date", "stockout_probability", "next_replenishment", "expected_fill_rate",
    )

    def csv_rows(self) -> list[dict[str, Any]]:
        return [{k: ln.to_dict()[k] for k in self.CSV_COLUMNS} for ln in self.lines]


def _receipt_days(position: StockPosition, as_of: date) -> dict[int, int]:
    receipts: dict[int, int] = {}
    for when, units in position.open_receipts:
        day = max((when - as_of).days, 1)
        receipts[day] = receipts.get(day, 0) + units
    return receipts


def _usable_day(receipts: Mapping[int, int], lead: int, horizon: int) -> int:
    # First day new stock can be sold: the earliest open receipt (sellable on its expected day), or an order
    # placed today (it arrives at the end of day ``as_of + lead`` and sells from the day after).
    return min(min(receipts) if receipts else lead + 1, lead + 1, horizon + 1)


@dataclass(frozen=True)
class _LineNumbers:
    reorder_point: int
    order_up_to: int
    stockout_probability: float
    expected_fill_rate: float | None
    #: lead-time demand at the line's quantile level: a position at or below it may run out before an order
    #: placed now arrives (``urgent``), whatever levels an engine set (its base stock has reorder point = level)
    lead_need: int | None = None


def plan_line(
    position: StockPosition,
    outlook: DemandOutlook,
    policy: ReplenishmentPolicy,
    as_of: date,
    *,
    _numbers: _LineNumbers | None = None,
) -> RestockLine:
    """The restock decision for one SKU x warehouse, as of the end of day ``as_of``."""
    lead, review = policy.lead_time_days, policy.review_days
    ip = inventory_position(position.on_hand, position.on_order, position.reserved)
    receipts = _receipt_days(position, as_of)
    usable_day = _usable_day(receipts, lead, outlook.horizon)
    lead_dist = outlook.over(0, lead)
    if _numbers is None:
        protect = outlook.over(0, lead + review)
        reorder_point = lead_dist.quantile(policy.service_level)
        order_up_to = protect.quantile(policy.service_level)
    else:
        reorder_point, order_up_to = _numbers.reorder_point, _numbers.order_up_to
    want = _policy_shortfall(order_up_to, reorder_point, ip, policy)
    qty = round_order_quantity(want, policy.moq, policy.pack_size)
    stockout = projected_stockout_day(position.available, outlook.daily_means, receipts)
    if _numbers is None:
        p_stockout = (
            outlook.over(0, usable_day - 1).prob_exceeds(position.available) if usable_day > 1 else 0.0
        )
        review_mean = float(outlook.daily_means[lead : lead + review].sum())
        expected_fill = None
        if review_mean > 0:
            level = max(ip + qty, 0)
            short = protect.expected_shortfall(level) - lead_dist.expected_shortfall(level)
            expected_fill = float(min(max(1.0 - max(short, 0.0) / review_mean, 0.0), 1.0))
    else:
        p_stockout, expected_fill = _numbers.stockout_probability, _numbers.expected_fill_rate
    return RestockLine(
        sku=position.sku,
        warehouse=position.warehouse,
        supplier=policy.supplier or position.supplier,
        on_hand=position.on_hand,
        reserved=position.reserved,
        on_order=position.on_order,
        inventory_position=ip,
        lead_time_days=lead,
        review_days=review,
        service_level=policy.service_level,
        mean_daily_demand=float(outlook.daily_means[: lead + review].mean()) if lead + review else 0.0,
        lead_time_demand_mean=float(lead_dist.mean),
        reorder_point=reorder_point,
        order_up_to=order_up_to,
        order_qty=qty,
        urgent=ip <= (reorder_point if _numbers is None or _numbers.lead_need is None else _numbers.lead_need)
        and lead_dist.mean > 0,
        order_by=as_of if qty > 0 else None,
        expected_arrival=as_of + timedelta(days=lead) if qty > 0 else None,
        projected_stockout_date=as_of + timedelta(days=stockout) if stockout is not None else None,
        stockout_probability=float(p_stockout),
        next_replenishment=as_of + timedelta(days=usable_day),
        expected_fill_rate=expected_fill,
        fill_rate_target=policy.fill_rate,
        order_capped=want < order_up_to - ip,
    )


class AlternativeIndex:
    """In-stock SKUs per category, most available first, for quick "offer instead" look-ups."""

    def __init__(
        self, catalog: Mapping[str, CatalogEntry], positions: Iterable[StockPosition], exclude: set[tuple[str, str]]
    ) -> None:
        self.catalog = catalog
        by_cat: dict[str, list[StockPosition]] = {}
        by_cat_wh: dict[tuple[str, str], list[StockPosition]] = {}
        for p in positions:
            if p.available <= 0 or (p.sku, p.warehouse) in exclude or p.sku not in catalog:
                continue
            cat = catalog[p.sku].category
            by_cat.setdefault(cat, []).append(p)
            by_cat_wh.setdefault((cat, p.warehouse), []).append(p)
        order = lambda p: (-p.available, p.sku, p.warehouse)  # noqa: E731
        self.by_cat = {k: sorted(v, key=order) for k, v in by_cat.items()}
        self.by_cat_wh = {k: sorted(v, key=order) for k, v in by_cat_wh.items()}

    def for_sku(self, sku: str, warehouse: str, limit: int) -> tuple[Alternative, ...]:
        """Same category, other SKUs, in stock: same warehouse first, then anywhere; one entry per SKU."""
        entry = self.catalog.get(sku)
        if entry is None or limit <= 0:
            return ()
        seen = {sku}
        out: list[Alternative] = []
        for pool in (self.by_cat_wh.get((entry.category, warehouse), []), self.by_cat.get(entry.category, [])):
            for p in pool:
                if p.sku in seen:
                    continue
                seen.add(p.sku)
                out.append(Alternative(p.sku, self.catalog[p.sku].name, p.warehouse, p.available))
                if len(out) >= limit:
                    return tuple(out)
        return tuple(out)


def _policy_shortfall(order_up_to: int, reorder_point: int, position: int, policy: ReplenishmentPolicy) -> float:
    return float(order_shortfall(order_up_to, reorder_point, position, lead_time_days=policy.lead_time_days,
                                 review_days=policy.review_days, order_cap=policy.order_cap))


def _batch_numbers(
    items: list[tuple[StockPosition, DemandOutlook, ReplenishmentPolicy]], as_of: date,
    levels: Mapping[tuple[str, str], tuple[int, int]] | None = None,
) -> list[_LineNumbers | None]:
    """Vectorised quantiles, stockout probabilities and fill rates for negative-binomial outlooks.

    Same numbers as the scalar path in :func:`plan_line` (tests check it), without thousands of scipy calls.
    Sample-path outlooks get ``None`` and take the scalar path.
    """
    idx = [i for i, (_, o, _) in enumerate(items) if o.sample_paths is None]
    out: list[_LineNumbers | None] = [None] * len(items)
    if not idx:
        return out
    m = len(idx)
    m_lead, m_prot, m_until, size, sl, ip, up_qty = (np.zeros(m) for _ in range(7))
    avail = np.zeros(m)
    for j, i in enumerate(idx):
        pos, o, pol = items[i]
        lead, review = pol.lead_time_days, pol.review_days
        m_lead[j] = o.daily_means[:lead].sum()
        m_prot[j] = o.daily_means[: lead + review].sum()
        m_until[j] = o.daily_means[: _usable_day(_receipt_days(pos, as_of), lead, o.horizon) - 1].sum()
        size[j] = o.dispersion
        sl[j] = pol.service_level
        ip[j] = inventory_position(pos.on_hand, pos.on_order, pos.reserved)
        avail[j] = pos.available
    from scipy import stats

    from .lead_time import _nb_params, nb_expected_shortfall

    def ppf(mean):
        r, p = _nb_params(mean, size)
        with np.errstate(invalid="ignore"):
            q = stats.nbinom.ppf(sl, r, p)
        return np.where(mean > 0, np.nan_to_num(q), 0).astype(np.int64)

    rop, upto = ppf(m_lead), ppf(m_prot)
    lead_need = rop.copy()
    for j, i in enumerate(idx):
        fixed = (levels or {}).get((items[i][0].sku, items[i][0].warehouse))
        if fixed is not None:
            rop[j], upto[j] = fixed
    r_u, p_u = _nb_params(m_until, size)
    p_stock = np.where(m_until > 0, stats.nbinom.sf(np.floor(avail), r_u, p_u), 0.0)
    for j, i in enumerate(idx):
        pol = items[i][2]
        up_qty[j] = ip[j] + round_order_quantity(_policy_shortfall(upto[j], rop[j], ip[j], pol), pol.moq,
                                                 pol.pack_size)
    level = np.maximum(up_qty, 0)
    review_mean = m_prot - m_lead
    short = nb_expected_shortfall(m_prot, size, level) - nb_expected_shortfall(m_lead, size, level)
    with np.errstate(invalid="ignore", divide="ignore"):
        fill = np.clip(1.0 - np.maximum(short, 0.0) / review_mean, 0.0, 1.0)
    for j, i in enumerate(idx):
        out[i] = _LineNumbers(int(rop[j]), int(upto[j]), float(p_stock[j]),
                              float(fill[j]) if review_mean[j] > 0 else None, int(lead_need[j]))
    return out


def find_alternatives(
    sku: str,
    warehouse: str,
    catalog: Mapping[str, CatalogEntry],
    positions: Iterable[StockPosition],
    exclude: set[tuple[str, str]],
    limit: int,
) -> tuple[Alternative, ...]:
    """In-stock SKUs from the same category, same warehouse first, most available first."""
    return AlternativeIndex(catalog, positions, exclude).for_sku(sku, warehouse, limit)


def build_restock_plan(
    positions: Iterable[StockPosition],
    outlooks: Mapping[tuple[str, str], DemandOutlook],
    catalog: Mapping[str, CatalogEntry],
    policies: PolicyBook,
    as_of: date,
    *,
    risk_threshold: float = 0.5,
    max_alternatives: int = 3,
    policy_for: Mapping[tuple[str, str], ReplenishmentPolicy] | None = None,
    levels: Mapping[tuple[str, str], tuple[int, int]] | None = None,
) -> RestockPlan:
    """Plan every SKU x warehouse in ``positions``.

    ``outlooks`` holds a demand outlook per (sku, warehouse) starting the day after ``as_of`` and covering at
    least lead time + review days; positions without one are planned with zero demand. ``policy_for`` fixes the
    policy of some SKU x warehouse pairs (the planner's engines set each one's quantile level), and ``levels`` their
    ``(reorder point, order-up-to)`` (the engine's own, with its caps); both need negative-binomial outlooks. A line
    is a sell-out
    risk when P(demand before the next replenishment > available) >= ``risk_threshold``.
    """
    if not 0 < risk_threshold <= 1:
        raise ValueError("risk_threshold must be in (0, 1]")
    positions = list(positions)
    items: list[tuple[StockPosition, DemandOutlook, ReplenishmentPolicy]] = []
    for pos in sorted(positions, key=lambda p: (p.sku, p.warehouse)):
        policy = (policy_for or {}).get((pos.sku, pos.warehouse)) or policies.for_sku(pos.sku, pos.supplier)
        need = policy.lead_time_days + policy.review_days
        outlook = outlooks.get((pos.sku, pos.warehouse))
        if outlook is None:
            outlook = DemandOutlook(np.zeros(need))
        if outlook.horizon < need:
            raise ValueError(
                f"outlook for {pos.sku}@{pos.warehouse} covers {outlook.horizon} days, "
                f"policy needs {need} (lead time + review)"
            )
        items.append((pos, outlook, policy))
    numbers = _batch_numbers(items, as_of, levels)
    lines = [plan_line(pos, o, pol, as_of, _numbers=num) for (pos, o, pol), num in zip(items, numbers)]
    at_risk = [ln for ln in lines if ln.stockout_probability >= risk_threshold]
    at_risk_keys = {(ln.sku, ln.warehouse) for ln in at_risk}
    by_key = {(p.sku, p.warehouse): p for p in positions}
    alternatives = AlternativeIndex(catalog, positions, at_risk_keys)
    risks = []
    for ln in sorted(at_risk, key=lambda x: (-x.stockout_probability, x.sku, x.warehouse)):
        entry = catalog.get(ln.sku, CatalogEntry(ln.sku, ln.sku, ""))
        alts = alternatives.for_sku(ln.sku, ln.warehouse, max_alternatives)
        actions = ["suppress_promotion"] + (["offer_alternatives"] if alts else [])
        if ln.order_qty > 0:
            actions.append("place_order")
        risks.append(
            SellOutRisk(
                sku=ln.sku, warehouse=ln.warehouse, name=entry.name, category=entry.category,
                available=by_key[(ln.sku, ln.warehouse)].available,
                stockout_probability=ln.stockout_probability,
                projected_stockout_date=ln.projected_stockout_date,
                next_replenishment=ln.next_replenishment, actions=tuple(actions), alternatives=alts,
            )
        )
    return RestockPlan(as_of, tuple(lines), tuple(risks))


__all__ = [
    "Alternative", "AlternativeIndex", "CatalogEntry", "PolicyBook", "ReplenishmentPolicy", "RestockLine",
    "RestockPlan", "SellOutRisk", "StockPosition", "build_restock_plan", "find_alternatives",
    "DEFAULT_ORDER_CAP", "POLICY_FILE_FORMATS", "check_fill_rate", "check_order_cap", "inventory_position", "order_shortfall",
    "plan_line", "projected_stockout_day", "round_order_quantity", "round_order_quantities",
]
