"""Actions the rules engine can take, the ports they act through, and the engine that runs rules.

Every action implements :class:`Action`: ``execute(spec, ctx)`` returns the state *before* and *after* (in a dry
run: the state it would leave) and must have no side effect when ``ctx.dry_run`` is true. Actions talk to the rest
of the system only through the small Protocols below, so the integrator binds them to the real services (capacity
planner, payment router, cache warm list, mailer) without this module importing them.

Cooldowns are per (rule, action index, type) and are read back from the action log, so they survive restarts of
``shopfloor rules run --every``. Dry runs keep their own cooldown clock and never hold back real actions. Failed
actions are logged but do not start a cooldown (the next evaluation tries again).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

from ..domain.clock import Clock
from .rules import ActionSpec, RuleSet, SignalMissing, parse_duration

# --- ports ------------------------------------------------------------------------------------------------------


class SignalProvider(Protocol):
    """Supplies current values for signal names (``None`` when a value is unknown right now)."""

    def values(self, names: set[str]) -> Mapping[str, Any]: ...


class CapacityPlanSource(Protocol):
    def current_replicas(self) -> int | None: ...

    def capacity_plan(self) -> dict[str, Any]:
        """The latest plan; must hold ``replicas`` (int) and may hold anything else (per-hour schedule, ...)."""
        ...


class Scaler(Protocol):
    def apply(self, plan: Mapping[str, Any]) -> None: ...


class PaymentRouting(Protocol):
    def processor_order(self) -> list[str]: ...

    def set_processor_order(self, order: Sequence[str]) -> None: ...


class WarmListSource(Protocol):
    def warm_urls(self) -> list[str]: ...


class CacheWarmer(Protocol):
    """Warms the edge cache: the given paths (``/v1/products/...``), or the capacity plan's warm list when None,
    through every edge node. Returns an outcome (status code or error text) per node and path."""

    def warm(self, urls: list[str] | None = None) -> dict[str, Any]: ...


class AlternativesSource(Protocol):
    def alternatives_for(self, sku: str, limit: int = 3) -> list[str]: ...


class Mailer(Protocol):
    def send(self, to: str, subject: str, body: str) -> None: ...


class HttpClient(Protocol):
    """The slice of ``httpx.Client`` the actions use."""

    def get(self, url: str, **kwargs: Any) -> Any: ...

    def post(self, url: str, **kwargs: Any) -> Any: ...


class TowerState(Protocol):
    """Where suppressions, degradations and alerts are kept (``store.tower.TowerRepository`` on a database)."""

    def get_suppression(self, sku: str, now: datetime) -> dict | None: ...

    def suppress_promotion(self, sku: str, reason: str, alternatives: list[str], until: datetime,
                           now: datetime) -> None: ...

    def get_degradation(self, warehouse: str, now: datetime) -> dict | None: ...

    def degrade_promises(self, warehouse: str, reason: str, extra_days: int, until: datetime,
                         now: datetime) -> None: ...

    def add_alert(self, *, at: datetime, source: str, metric: str, kind: str, message: str,
                  observed: float | None = None, expected: float | None = None, lower: float | None = None,
                  upper: float | None = None, score: float | None = None) -> int: ...


class ListingWork(Protocol):
    """Where listing flags and promotion proposals are kept (``store.tower.TowerRepository`` on a database)."""

    def get_listing_flag(self, sku: str, kind: str, now: datetime) -> dict | None: ...

    def set_listing_flag(self, sku: str, kind: str, reasons: Mapping[str, int], note: str, rule: str,
                         until: datetime, now: datetime) -> None: ...


class ReturnReasonsSource(Protocol):
    def returns_by_reason(self, sku: str) -> Mapping[str, int]: ...


@dataclass
class LogEntry:
    """One row of the action log."""

    at: datetime
    rule: str
    action_key: str
    action_type: str
    status: str  # applied | dry_run | failed
    dry_run: bool
    reason: str
    signal_values: dict[str, Any]
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["at"] = self.at.isoformat()
        return data


class ActionLog(Protocol):
    def record(self, entry: LogEntry) -> None: ...

    def last_fired(self, action_key: str, dry_run: bool) -> datetime | None:
        """When this action last ran successfully (``applied``, or ``dry_run`` entries for dry runs)."""
        ...


# --- in-memory adapters (tests, and defaults when nothing is bound) ---------------------------------------------


class InMemoryActionLog:
    def __init__(self) -> None:
        self.entries: list[LogEntry] = []

    def record(self, entry: LogEntry) -> None:
        self.entries.append(entry)

    def last_fired(self, action_key: str, dry_run: bool) -> datetime | None:
        wanted = "dry_run" if dry_run else "applied"
        times = [e.at for e in self.entries if e.action_key == action_key and e.status == wanted]
        return max(times) if times else None


class StaticSignals:
    """Signal values from a mapping (a JSON file on the CLI, fixtures in tests)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)

    def values(self, names: set[str]) -> dict[str, Any]:
        return {n: self._values.get(n) for n in names}


class CompositeSignals:
    """Asks each provider in turn; the first non-``None`` value for a name wins."""

    def __init__(self, *providers: SignalProvider) -> None:
        self.providers = providers

    def values(self, names: set[str]) -> dict[str, Any]:
        out: dict[str, Any] = {n: None for n in names}
        for provider in self.providers:
            missing = {n for n, v in out.items() if v is None}
            if not missing:
                break
            for n, v in provider.values(missing).items():
                if out.get(n) is None and v is not None:
                    out[n] = v
        return out


class InMemoryPaymentRouting:
    def __init__(self, order: Sequence[str]) -> None:
        self.order = list(order)

    def processor_order(self) -> list[str]:
        return list(self.order)

    def set_processor_order(self, order: Sequence[str]) -> None:
        self.order = list(order)


class TransportMailer:
    """A :class:`Mailer` over the store's mail transport (``orders.notify``: SMTP, or the maildir when no SMTP
    host is set), so that mail alerts land where order confirmations do on a machine without a mail server."""

    def __init__(self, transport: Any, sender: str) -> None:
        self.transport, self.sender = transport, sender

    def send(self, to: str, subject: str, body: str) -> None:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = self.sender, to, subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain="shopfloor.tower")
        msg.set_content(body)
        self.transport.send(msg)


class SmtpMailer(TransportMailer):
    """Plain SMTP to ``host:port`` through the store's SMTP transport (``orders.notify.SmtpTransport``); the
    integrator may bind the project's own mailer instead."""

    def __init__(self, host: str, port: int, sender: str, timeout_s: float = 10.0) -> None:
        from ..orders.notify import SmtpTransport

        super().__init__(SmtpTransport(host, port, timeout_s=timeout_s), sender)


# --- actions ----------------------------------------------------------------------------------------------------


class ActionUnavailable(RuntimeError):
    """The port an action needs is not bound in this process."""


@dataclass
class ActionContext:
    rule: str
    reason: str
    values: dict[str, Any]
    now: datetime
    dry_run: bool


@dataclass
class Outcome:
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class Action(Protocol):
    type: str

    def execute(self, spec: ActionSpec, ctx: ActionContext) -> Outcome: ...


def _need(port: Any, what: str) -> Any:
    if port is None:
        raise ActionUnavailable(f"no {what} is bound in this process")
    return port


def _check_response(resp: Any, url: str) -> int:
    status = int(getattr(resp, "status_code", 0))
    if status >= 400:
        raise RuntimeError(f"{url} answered HTTP {status}")
    return status


class ScaleAction:
    """Emit the capacity plan to a file, apply it through a :class:`Scaler`, or POST it to a webhook."""

    type = "scale"

    def __init__(self, plans: CapacityPlanSource | None, *, scaler: Scaler | None = None,
                 http: HttpClient | None = None, emit_dir: Path | None = None) -> None:
        self.plans, self.scaler, self.http, self.emit_dir = plans, scaler, http, emit_dir

    def execute(self, spec: ActionSpec, ctx: ActionContext) -> Outcome:
        plans = _need(self.plans, "capacity plan source")
        plan = dict(plans.capacity_plan())
        if not isinstance(plan.get("replicas"), int) or plan["replicas"] < 0:
            # never scale to a guessed number (a missing field must not become "0 replicas")
            raise ValueError(f"capacity plan has no valid 'replicas' (got {plan.get('replicas')!r})")
        replicas = plan["replicas"]
        replicas = max(replicas, int(spec.params.get("min_replicas", replicas)))
        replicas = min(replicas, int(spec.params.get("max_replicas", replicas)))
        plan["replicas"] = replicas
        before = {"replicas": plans.current_replicas()}
        mode = spec.params.get("mode", "webhook" if "webhook" in spec.params else "emit")
        after: dict[str, Any] = {"replicas": replicas, "mode": mode}
        if ctx.dry_run:
            return Outcome(before, after)
        if mode == "apply":
            _need(self.scaler, "scaler").apply(plan)
        elif mode == "webhook":
            url = spec.params["webhook"]
            _check_response(_need(self.http, "HTTP client").post(
                url, json={"rule": ctx.rule, "reason": ctx.reason, "plan": plan}), url)
            after["webhook"] = url
        else:
            out_dir = _need(self.emit_dir, "plan output directory")
            out_dir.mkdir(parents=True, exist_ok=True)
            path = out_dir / f"capacity-plan-{ctx.now.strftime('%Y%m%dT%H%M%SZ')}.json"
            path.write_text(json.dumps({"rule": ctx.rule, "reason": ctx.reason, "plan": plan}, default=str))
            after["emitted"] = str(path)
        return Outcome(before, after)


class WarmCachesAction:
    """Warm the caches: through the bound edge warmer (``shopfloor edge warm``: the capacity plan's warm list, or
    the rule's relative paths, requested through every edge node), or else GET every URL of the warm list (from the
    rule, or from the bound warm-list source)."""

    type = "warm_caches"

    def __init__(self, http: HttpClient | None, warm_list: WarmListSource | None = None,
                 warmer: CacheWarmer | None = None) -> None:
        self.http, self.warm_list, self.warmer = http, warm_list, warmer

    def execute(self, spec: ActionSpec, ctx: ActionContext) -> Outcome:
        named = spec.params.get("urls")
        if self.warmer is not None and (not named or all(str(u).startswith("/") for u in named)):
            before = {"urls": len(named) if named else "capacity warm list"}
            if ctx.dry_run:
                return Outcome(before, {"would_warm": named or "capacity warm list", "through": "edge"})
            results = self.warmer.warm(list(named) if named else None)
            ok = sum(1 for v in results.values() if isinstance(v, int) and v < 400)
            if results and ok == 0:
                raise RuntimeError(f"no edge node answered a warm-up request: {dict(list(results.items())[:5])}")
            return Outcome(before, {"through": "edge", "requested": len(results), "ok": ok})
        urls = named or _need(self.warm_list, "warm-list source").warm_urls()
        before = {"urls": len(urls)}
        if ctx.dry_run:
            return Outcome(before, {"would_request": urls})
        http = _need(self.http, "HTTP client")
        timeout = float(spec.params.get("timeout_s", 5.0))
        results: dict[str, Any] = {}
        for url in urls:
            try:
                results[url] = int(http.get(url, timeout=timeout).status_code)
            except Exception as exc:  # one bad URL must not stop the rest of the warm-up
                results[url] = f"error: {type(exc).__name__}"
        ok = sum(1 for v in results.values() if isinstance(v, int) and v < 400)
        if urls and ok == 0:
            raise RuntimeError(f"no warm-list URL answered successfully: {results}")
        return Outcome(before, {"requested": results, "ok": ok})


class ReorderProcessorsAction:
    """Set the payment processor order, or move one processor (``demote``) to the end."""

    type = "reorder_processors"

    def __init__(self, routing: PaymentRouting | None) -> None:
        self.routing = routing

    def execute(self, spec: ActionSpec, ctx: ActionContext) -> Outcome:
        routing = _need(self.routing, "payment routing")
        current = routing.processor_order()
        if "order" in spec.params:
            wanted = list(spec.params["order"])
            new = wanted + [p for p in current if p not in wanted]
        elif "demote" in spec.params:
            demoted = spec.params["demote"]
            new = [p for p in current if p != demoted] + ([demoted] if demoted in current else [])
        else:
            raise ValueError("reorder_processors needs 'order' or 'demote'")
        if not ctx.dry_run and new != current:
            routing.set_processor_order(new)
        return Outcome({"order": current}, {"order": new})


class SuppressPromotionAction:
    """Stop promoting a SKU until a deadline, publishing alternatives the storefront can fetch."""

    type = "suppress_promotion"

    def __init__(self, state: TowerState | None, alternatives: AlternativesSource | None = None) -> None:
        self.state, self.alternatives = state, alternatives

    def execute(self, spec: ActionSpec, ctx: ActionContext) -> Outcome:
        state = _need(self.state, "tower state store")
        sku = spec.params["sku"]
        alts = list(spec.params.get("alternatives") or [])
        if not alts and self.alternatives is not None:
            alts = list(self.alternatives.alternatives_for(sku))
        until = ctx.now + timedelta(seconds=parse_duration(spec.params.get("for", "6h"), field="for"))
        reason = spec.params.get("reason") or f"rule {ctx.rule}: {ctx.reason}"
        before = state.get_suppression(sku, ctx.now)
        after = {"sku": sku, "alternatives": alts, "until": until.isoformat(), "reason": reason}
        if not ctx.dry_run:
            state.suppress_promotion(sku, reason, alts, until, ctx.now)
        return Outcome({"suppression": before}, {"suppression": after})


class DegradePromisesAction:
    """Add days to every promise from a warehouse until a deadline (read by the promise engine)."""

    type = "degrade_promises"

    def __init__(self, state: TowerState | None) -> None:
        self.state = state

    def execute(self, spec: ActionSpec, ctx: ActionContext) -> Outcome:
        state = _need(self.state, "tower state store")
        warehouse = spec.params["warehouse"]
        extra = int(spec.params.get("extra_days", 1))
        until = ctx.now + timedelta(seconds=parse_duration(spec.params.get("for", "2h"), field="for"))
        reason = spec.params.get("reason") or f"rule {ctx.rule}: {ctx.reason}"
        before = state.get_degradation(warehouse, ctx.now)
        after = {"warehouse": warehouse, "extra_days": extra, "until": until.isoformat(), "reason": reason}
        if not ctx.dry_run:
            state.degrade_promises(warehouse, reason, extra, until, ctx.now)
        return Outcome({"degradation": before}, {"degradation": after})


class FlagListingAction:
    """Flag a SKU's listing for review (copy, pictures, size guide) with the return reasons behind it."""

    type = "flag_listing"

    def __init__(self, listings: ListingWork | None, reasons: ReturnReasonsSource | None = None) -> None:
        self.listings, self.reasons = listings, reasons

    def execute(self, spec: ActionSpec, ctx: ActionContext) -> Outcome:
        listings = _need(self.listings, "listing store")
        sku = spec.params["sku"]
        counts = dict(self.reasons.returns_by_reason(sku)) if self.reasons is not None else {}
        wanted = spec.params.get("reasons")
        if wanted:
            counts = {r: int(counts.get(r, 0)) for r in wanted}
        until = ctx.now + timedelta(seconds=parse_duration(spec.params.get("for", "7d"), field="for"))
        note = spec.params.get("note") or f"rule {ctx.rule}: {ctx.reason}"
        before = listings.get_listing_flag(sku, self.type, ctx.now)
        after = {"sku": sku, "reasons": counts, "note": note, "until": until.isoformat()}
        if not ctx.dry_run:
            listings.set_listing_flag(sku, self.type, counts, note, ctx.rule, until, ctx.now)
        return Outcome({"flag": before}, {"flag": after})


class ProposePromotionAction:
    """Propose a SKU for promotion (old stock to move), unless its promotion is suppressed right now."""

    type = "propose_promotion"

    def __init__(self, listings: ListingWork | None, state: TowerState | None) -> None:
        self.listings, self.state = listings, state

    def execute(self, spec: ActionSpec, ctx: ActionContext) -> Outcome:
        listings = _need(self.listings, "listing store")
        sku = spec.params["sku"]
        suppressed = self.state.get_suppression(sku, ctx.now) if self.state is not None else None
        if suppressed is not None:
            return Outcome(None, {"skipped": f"promotion of {sku} is suppressed until {suppressed['until']}: "
                                             f"{suppressed['reason']}"})
        until = ctx.now + timedelta(seconds=parse_duration(spec.params.get("for", "7d"), field="for"))
        note = spec.params.get("note") or f"rule {ctx.rule}: {ctx.reason}"
        before = listings.get_listing_flag(sku, self.type, ctx.now)
        after = {"sku": sku, "note": note, "until": until.isoformat()}
        if not ctx.dry_run:
            listings.set_listing_flag(sku, self.type, {}, note, ctx.rule, until, ctx.now)
        return Outcome({"proposal": before}, {"proposal": after})


class AlertAction:
    """Raise an alert: stored in the alerts table, and sent to a webhook or by mail."""

    type = "alert"

    def __init__(self, state: TowerState | None, *, http: HttpClient | None = None,
                 mailer: Mailer | None = None) -> None:
        self.state, self.http, self.mailer = state, http, mailer

    def execute(self, spec: ActionSpec, ctx: ActionContext) -> Outcome:
        p = spec.params
        channel = p.get("channel", "webhook" if "url" in p else "mail" if "to" in p else "log")
        message = p.get("message") or f"rule {ctx.rule} fired: {ctx.reason}"
        values_text = ", ".join(f"{k}={v}" for k, v in sorted(ctx.values.items()))
        after = {"channel": channel, "message": message}
        if ctx.dry_run:
            return Outcome(None, after)
        if channel == "webhook":
            url = p["url"]
            _check_response(_need(self.http, "HTTP client").post(
                url, json={"rule": ctx.rule, "reason": ctx.reason, "message": message, "values": ctx.values,
                           "at": ctx.now.isoformat()}), url)
        elif channel == "mail":
            _need(self.mailer, "mailer").send(p["to"], p.get("subject", f"[shopfloor] {ctx.rule}"),
                                               f"{message}\n\nValues: {values_text}\nAt: {ctx.now.isoformat()}")
        if self.state is not None:
            after["alert_id"] = self.state.add_alert(
                at=ctx.now, source=f"rule:{ctx.rule}"[:40], metric=ctx.rule, kind="rule", message=message)
        return Outcome(None, after)


# --- the engine -------------------------------------------------------------------------------------------------


@dataclass
class RuleResult:
    rule: str
    fired: bool
    values: dict[str, Any]
    skipped: str | None = None  # why the condition could not be judged
    actions: list[dict[str, Any]] = field(default_factory=list)


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v)) for k, v in values.items()}


class RuleEngine:
    """Evaluates a :class:`RuleSet` against a :class:`SignalProvider` and runs the actions of rules that hold."""

    def __init__(self, rules: RuleSet, signals: SignalProvider, actions: Mapping[str, Action], log: ActionLog,
                 clock: Clock) -> None:
        self.rules, self.signals, self.actions, self.log, self.clock = rules, signals, dict(actions), log, clock

    def run_once(self, *, dry_run: bool = False) -> list[RuleResult]:
        """Evaluate every rule once; returns what each rule saw and did."""
        now = self.clock.now()
        values = dict(self.signals.values(self.rules.signal_names))
        results: list[RuleResult] = []
        for rule in self.rules.rules:
            seen = _jsonable({n: values.get(n) for n in sorted(rule.condition.names)})
            result = RuleResult(rule.name, False, seen)
            results.append(result)
            try:
                result.fired = bool(rule.condition.evaluate(values))
            except SignalMissing as exc:
                result.skipped = str(exc)
                continue
            except (ZeroDivisionError, TypeError) as exc:
                result.skipped = f"cannot evaluate: {exc}"
                continue
            if not result.fired:
                continue
            for spec in rule.actions:
                result.actions.append(self._run_action(rule.name, rule.condition.source, spec, seen, now, dry_run))
        return results

    def _run_action(self, rule: str, reason: str, spec: ActionSpec, seen: dict[str, Any], now: datetime,
                    dry_run: bool) -> dict[str, Any]:
        key = f"{rule}#{spec.index}:{spec.type}"
        last = self.log.last_fired(key, dry_run)
        if last is not None and (now - last).total_seconds() < spec.cooldown_s:
            remaining = spec.cooldown_s - (now - last).total_seconds()
            return {"action": key, "status": "cooldown", "remaining_s": round(remaining, 1)}
        entry = LogEntry(now, rule, key, spec.type, "dry_run" if dry_run else "applied", dry_run, reason, seen)
        action = self.actions.get(spec.type)
        try:
            if action is None:
                raise ActionUnavailable(f"no implementation bound for action type {spec.type!r}")
            outcome = action.execute(spec, ActionContext(rule, reason, seen, now, dry_run))
            entry.before, entry.after = outcome.before, outcome.after
        except Exception as exc:  # an action failing is recorded, never fatal to the other rules
            entry.status, entry.error = "failed", f"{type(exc).__name__}: {exc}"
        self.log.record(entry)
        return {"action": key, "status": entry.status, "before": entry.before, "after": entry.after,
                "error": entry.error}
