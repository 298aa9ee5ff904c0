"""Game day: shoppers plus a schedule of real faults against the running system, then a report that checks that
nothing was lost, nothing oversold and nobody charged twice.

The real ``shopfloor serve`` and ``shopfloor worker`` run as child processes on a fresh store. Shopper threads
check out over HTTP (retrying the same idempotency key while the server is down, as a storefront would), some of
them in a flash sale of a scarce SKU, and some replay a key they were already answered on. Meanwhile the fault
schedule changes the simulated payment processors and rate service through the admin API (lost responses after a
charge, the primary down, the rate service blackholed) and kills the server and the worker with ``SIGKILL``. After
the load, everything heals, the worker drains the outbox, and the store and the processors' ledgers are checked.

Used by ``shopfloor gameday``; the invariants it checks are the buy path's guarantees (see the README).
"""

from __future__ import annotations

import json
import random
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx

from .runtime import ServerProcess, WorkerProcess

#: Scarce units of the flash-sale SKU (``HOT``); every other SKU has ample stock.
FLASH_UNITS = 150
#: The simulated processors' and rate service's latency during a game day (fast, so that a short game day drains).
LATENCY_MS = 5.0
#: What ``heal`` puts back: the game day's starting point, every fault a schedule may have set cleared.
HEAL = {"down": False, "error_rate": 0.0, "timeout_rate": 0.0, "lost_response_rate": 0.0, "decline_rate": 0.0,
        "latency_ms": LATENCY_MS, "latency_jitter": 0.25}


@dataclass(frozen=True)
class Fault:
    """At ``at`` (a fraction of the load phase) do ``action``: ``processor`` / ``rates`` (a fault patch for the
    simulated processor ``target`` or the rate service), ``kill_server``, ``kill_worker`` or ``heal``."""

    at: float
    action: str
    label: str
    target: str | None = None
    patch: dict[str, Any] | None = None
    name: str = ""  # a few words for tables; ``label`` says it in full


DEFAULT_SCHEDULE: tuple[Fault, ...] = (
    Fault(0.15, "processor", "primary loses 30 % of responses after charging", "primary",
          {"lost_response_rate": 0.3}, "lost responses"),
    Fault(0.30, "processor", "primary hard down (failover)", "primary", {"down": True, "lost_response_rate": 0.0},
          "primary down"),
    Fault(0.40, "rates", "rate service blackholed (provisional quotes)", None, {"timeout_rate": 1.0},
          "rates blackholed"),
    Fault(0.50, "kill_server", "kill -9 the server, restart it", name="server killed"),
    Fault(0.60, "kill_worker", "kill -9 the worker, restart it", name="worker killed"),
    Fault(0.75, "heal", "primary and rate service back", name="healed"),
    Fault(0.85, "kill_server", "kill -9 the server again, restart it", name="server killed"),
)


ACTIONS = ("processor", "rates", "kill_server", "kill_worker", "heal")


def parse_schedule(data: Any) -> tuple[Fault, ...]:
    """A schedule from plain data (a list of faults, or ``{"faults": [...]}``), each
    ``{"at": 0.3, "action": "processor", "target": "primary", "patch": {"down": true}, "label": "...", "name": "..."}``.
    ``at`` is a fraction of the load phase; ``patch`` (processor, rates) takes the fields of
    ``PUT /v1/admin/processors/{name}/faults``. Raises ``ValueError`` naming the fault and field."""
    from pydantic import ValidationError

    from .orders.sim_gateway import FaultPatch

    if isinstance(data, dict) and set(data) == {"faults"}:
        data = data["faults"]
    if not isinstance(data, list) or not data:
        raise ValueError("a schedule is a non-empty list of faults (or a mapping with one key, 'faults')")
    out = []
    for i, item in enumerate(data):
        where = f"faults[{i}]"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: each fault is a mapping with 'at' and 'action'")
        unknown = sorted(set(item) - {"at", "action", "target", "patch", "label", "name"})
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}")
        at = item.get("at")
        if isinstance(at, bool) or not isinstance(at, (int, float)) or not 0 <= at < 1:
            raise ValueError(f"{where}.at: a fraction of the load phase, 0 <= at < 1 (got {at!r})")
        action = item.get("action")
        if action not in ACTIONS:
            raise ValueError(f"{where}.action: one of {', '.join(ACTIONS)} (got {action!r})")
        target, patch = item.get("target"), item.get("patch")
        if action == "processor" and not (isinstance(target, str) and target):
            raise ValueError(f"{where}.target: the processor to change (e.g. 'primary')")
        if action != "processor" and target is not None:
            raise ValueError(f"{where}.target: only a 'processor' fault names a target")
        if action in ("processor", "rates"):
            if not isinstance(patch, dict) or not patch:
                raise ValueError(f"{where}.patch: the fault fields to set, e.g. {{\"down\": true}}")
            try:
                patch = FaultPatch.model_validate(patch).model_dump(exclude_none=True)
            except ValidationError as exc:
                err = exc.errors()[0]
                field = ".".join(str(p) for p in err["loc"])
                raise ValueError(f"{where}.patch.{field}: {err['msg']}") from None
        elif patch is not None:
            raise ValueError(f"{where}.patch: only 'processor' and 'rates' faults take a patch")
        label = item.get("label")
        if label is not None and not isinstance(label, str):
            raise ValueError(f"{where}.label: text")
        name = item.get("name")
        if name is not None and not isinstance(name, str):
            raise ValueError(f"{where}.name: text")
        default = action.replace("_", " ") + (f" {target}" if target else "") + (f" {patch}" if patch else "")
        out.append(Fault(float(at), action, label or default, target, patch, name or ""))
    return tuple(sorted(out, key=lambda f: f.at))


def load_schedule(path: str | Path) -> tuple[Fault, ...]:
    """:func:`parse_schedule` of a ``.yaml``/``.yml`` or ``.json`` file; errors start with the file's name."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the file: {exc.strerror}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        elif path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            raise ValueError(f"{path}: unsupported extension {path.suffix!r} (use .yaml, .yml or .json)")
        return parse_schedule(data)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON: {exc.msg} at line {exc.lineno}") from None
    except ValueError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise ValueError(f"{path}: {exc}") from None


@dataclass
class Attempt:
    """One purchase as the shopper saw it: first try to final answer (retries of the same key included)."""

    started_s: float
    latency_ms: float
    status: int | None  # None: never answered before the load phase ended
    order_id: str | None = None
    flash: bool = False
    tries: int = 1


@dataclass
class GameDayResult:
    database: str
    seconds: float
    shoppers: int
    faults: list[dict[str, Any]] = field(default_factory=list)
    phases: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    checks: dict[str, int] = field(default_factory=dict)
    drain: dict[str, Any] = field(default_factory=dict)
    #: Per second of the load phase: answers by kind and the p99 latency of the purchases started that second.
    timeline: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(v == 0 for v in self.checks.values())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


#: The checks that must all be 0.
CHECKS = ("lost", "unverified_201", "oversold", "flash_oversold", "duplicate_orders", "replay_mismatches",
          "double_captures", "double_authorizations", "live_authorizations_on_cancelled_orders", "dead_letters",
          "stock_not_conserved")


class _Shoppers:
    def __init__(self, url: str, key: str, n_skus: int, seed: int, t0: float) -> None:
        self.url = url
        self.key = key
        self.n_skus = n_skus
        self.seed = seed
        self.t0 = t0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.attempts: list[Attempt] = []
        self.replays = 0
        self.replay_mismatches = 0

    def run(self, i: int) -> None:
        rng = random.Random(self.seed * 1000 + i)
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                flash = rng.random() < 0.15
                sku = "HOT" if flash else f"SKU{rng.randrange(self.n_skus):05d}"
                body = {"lines": [{"sku": sku, "qty": 1 if flash else rng.randint(1, 3)}],
                        "ship_to": {"country": "US", "postal_code": rng.choice(["94107", "10001", "60601"])},
                        "payment": {"token": f"tok_shopper{i}"}}  # each shopper pays with their own card
                headers = {"Authorization": f"Bearer {self.key}", "Idempotency-Key": uuid.uuid4().hex}
                started = time.monotonic()
                status, payload, tries = self._until_answered(client, body, headers)
                attempt = Attempt(started - self.t0, 1000 * (time.monotonic() - started), status,
                                  (payload or {}).get("order_id") if status == 201 else None, flash, tries)
                replayed = mismatch = False
                if status == 201 and rng.random() < 0.05:  # a double-clicked "buy": the same key again
                    again, payload2, _ = self._until_answered(client, body, headers)
                    replayed = again is not None
                    mismatch = replayed and (again != 201 or (payload2 or {}).get("order_id") != attempt.order_id)
                with self.lock:
                    self.attempts.append(attempt)
                    self.replays += int(replayed)
                    self.replay_mismatches += int(mismatch)

    def _until_answered(self, client: httpx.Client, body: dict, headers: dict) -> tuple[int | None, dict | None, int]:
        """POST until the server answers with anything but a 5xx (same key every time), or the load phase ends."""
        tries = 0
        while not self.stop.is_set():
            tries += 1
            try:
                resp = client.post(self.url + "/v1/checkouts", json=body, headers=headers)
            except httpx.TransportError:  # server down (killed) or restarting
                time.sleep(0.05)
                continue
            if resp.status_code >= 500:
                time.sleep(0.05)
                continue
            try:
                return resp.status_code, resp.json(), tries
            except ValueError:
                return resp.status_code, None, tries
        return None, None, tries


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 1)


def summarize_phases(attempts: list[Attempt], boundaries: list[tuple[float, str]], end_s: float) -> list[dict]:
    """Outcome counts and latency per phase; phase k runs from boundary k to boundary k+1 (by start time)."""
    edges = [(0.0, "steady state")] + [(t, label) for t, label in boundaries]
    out = []
    for k, (start, label) in enumerate(edges):
        stop = edges[k + 1][0] if k + 1 < len(edges) else end_s + 1e9
        mine = [a for a in attempts if start <= a.started_s < stop]
        answered = [a.latency_ms for a in mine if a.status is not None]
        by_status: dict[str, int] = {}
        for a in mine:
            kind = str(a.status) if a.status is not None else "unanswered"
            by_status[kind] = by_status.get(kind, 0) + 1
        out.append({"from_s": round(start, 1), "phase": label, "checkouts": len(mine), "statuses": by_status,
                    "p50_ms": _percentile(answered, 0.50), "p99_ms": _percentile(answered, 0.99),
                    "retried": sum(1 for a in mine if a.tries > 1)})
    return out


def timeline(attempts: list[Attempt], end_s: float) -> list[dict[str, Any]]:
    """Purchases started in each second: accepted, refused (4xx: sold out, declined), unanswered, and latency."""
    out = []
    for sec in range(int(end_s) + 1):
        mine = [a for a in attempts if sec <= a.started_s < sec + 1]
        answered = [a.latency_ms for a in mine if a.status is not None]
        out.append({"second": sec, "accepted": sum(1 for a in mine if a.status == 201),
                    "refused": sum(1 for a in mine if a.status is not None and a.status != 201),
                    "unanswered": sum(1 for a in mine if a.status is None),
                    "p50_ms": _percentile(answered, 0.50), "p99_ms": _percentile(answered, 0.99)})
    return out


def plot_gameday(result: GameDayResult, path: str | Path) -> Path:
    """PNG: accepted checkouts per second and p99 latency over the load phase, each fault marked where it hit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    secs = [p["second"] for p in result.timeline]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 6.5), sharex=True, constrained_layout=True)
    top.bar(secs, [p["accepted"] for p in result.timeline], width=1.0, align="edge", color="#2b8a3e",
            label="accepted (201)")
    top.bar(secs, [p["refused"] for p in result.timeline], width=1.0, align="edge", color="#f08c00",
            bottom=[p["accepted"] for p in result.timeline], label="refused (sold out, declined)")
    top.set_ylabel("purchases started / s")
    mid = [x + 0.5 for x in secs]
    bottom.plot(mid, [p["p99_ms"] if p["p99_ms"] is not None else float("nan") for p in result.timeline],
                color="#c92a2a", label="p99")
    bottom.plot(mid, [p["p50_ms"] if p["p50_ms"] is not None else float("nan") for p in result.timeline],
                color="#1864ab", label="p50")
    bottom.set_yscale("log")
    bottom.set_ylabel("first try to answer, ms")
    bottom.set_xlabel("seconds into the game day")
    for ax in (top, bottom):
        for f in result.faults:
            ax.axvline(f["at_s"], color="#495057", linestyle="--", linewidth=0.8)
    for f in result.faults:
        top.annotate(f["label"], (f["at_s"], 1.0), xycoords=("data", "axes fraction"), rotation=90, fontsize=7,
                     va="top", ha="right", color="#495057")
    top.legend(loc="lower left", fontsize=8)
    bottom.legend(loc="upper left", fontsize=8)
    verdict = "passed" if result.passed else "FAILED"
    top.set_title(f"game day ({result.database}, {result.shoppers} shoppers): {verdict}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def charge_anomalies(charges: list[dict[str, Any]]) -> tuple[int, int]:
    """From processors' ledger rows: (orders captured more than once, orders that would be charged twice by a
    live authorization beside a capture or another live authorization). Rows without an order id are cancelled
    keys (technical voids) and never charge."""
    captures: dict[str, int] = {}
    holds: dict[str, int] = {}
    for charge in charges:
        oid = charge.get("order_id") or ""
        if not oid:
            continue
        if charge.get("captured"):
            captures[oid] = captures.get(oid, 0) + 1
        if charge.get("authorized") and not charge.get("voided") and not charge.get("captured"):
            holds[oid] = holds.get(oid, 0) + 1
    double_captures = sum(1 for n in captures.values() if n > 1)
    double_auth = sum(1 for oid, n in holds.items() if n + captures.get(oid, 0) > 1)
    return double_captures, double_auth


def live_authorizations_on_ended_orders(charges: list[dict[str, Any]], ended_orders: set[str]) -> int:
    """Orders that ended without a capture (cancelled, expired or declined) for which a processor still holds a
    live authorization: the customer's funds stay held for nothing."""
    return len({c["order_id"] for c in charges
                if c.get("order_id") in ended_orders and c.get("authorized") and not c.get("voided")
                and not c.get("captured")})


def _ledger(url: str, key: str, processors: list[str]) -> list[dict[str, Any]]:
    """Every simulated processor's ledger, read through the admin API as an operator would."""
    rows: list[dict[str, Any]] = []
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {key}"}) as client:
        for name in processors:
            resp = client.get(f"{url}/v1/admin/processors/{name}/ledger")
            resp.raise_for_status()
            rows.extend(resp.json())
    return rows


def stock_snapshot(database_url: str) -> dict[tuple[str, str], int]:
    """``on_hand`` per (sku, warehouse): taken before the load, it is what conservation is checked against."""
    from sqlalchemy import select

    from .store.engine import make_engine
    from .store.tables import stock

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return {(r.sku, r.warehouse): int(r.on_hand)
                    for r in conn.execute(select(stock.c.sku, stock.c.warehouse, stock.c.on_hand))}
    finally:
        engine.dispose()


def _payments_pending(engine) -> int:
    """Orders still waiting for a payment outcome (the worker retries them)."""
    from sqlalchemy import func, select

    from .domain.orders import OrderStatus
    from .store.tables import orders

    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(orders).where(
            orders.c.status == OrderStatus.PAYMENT_PENDING.value)).scalar_one())


def _store_checks(engine, flash_units: int, initial: dict[tuple[str, str], int]) -> dict[str, Any]:
    """Stock conservation per row (units on hand now plus units that left with handed-off orders equal the units
    at the start; reservation counters match the live reservations), flash-sale units sold, and orders still
    waiting for a payment outcome."""
    from sqlalchemy import func, select

    from .domain.orders import OrderStatus
    from .store import orders_repo as repo
    from .store.tables import order_lines, orders, reservations, stock

    with engine.connect() as conn:
        rows = conn.execute(select(stock.c.sku, stock.c.warehouse, stock.c.on_hand, stock.c.reserved)).all()
        active = repo.active_reserved_by_row(conn)
        consumed = {(r[0], r[1]): int(r[2]) for r in conn.execute(
            select(reservations.c.sku, reservations.c.warehouse, func.sum(reservations.c.qty))
            .where(reservations.c.state == "consumed").group_by(reservations.c.sku, reservations.c.warehouse))}
        released = [OrderStatus.DECLINED.value, OrderStatus.CANCELLED.value]
        flash_sold = conn.execute(
            select(func.coalesce(func.sum(order_lines.c.qty), 0))
            .join(orders, orders.c.id == order_lines.c.order_id)
            .where(order_lines.c.sku == "HOT", orders.c.status.not_in(released))).scalar()
        provisional = sum(1 for (doc,) in conn.execute(select(orders.c.shipping))
                          if isinstance(doc, dict) and doc.get("provisional"))
        by_status = {r[0]: int(r[1]) for r in conn.execute(
            select(orders.c.status, func.count()).group_by(orders.c.status))}
        ended = {r[0] for r in conn.execute(select(orders.c.id).where(orders.c.status.in_(released)))}
    not_conserved = sum(
        1 for r in rows
        if int(r.reserved) != active.get((r.sku, r.warehouse), 0) or not 0 <= int(r.reserved) <= int(r.on_hand)
        or int(r.on_hand) + consumed.get((r.sku, r.warehouse), 0) != initial.get((r.sku, r.warehouse))
    )
    return {
        "stock_not_conserved": not_conserved,
        "flash_oversold": max(0, int(flash_sold) - flash_units),
        "flash_sold": int(flash_sold),
        "payment_pending_orders": by_status.get(OrderStatus.PAYMENT_PENDING.value, 0),
        "provisional_quotes_left": provisional,
        "orders_by_status": by_status,
        "ended_unpaid_orders": ended,
    }


def run_gameday(database_url: str | None = None, *, seconds: float = 40.0, shoppers: int = 12, seed: int = 7,
                n_skus: int = 50, drain_timeout_s: float = 120.0, schedule: tuple[Fault, ...] = DEFAULT_SCHEDULE,
                progress: Callable[[str], None] | None = None, workdir: Path | None = None) -> GameDayResult:
    """Run one game day and return its report. ``database_url``: an empty database (default: a fresh SQLite file)."""
    from .loadtest import ensure_fresh_store, seed_bench_store, verify_store
    from .orders import outbox_status
    from .runtime import interrupt_on_termination
    from .store.engine import make_engine

    say = progress or (lambda _msg: None)
    tmp = workdir or Path(tempfile.mkdtemp(prefix="sf-gameday-"))
    if database_url:
        ensure_fresh_store(database_url)
    url_db = database_url or f"sqlite:///{tmp / 'gameday.db'}"
    say("seeding the store")
    key = seed_bench_store(url_db, n_skus, FLASH_UNITS)
    initial = stock_snapshot(url_db)
    # Processors answer in ~5 ms and the worker retries payments quickly, so that a short game day drains.
    env = {"SHOPFLOOR_PAYMENTS_SIM_FAULTS": json.dumps({name: {"latency_ms": LATENCY_MS}
                                                       for name in ("primary", "secondary", "rates")}),
           "SHOPFLOOR_PAYMENTS_SIM_SEED": str(seed)}
    server = ServerProcess(url_db, env=env, log_path=tmp / "server.log")
    worker = WorkerProcess(url_db, env=env, log_path=tmp / "worker.log")
    restore_signals = interrupt_on_termination()
    result = GameDayResult("postgresql" if url_db.startswith("postgres") else "sqlite", seconds, shoppers)
    admin = httpx.Client(timeout=10, headers={"Authorization": f"Bearer {key}"})
    try:
        say("starting server and worker")
        server.start()
        worker.start()
        processors = list(admin.get(server.url + "/v1/admin/processors").json()["order"])
        unknown = sorted({f.target for f in schedule if f.action == "processor"} - set(processors))
        if unknown:
            raise ValueError(f"schedule: no processor {', '.join(map(repr, unknown))} (this server has "
                             f"{', '.join(processors)})")
        t0 = time.monotonic()
        crowd = _Shoppers(server.url, key, n_skus, seed, t0)
        threads = [threading.Thread(target=crowd.run, args=(i,), daemon=True) for i in range(shoppers)]
        for t in threads:
            t.start()
        boundaries: list[tuple[float, str]] = []
        for fault in sorted(schedule, key=lambda f: f.at):
            wait = t0 + fault.at * seconds - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            say(f"fault: {fault.label}")
            at = time.monotonic() - t0
            detail = _inject(fault, server, worker, admin, processors)
            boundaries.append((at, fault.name or fault.label))
            result.faults.append({"at_s": round(at, 1), "action": fault.action, "label": fault.label, **detail})
        remaining = t0 + seconds - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
        crowd.stop.set()
        for t in threads:
            t.join(timeout=30)
        end_s = time.monotonic() - t0
        say("healing and draining the outbox")
        _heal(admin, server.url, processors)
        engine = make_engine(url_db)
        drain_started = time.monotonic()
        try:
            while True:
                st = outbox_status(engine)
                payments_pending = _payments_pending(engine)
                settled = st["pending"] == 0 and payments_pending == 0
                if settled or time.monotonic() - drain_started > drain_timeout_s:
                    break
                say(f"draining: {st['pending']} events, {payments_pending} payments pending")
                time.sleep(0.5)
            checks = _store_checks(engine, FLASH_UNITS, initial)  # once, after the drain
        finally:
            engine.dispose()
        result.drain = {"seconds": round(time.monotonic() - drain_started, 1), "settled": settled,
                        "outbox_pending": st["pending"], "outbox_delivered": st["delivered"],
                        "payment_pending_orders": checks["payment_pending_orders"],
                        "provisional_quotes_left": checks["provisional_quotes_left"],
                        "orders_by_status": checks["orders_by_status"]}
        say("checking the store and the processors' ledgers")
        charges = _ledger(server.url, key, processors)
        double_captures, double_auth = charge_anomalies(charges)
        live_on_ended = live_authorizations_on_ended_orders(charges, checks["ended_unpaid_orders"])
    finally:
        admin.close()
        worker.stop()
        server.stop()
        restore_signals()
    attempts = crowd.attempts
    created = [a.order_id for a in attempts if a.status == 201 and a.order_id]
    store = verify_store(url_db, created)
    result.phases = summarize_phases(attempts, boundaries, end_s)
    result.timeline = timeline(attempts, end_s)
    result.totals = {
        "checkouts": len(attempts),
        "accepted": sum(1 for a in attempts if a.status == 201),
        "declined": sum(1 for a in attempts if a.status == 402),
        "sold_out": sum(1 for a in attempts if a.status == 409),
        "other_4xx": sum(1 for a in attempts if a.status is not None and a.status not in (201, 402, 409)),
        "unanswered_at_end": sum(1 for a in attempts if a.status is None),
        "retried_through_outages": sum(1 for a in attempts if a.tries > 1),
        "replays": crowd.replays,
        "flash_attempts": sum(1 for a in attempts if a.flash),
        "flash_accepted": sum(1 for a in attempts if a.flash and a.status == 201),
        "flash_units": FLASH_UNITS,
        "flash_sold": checks["flash_sold"],
        "ledger_rows": len(charges),
    }
    result.checks = {
        "lost": store["lost"],
        # A 201 whose body carried no order id could not be looked up: counted, never assumed fine.
        "unverified_201": sum(1 for a in attempts if a.status == 201 and not a.order_id),
        "oversold": store["oversold"],
        "flash_oversold": checks["flash_oversold"],
        "duplicate_orders": store["duplicate_orders"],
        "replay_mismatches": crowd.replay_mismatches,
        "double_captures": double_captures,
        "double_authorizations": double_auth,
        "live_authorizations_on_cancelled_orders": live_on_ended,
        "dead_letters": st["dead"],
        "stock_not_conserved": checks["stock_not_conserved"],
    }
    return result


def _inject(fault: Fault, server: ServerProcess, worker: WorkerProcess, admin: httpx.Client,
            processors: list[str]) -> dict[str, Any]:
    if fault.action == "kill_server":
        started = time.monotonic()
        server.kill9()
        server.start()
        return {"restart_s": round(time.monotonic() - started, 1)}
    if fault.action == "kill_worker":
        worker.kill9()
        worker.start()
        return {}
    if fault.action == "heal":
        _heal(admin, server.url, processors)
        return {}
    path = "/v1/admin/rates/faults" if fault.action == "rates" else f"/v1/admin/processors/{fault.target}/faults"
    for _ in range(50):  # the server may be restarting from an earlier kill
        try:
            resp = admin.put(server.url + path, json=fault.patch)
            resp.raise_for_status()
            return {"patch": fault.patch}
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"could not reach the admin API to inject: {fault.label}")


def _heal(admin: httpx.Client, url: str, processors: list[str]) -> None:
    for name in processors:
        admin.put(f"{url}/v1/admin/processors/{name}/faults", json=HEAL).raise_for_status()
    admin.put(f"{url}/v1/admin/rates/faults", json=HEAL).raise_for_status()


__all__ = ["ACTIONS", "CHECKS", "DEFAULT_SCHEDULE", "Fault", "GameDayResult", "charge_anomalies",
           "live_authorizations_on_ended_orders", "load_schedule",
           "parse_schedule", "plot_gameday", "run_gameday", "summarize_phases", "timeline"]
