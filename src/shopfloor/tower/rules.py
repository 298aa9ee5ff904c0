"""Rules: conditions over signals, in a small safe expression language, mapped to actions.

Conditions are parsed with :mod:`ast` and only these constructs are accepted: names (signals), numbers, strings
(for comparisons such as ``breaker_state_stripe == "open"``), ``True``/``False``, comparisons, ``and``/``or``/``not``,
unary ``-``, ``+ - * /`` and calls to a few whitelisted functions (``min``, ``max``, ``abs``). Evaluation walks the
tree itself; nothing is ever passed to ``eval``.

A rules file (``.yaml``/``.yml`` or ``.toml``) looks like::

    defaults: {cooldown: 10m}
    rules:
      - name: traffic_surge
        when: traffic_forecast_60m > 1.3 * traffic_baseline
        cooldown: 15m
        actions:
          - {type: scale}
          - {type: alert, channel: webhook, url: "http://ops.example/hook"}
"""

from __future__ import annotations

import ast
import fnmatch
import operator
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml

# Signal names the integrator's provider supplies. ``*`` stands for an entity id (processor, warehouse, metric).
DEFAULT_SIGNALS: dict[str, str] = {
    "traffic_rpm": "storefront requests in the last minute",
    "traffic_baseline": "typical requests per minute for this time of day (seasonal median)",
    "traffic_forecast_15m": "forecast requests per minute, mean over the next 15 minutes",
    "traffic_forecast_60m": "forecast requests per minute, mean over the next 60 minutes",
    "conversion_rate": "orders / product views over the last 15 minutes",
    "add_to_cart_rate": "add_to_cart / product_view over the last 15 minutes",
    "checkout_attempts_per_min": "checkout attempts in the last minute",
    "checkout_success_rate": "successful / attempted checkouts over the last 15 minutes, sold-out refusals (409) "
                             "left out (they are not failures)",
    "checkout_latency_ms": "mean checkout latency over the last 15 minutes (ms)",
    "checkout_latency_p95_ms": "95th percentile of checkout latency over the last 15 minutes (ms, from the "
                               "rollups' latency buckets)",
    "page_load_ms": "mean storefront page-load time over the last 15 minutes (ms)",
    "page_load_p95_ms": "95th percentile of storefront page-load time over the last 15 minutes (ms)",
    "current_replicas": "API replicas running now",
    "planned_replicas": "replicas the current capacity plan asks for",
    "promise_accuracy": "share of delivered orders that met their promise (7 days)",
    "open_alerts": "alerts raised in the last 15 minutes",
    "feed_age_max_s": "age of the stalest inventory/fulfillment feed (s)",
    "stock_risk_skus": "SKUs whose cover is below their lead time",
    "payment_success_rate_*": "payment success rate for one processor (15 min)",
    "breaker_open_*": "1 when the processor's circuit breaker is open, else 0",
    "breaker_state_*": "'closed', 'open' or 'half_open' for one processor",
    "feed_age_s_*": "seconds since the last feed update from one warehouse",
    "fulfillment_delay_p90_h_*": "pick/pack + handoff p90 for one warehouse (hours)",
    "stock_cover_days_*": "days of cover for one SKU (SKU ids with '-' are written with '_')",
    "anomaly_score_*": "latest anomaly score of one tower metric",
    "return_rate_*": "units returned / units sold for one SKU over the analytics window (30 days)",
    "listing_return_rate_*": "units returned for fit or not_as_described / units sold for one SKU (30 days)",
    "backorder_rate_*": "order lines refused for stock / lines refused and ordered, for one SKU (30 days)",
    "inventory_age_p50_d_*": "age in days of the median unit on hand of one SKU (first in, first out)",
    "units_sold_*": "units of one SKU ordered over the analytics window (30 days)",
    "split_rate_*": "share of one warehouse's orders shipped from more than one warehouse (30 days)",
    "pack_p90_h_*": "pick/pack p90 for one warehouse over the analytics window (hours)",
    "pack_p50_h_*": "pick/pack median for one warehouse over the analytics window (hours)",
    "handoff_delay_p50_h_*": "median hours from packed to handed to the carrier for one warehouse (30 days)",
}

FUNCTIONS = {"min": min, "max": max, "abs": abs}

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_CMPOPS = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


class RuleError(ValueError):
    """A problem in a rules file, with where it is (``rule``/``field``/``position``) for clear messages."""

    def __init__(self, message: str, *, rule: str | None = None, field: str | None = None,
                 position: int | None = None, file: str | None = None) -> None:
        self.rule, self.field, self.position, self.reason, self.file = rule, field, position, message, file
        where = ".".join(p for p in (f"rule {rule!r}" if rule else None, field) if p)
        pos = f" (column {position})" if position is not None else ""
        text = f"{where}: {message}{pos}" if where else f"{message}{pos}"
        super().__init__(f"{file}: {text}" if file else text)

    def in_file(self, path: str | Path) -> "RuleError":
        """The same error, its message starting with the file it was found in."""
        return RuleError(self.reason, rule=self.rule, field=self.field, position=self.position, file=str(path))


class SignalMissing(Exception):
    """A condition needs a signal the provider could not supply right now."""

    def __init__(self, name: str) -> None:
        super().__init__(f"signal {name!r} has no value")
        self.name = name


class SignalCatalog:
    """Known signal names: exact names plus ``prefix_*`` patterns for per-entity signals."""

    def __init__(self, signals: Mapping[str, str] | Iterable[str] = DEFAULT_SIGNALS) -> None:
        self.signals = dict(signals) if isinstance(signals, Mapping) else {s: "" for s in signals}

    def knows(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.signals)

    def suggest(self, name: str) -> list[str]:
        import difflib

        return difflib.get_close_matches(name, list(self.signals), n=3, cutoff=0.6)


@dataclass(frozen=True)
class Condition:
    """A parsed, validated condition. ``evaluate`` returns its value given signal values."""

    source: str
    tree: ast.Expression
    names: frozenset[str]

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        return _eval(self.tree.body, values)


def _check(node: ast.AST, names: set[str]) -> None:
    if isinstance(node, ast.BoolOp):
        for v in node.values:
            _check(v, names)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub, ast.UAdd)):
        _check(node.operand, names)
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        _check(node.left, names)
        _check(node.right, names)
    elif isinstance(node, ast.Compare) and all(type(op) in _CMPOPS for op in node.ops):
        _check(node.left, names)
        for c in node.comparators:
            _check(c, names)
    elif isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            raise RuleError(f"{node.id!r} is a function; call it like {node.id}(a, b)", position=node.col_offset + 1)
        names.add(node.id)
    elif isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
        pass
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            shown = ast.unparse(node.func)
            raise RuleError(
                f"call to {shown!r} is not allowed (allowed functions: {', '.join(sorted(FUNCTIONS))})",
                position=node.col_offset + 1,
            )
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args) or not node.args:
            raise RuleError(f"{node.func.id}() takes one or more plain arguments", position=node.col_offset + 1)
        for a in node.args:
            _check(a, names)
    else:
        what = type(node).__name__
        if isinstance(node, ast.Attribute):
            what = f"attribute access ({ast.unparse(node)})"
        elif isinstance(node, (ast.BinOp, ast.UnaryOp)):
            what = f"operator {type(node.op).__name__}"
        elif isinstance(node, ast.Compare):
            what = "comparison " + ", ".join(type(op).__name__ for op in node.ops)
        raise RuleError(f"{what} is not allowed in a condition", position=getattr(node, "col_offset", 0) + 1)


def parse_condition(text: str, catalog: SignalCatalog | None = None) -> Condition:
    """Parse and validate ``text``. Raises :class:`RuleError` with the column of the problem."""
    if not isinstance(text, str) or not text.strip():
        raise RuleError("condition is empty")
    if len(text) > 2000:
        raise RuleError("condition is longer than 2000 characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise RuleError(f"syntax error: {exc.msg}", position=exc.offset) from None
    names: set[str] = set()
    _check(tree.body, names)
    if catalog is not None:
        for name in sorted(names):
            if not catalog.knows(name):
                hint = catalog.suggest(name)
                col = _column_of(text.strip(), name)
                raise RuleError(
                    f"unknown signal {name!r}" + (f"; did you mean {', '.join(hint)}?" if hint else ""),
                    position=col,
                )
    return Condition(text.strip(), tree, frozenset(names))


def _column_of(text: str, name: str) -> int | None:
    m = re.search(rf"\b{re.escape(name)}\b", text)
    return m.start() + 1 if m else None


def _eval(node: ast.AST, values: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        value = values.get(node.id)
        if value is None:
            raise SignalMissing(node.id)
        return value
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            result: Any = True
            for v in node.values:
                result = _eval(v, values)
                if not result:
                    return result
            return result
        result = False
        for v in node.values:
            result = _eval(v, values)
            if result:
                return result
        return result
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, values)
        if isinstance(node.op, ast.Not):
            return not operand
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.BinOp):
        return _BINOPS[type(node.op)](_eval(node.left, values), _eval(node.right, values))
    if isinstance(node, ast.Compare):
        left = _eval(node.left, values)
        for op, comp in zip(node.ops, node.comparators):
            right = _eval(comp, values)
            if not _CMPOPS[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.Call):
        return FUNCTIONS[node.func.id](*[_eval(a, values) for a in node.args])  # type: ignore[attr-defined]
    raise RuleError(f"{type(node).__name__} cannot be evaluated")  # unreachable after _check


# --- rules files ------------------------------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any, *, rule: str | None = None, field: str = "cooldown") -> float:
    """``90``, ``"90s"``, ``"15m"``, ``"2h"``, ``"1d"`` -> seconds."""
    if isinstance(value, bool):
        raise RuleError(f"expected a duration like '15m', got {value!r}", rule=rule, field=field)
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise RuleError(f"expected a duration like 90, '90s', '15m', '2h', got {value!r}", rule=rule, field=field)
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds < 0:
        raise RuleError("duration must be >= 0", rule=rule, field=field)
    return seconds


@dataclass(frozen=True)
class ActionSpec:
    """One action of a rule as written in the file (validated against its type's required fields)."""

    type: str
    params: dict[str, Any]
    index: int
    cooldown_s: float


@dataclass(frozen=True)
class Rule:
    name: str
    condition: Condition
    actions: tuple[ActionSpec, ...]
    cooldown_s: float
    description: str = ""


@dataclass
class RuleSet:
    rules: list[Rule] = field(default_factory=list)

    @property
    def signal_names(self) -> set[str]:
        return {n for r in self.rules for n in r.condition.names}


# Each action type: required fields, optional fields (a field of the spec that is neither is an error).
ACTION_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "scale": (set(), {"webhook", "mode", "min_replicas", "max_replicas"}),
    "warm_caches": (set(), {"urls", "timeout_s"}),
    "reorder_processors": (set(), {"order", "demote"}),
    "suppress_promotion": ({"sku"}, {"alternatives", "for", "reason"}),
    "degrade_promises": ({"warehouse"}, {"for", "extra_days", "reason"}),
    "flag_listing": ({"sku"}, {"reasons", "for", "note"}),
    "propose_promotion": ({"sku"}, {"for", "note"}),
    "alert": (set(), {"channel", "url", "to", "subject", "message"}),
}
_COMMON_ACTION_FIELDS = {"type", "cooldown"}
#: Bounds a ``scale`` action's min_replicas / max_replicas may take.
MAX_REPLICAS = 10_000
_RULE_FIELDS = {"name", "when", "actions", "cooldown", "description"}


def _validate_action(raw: Any, rule: str, index: int, default_cooldown: float) -> ActionSpec:
    fld = f"actions[{index}]"
    if not isinstance(raw, Mapping):
        raise RuleError("each action must be a mapping with a 'type'", rule=rule, field=fld)
    kind = raw.get("type")
    if kind is None:
        raise RuleError("missing field 'type'", rule=rule, field=fld)
    if kind not in ACTION_FIELDS:
        raise RuleError(f"unknown action type {kind!r} (known: {', '.join(sorted(ACTION_FIELDS))})",
                        rule=rule, field=f"{fld}.type")
    required, optional = ACTION_FIELDS[kind]
    missing = sorted(required - set(raw))
    if missing:
        raise RuleError(f"missing field(s) {', '.join(missing)} for action type {kind!r}", rule=rule, field=fld)
    unknown = sorted(set(raw) - required - optional - _COMMON_ACTION_FIELDS)
    if unknown:
        raise RuleError(f"unknown field(s) {', '.join(unknown)} for action type {kind!r}", rule=rule, field=fld)
    if kind == "alert":
        channel = raw.get("channel", "webhook" if "url" in raw else "mail" if "to" in raw else "log")
        if channel not in ("webhook", "mail", "log"):
            raise RuleError("channel must be webhook, mail or log", rule=rule, field=f"{fld}.channel")
        if channel == "webhook" and "url" not in raw:
            raise RuleError("missing field 'url' for a webhook alert", rule=rule, field=fld)
        if channel == "mail" and "to" not in raw:
            raise RuleError("missing field 'to' for a mail alert", rule=rule, field=fld)
    if kind == "scale" and raw.get("mode", "emit") not in ("emit", "apply", "webhook"):
        raise RuleError("mode must be emit, apply or webhook", rule=rule, field=f"{fld}.mode")
    if kind == "scale" and raw.get("mode") == "webhook" and "webhook" not in raw:
        raise RuleError("missing field 'webhook' for mode webhook", rule=rule, field=fld)
    if kind == "scale":
        for bound in ("min_replicas", "max_replicas"):
            value = raw.get(bound)
            if bound in raw and (not isinstance(value, int) or isinstance(value, bool)
                                 or not 0 <= value <= MAX_REPLICAS):
                raise RuleError(f"must be a whole number from 0 to {MAX_REPLICAS:,} (got {value!r})", rule=rule,
                                field=f"{fld}.{bound}")
        if "min_replicas" in raw and "max_replicas" in raw and raw["min_replicas"] > raw["max_replicas"]:
            raise RuleError(f"min_replicas ({raw['min_replicas']}) is greater than max_replicas "
                            f"({raw['max_replicas']})", rule=rule, field=f"{fld}.min_replicas")
    for list_field in ("urls", "order", "alternatives", "reasons"):
        if list_field in raw and not (isinstance(raw[list_field], list)
                                      and all(isinstance(x, str) for x in raw[list_field])):
            raise RuleError("must be a list of strings", rule=rule, field=f"{fld}.{list_field}")
    if "for" in raw:
        parse_duration(raw["for"], rule=rule, field=f"{fld}.for")
    cooldown = parse_duration(raw["cooldown"], rule=rule, field=f"{fld}.cooldown") if "cooldown" in raw \
        else default_cooldown
    params = {k: v for k, v in raw.items() if k not in _COMMON_ACTION_FIELDS}
    return ActionSpec(type=kind, params=params, index=index, cooldown_s=cooldown)


def parse_rules(data: Any, catalog: SignalCatalog | None = None) -> RuleSet:
    """Validate a loaded rules document. Raises :class:`RuleError` for the first problem, naming where it is."""
    catalog = catalog or SignalCatalog()
    if not isinstance(data, Mapping):
        raise RuleError("a rules file must be a mapping with a 'rules' list")
    unknown_top = sorted(set(data) - {"rules", "defaults"})
    if unknown_top:
        raise RuleError(f"unknown top-level field(s): {', '.join(unknown_top)}")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise RuleError("'defaults' must be a mapping", field="defaults")
    default_cooldown = parse_duration(defaults.get("cooldown", 600), field="defaults.cooldown")
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise RuleError("missing field 'rules' (a non-empty list)", field="rules")
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_rules):
        if not isinstance(raw, Mapping):
            raise RuleError("each rule must be a mapping", field=f"rules[{i}]")
        name = raw.get("name")
        if name is None or name == "":
            raise RuleError("missing field 'name'", field=f"rules[{i}]")
        if not isinstance(name, str) or len(name) > 200 or not name.isprintable():
            raise RuleError(f"'name' must be 1 to 200 printable characters, got {str(name)[:40]!r}",
                            field=f"rules[{i}].name")
        if name in seen:
            raise RuleError("duplicate rule name", rule=name)
        seen.add(name)
        unknown = sorted(set(raw) - _RULE_FIELDS)
        if unknown:
            raise RuleError(f"unknown field(s): {', '.join(unknown)}", rule=name)
        if "when" not in raw:
            raise RuleError("missing field 'when'", rule=name)
        try:
            condition = parse_condition(raw["when"], catalog)
        except RuleError as exc:
            raise RuleError(exc.reason, rule=name, field="when", position=exc.position) from None
        cooldown = parse_duration(raw.get("cooldown", default_cooldown), rule=name)
        actions = raw.get("actions")
        if not isinstance(actions, list) or not actions:
            raise RuleError("missing field 'actions' (a non-empty list)", rule=name)
        specs = tuple(_validate_action(a, name, j, cooldown) for j, a in enumerate(actions))
        rules.append(Rule(name, condition, specs, cooldown, str(raw.get("description", ""))))
    return RuleSet(rules)


def load_rules_file(path: str | Path, catalog: SignalCatalog | None = None) -> RuleSet:
    """Load ``.yaml``/``.yml`` or ``.toml`` by extension, then :func:`parse_rules`. Every :class:`RuleError` it
    raises names the file first (``RuleError.file``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        text = path.read_text()
    except OSError as exc:
        raise RuleError(f"cannot read the file: {exc.strerror}", file=str(path)) from None
    try:
        if suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        elif suffix == ".toml":
            data = tomllib.loads(text)
        else:
            raise RuleError(f"unsupported extension {suffix!r} (use .yaml, .yml or .toml)", file=str(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RuleError(f"invalid YAML{where}: {getattr(exc, 'problem', exc)}", file=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"invalid TOML: {exc}", file=str(path)) from None
    try:
        return parse_rules(data, catalog)
    except RuleError as exc:
        raise exc.in_file(path) from None


class RulesFileWatch:
    """A rules file that a long-running process (the worker) keeps in force: loaded at start, and again whenever
    it changes on disk, so an edit takes effect without a restart.

    A file that fails validation never stops the process: :meth:`poll` reports the error (file, rule and field)
    once per version of the file through ``report``, and the rules last loaded stay in force (none, if no version
    ever loaded). A missing file means no rules, as at start-up.
    """

    def __init__(self, path: str | Path, report: Callable[[str], None],
                 catalog: SignalCatalog | None = None) -> None:
        self.path = Path(path)
        self.report = report
        self.catalog = catalog
        self._seen: tuple[int, int] | None | str = "unread"

    def _version(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def load(self) -> RuleSet:
        """The file as it is now, strictly: raises :class:`RuleError` (for a command that must not start on a bad
        file). Later :meth:`poll` calls only re-read it after it changes."""
        self._seen = self._version()
        return load_rules_file(self.path, self.catalog)

    def poll(self) -> RuleSet | None:
        """A new :class:`RuleSet` when the file changed (or on the first call) and is valid; otherwise ``None``."""
        version = self._version()
        if version == self._seen:
            return None
        self._seen = version
        if version is None:
            return RuleSet()
        try:
            rules = load_rules_file(self.path, self.catalog)
        except RuleError as exc:
            self.report(f"{exc}; keeping the rules last loaded until the file is fixed")
            return None
        self.report(f"{self.path}: loaded {len(rules.rules)} rule(s)")
        return rules
