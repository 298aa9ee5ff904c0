"""Simulated payment processors and a simulated carrier-rate service, with injectable faults.

They stand in for real external systems behind the same protocols a real adapter implements
(:class:`~shopfloor.payments.PaymentProcessor`, :class:`~shopfloor.orders.shipping.RateQuoter`).
Because the API may run several processes and the outbox worker is another one, the simulated gateway keeps its
ledger (``sim_gateway_charges``) and fault configuration (``sim_gateway_faults``) in the database, written in its
own short transactions: it is a different system from the caller, so it never joins the caller's transaction.

Fault model per call (dice rolled independently, in this order):

``down``                connection refused at once (certainly not charged)
``error_rate``          HTTP 5xx "not processed" after the latency (certainly not charged)
``timeout_rate``        the request hangs until the caller's timeout; nothing is recorded
latency                 log-normal with median ``latency_ms`` and shape ``latency_jitter``; a latency beyond the
                        caller's timeout is a stall: the caller times out and nothing is recorded
``decline_rate``        the authorization is declined (recorded, so the same key gets the same answer)
``lost_response_rate``  the operation IS recorded, then the caller sees a timeout ("charged, response lost")
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, and_, bindparam, case, select, update
from sqlalchemy.exc import IntegrityError

from ..domain.clock import Clock
from ..orders.runtime_config import SharedJsonStore
from ..orders.shipping import RateQuote, RateServiceError
from ..payments import (
    AttemptKeyCancelled,
    ChargeStatus,
    ConnectionRefused,
    ProcessorResponse,
    ProcessorTimeout,
    ProcessorUnavailable,
)
from ..store.engine import dialect_insert, sqlite_write_lock
from ..store.raw import RawStatement
from ..store.payments_tables import sim_gateway_charges, sim_gateway_faults

RATES_SERVICE = "rates"


class FaultConfig(BaseModel):
    """Complete fault configuration of one simulated service."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(default=20.0, ge=0, le=120_000, description="Median latency per call.")
    latency_jitter: float = Field(default=0.25, ge=0, le=3, description="Log-normal shape (0 = constant).")
    decline_rate: float = Field(default=0.0, ge=0, le=1)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    timeout_rate: float = Field(default=0.0, ge=0, le=1)
    lost_response_rate: float = Field(default=0.0, ge=0, le=1)
    down: bool = False


class FaultPatch(BaseModel):
    """Body of ``PUT .../faults``: every field optional; given fields replace the current values."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float | None = Field(default=None, ge=0, le=120_000)
    latency_jitter: float | None = Field(default=None, ge=0, le=3)
    decline_rate: float | None = Field(default=None, ge=0, le=1)
    error_rate: float | None = Field(default=None, ge=0, le=1)
    timeout_rate: float | None = Field(default=None, ge=0, le=1)
    lost_response_rate: float | None = Field(default=None, ge=0, le=1)
    down: bool | None = None

    def apply(self, current: FaultConfig) -> FaultConfig:
        changes = self.model_dump(exclude_none=True)
        return FaultConfig.model_validate({**current.model_dump(), **changes})


class FaultStore:
    """Fault configurations shared through ``sim_gateway_faults``; boot defaults come from Settings."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        *,
        defaults: Mapping[str, Mapping[str, Any]] | None = None,
        ttl_s: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = SharedJsonStore(
            engine,
            sim_gateway_faults,
            key_column="name",
            value_column="config",
            clock=clock,
            ttl_s=ttl_s,
            monotonic=monotonic,
        )
        self._defaults = {k: FaultConfig.model_validate(dict(v)) for k, v in (defaults or {}).items()}

    def get(self, name: str) -> FaultConfig:
        stored = self._store.get(name)
        if stored is None:
            return self._defaults.get(name, FaultConfig())
        return FaultConfig.model_validate(stored)

    def put(self, name: str, patch: FaultPatch | Mapping[str, Any]) -> FaultConfig:
        """Apply ``patch`` on top of the current configuration and share it with every process."""
        if not isinstance(patch, FaultPatch):
            patch = FaultPatch.model_validate(dict(patch))
        merged = patch.apply(self.get(name))
        self._store.put(name, merged.model_dump())
        return merged

    def reset(self, name: str) -> FaultConfig:
        cfg = self._defaults.get(name, FaultConfig())
        self._store.put(name, cfg.model_dump())
        return cfg


class _Dice:
    """Thread-safe random draws (seeded for reproducible tests and demos)."""

    def __init__(self, seed: int | None) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def hit(self, p: float) -> bool:
        if p <= 0:
            return False
        with self._lock:
            return self._rng.random() < p

    def latency_s(self, cfg: FaultConfig) -> float:
        if cfg.latency_ms <= 0:
            return 0.0
        if cfg.latency_jitter <= 0:
            return cfg.latency_ms / 1000.0
        with self._lock:
            return self._rng.lognormvariate(math.log(cfg.latency_ms), cfg.latency_jitter) / 1000.0


class _FaultedService:
    """Shared fault handling for the simulated processors and the rate service."""

    #: Every call returns or raises within its ``timeout_s`` (a stall sleeps out the timeout and raises), like an
    #: HTTP client with a total timeout; callers may skip their own deadline thread.
    honours_timeout = True

    def __init__(
        self,
        name: str,
        faults: FaultStore,
        *,
        seed: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self._faults = faults
        self._dice = _Dice(seed)
        self._sleep = sleep

    def _plan(self, timeout_s: float) -> tuple[FaultConfig, float, float | None, Exception | None]:
        """Roll the dice for the faults that happen before the request is processed, without waiting: (config,
        latency, how long to wait now (``None``: not at all), the failure to raise after that wait or ``None`` to
        go on processing)."""
        cfg = self._faults.get(self.name)
        if cfg.down:
            return cfg, 0.0, None, ConnectionRefused(self.name, "connection refused")
        latency = self._dice.latency_s(cfg)
        if self._dice.hit(cfg.error_rate):
            if latency >= timeout_s:
                return cfg, latency, timeout_s, ProcessorTimeout(self.name, f"no answer within {timeout_s:.3f}s")
            return cfg, latency, latency, ProcessorUnavailable(
                self.name, "503 service unavailable (request not processed)", 503)
        if self._dice.hit(cfg.timeout_rate) or latency >= timeout_s:
            # The request hangs (or stalls past the caller's patience); the caller gives up and nothing happens.
            return cfg, latency, timeout_s, ProcessorTimeout(self.name, f"no answer within {timeout_s:.3f}s")
        return cfg, latency, latency, None

    def _plan_lost_response(self, cfg: FaultConfig, latency: float, timeout_s: float) -> tuple[float, Exception] | None:
        """Whether the answer of a processed request is lost: (how long the caller waits for nothing, the timeout)."""
        if self._dice.hit(cfg.lost_response_rate):
            return (max(0.0, timeout_s - latency),
                    ProcessorTimeout(self.name, f"no answer within {timeout_s:.3f}s (response lost)"))
        return None

    def _before_processing(self, timeout_s: float) -> tuple[FaultConfig, float]:
        """Apply the faults that happen before the request is processed. Returns (config, latency left)."""
        cfg, latency, wait, failure = self._plan(timeout_s)
        if wait is not None:
            self._sleep(wait)
        if failure is not None:
            raise failure
        return cfg, latency

    async def _before_processing_async(self, timeout_s: float) -> tuple[FaultConfig, float]:
        """:meth:`_before_processing` for an event loop: the same dice in the same order, waits that hold no thread."""
        cfg, latency, wait, failure = self._plan(timeout_s)
        if wait:
            await asyncio.sleep(wait)
        if failure is not None:
            raise failure
        return cfg, latency

    def _lose_response(self, cfg: FaultConfig, latency: float, timeout_s: float) -> None:
        lost = self._plan_lost_response(cfg, latency, timeout_s)
        if lost is not None:
            self._sleep(lost[0])
            raise lost[1]

    async def _lose_response_async(self, cfg: FaultConfig, latency: float, timeout_s: float) -> None:
        lost = self._plan_lost_response(cfg, latency, timeout_s)
        if lost is not None:
            await asyncio.sleep(lost[0])
            raise lost[1]


class SimulatedProcessor(_FaultedService):
    """A payment processor with a persistent, idempotent ledger and injectable faults."""

    def __init__(
        self,
        name: str,
        engine: Engine,
        faults: FaultStore,
        clock: Clock,
        *,
        seed: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(name, faults, seed=seed, sleep=sleep)
        self._engine = engine
        self._clock = clock
        self._ledger_inline = engine.dialect.name == "sqlite"
        self._insert_charge = RawStatement(_insert_charge[engine.dialect.name], engine.dialect, _CHARGE_KEYS)
        self._write_lock = sqlite_write_lock(engine)  # None: not SQLite, insert through a SQLAlchemy transaction
        self._kept: Any = None

    # -- protocol -----------------------------------------------------------------------------------------------
    # Each operation is the same three steps, blocking (these methods, for in-process use and tests) or awaited on
    # an event loop (the ``*_on_loop`` ones, for ``shopfloor simulate serve``; not named ``*_async``, so that a
    # router holding an in-process simulator keeps calling the blocking ones off its loop, as it always did): the
    # faults before processing, the ledger, a possibly lost answer. The dice are rolled in the same order either way.
    def authorize(
        self, idempotency_key: str, amount: int, currency: str, token: str, order_id: str, *, timeout_s: float
    ) -> ProcessorResponse:
        cfg, latency = self._before_processing(timeout_s)
        row = self._authorize_ledger(cfg, idempotency_key, amount, currency, token, order_id)
        self._lose_response(cfg, latency, timeout_s)
        return self._authorize_answer(row, amount, currency, order_id)

    async def authorize_on_loop(
        self, idempotency_key: str, amount: int, currency: str, token: str, order_id: str, *, timeout_s: float
    ) -> ProcessorResponse:
        cfg, latency = await self._before_processing_async(timeout_s)
        row = await self._on_ledger(self._authorize_ledger, cfg, idempotency_key, amount, currency, token, order_id)
        await self._lose_response_async(cfg, latency, timeout_s)
        return self._authorize_answer(row, amount, currency, order_id)

    def capture(self, idempotency_key: str, amount: int, currency: str, *, timeout_s: float) -> ProcessorResponse:
        cfg, latency = self._before_processing(timeout_s)
        row = self._capture_ledger(idempotency_key, amount, currency)
        self._lose_response(cfg, latency, timeout_s)
        return self._capture_answer(row)

    async def capture_on_loop(
        self, idempotency_key: str, amount: int, currency: str, *, timeout_s: float
    ) -> ProcessorResponse:
        cfg, latency = await self._before_processing_async(timeout_s)
        row = await self._on_ledger(self._capture_ledger, idempotency_key, amount, currency)
        await self._lose_response_async(cfg, latency, timeout_s)
        return self._capture_answer(row)

    def void(self, idempotency_key: str, *, timeout_s: float) -> ProcessorResponse:
        """Release an authorization; for a key never seen, record a cancelled key (technical cancel) so that a
        late-arriving authorize with it cannot charge."""
        cfg, latency = self._before_processing(timeout_s)
        row = self._void_ledger(idempotency_key)
        self._lose_response(cfg, latency, timeout_s)
        return self._void_answer(row)

    async def void_on_loop(self, idempotency_key: str, *, timeout_s: float) -> ProcessorResponse:
        cfg, latency = await self._before_processing_async(timeout_s)
        row = await self._on_ledger(self._void_ledger, idempotency_key)
        await self._lose_response_async(cfg, latency, timeout_s)
        return self._void_answer(row)

    def status(self, idempotency_key: str, *, timeout_s: float) -> ChargeStatus:
        self._before_processing(timeout_s)
        return self._status_answer(idempotency_key, self._row(idempotency_key))

    async def status_on_loop(self, idempotency_key: str, *, timeout_s: float) -> ChargeStatus:
        await self._before_processing_async(timeout_s)
        return self._status_answer(idempotency_key, await self._on_ledger(self._row, idempotency_key))

    # -- the steps ------------------------------------------------------------------------------------------------
    async def _on_ledger(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a ledger step from an event loop: inline on SQLite (a local file, a transaction of tens of
        microseconds, and one thread writing it means no lock to wait for), on a worker thread elsewhere (a
        network round trip)."""
        if self._ledger_inline:
            return fn(*args)
        return await asyncio.to_thread(fn, *args)

    def _authorize_ledger(self, cfg: FaultConfig, idempotency_key: str, amount: int, currency: str, token: str,
                          order_id: str) -> Mapping[str, Any]:
        decline = self._dice.hit(cfg.decline_rate)
        row = self._record_authorization(idempotency_key, order_id, amount, currency, token, decline)
        if row["voided"]:
            raise AttemptKeyCancelled(self.name, f"idempotency key {idempotency_key} was cancelled")
        return row

    @staticmethod
    def _authorize_answer(row: Mapping[str, Any], amount: int, currency: str, order_id: str) -> ProcessorResponse:
        if row["amount"] != amount or row["currency"] != currency or row["order_id"] != order_id:
            return ProcessorResponse(False, row["reference"], "idempotency_key_reused")
        if row["authorized"] and not row["voided"]:
            return ProcessorResponse(True, row["reference"])
        return ProcessorResponse(False, row["reference"], row["decline_reason"] or "declined")

    def _capture_ledger(self, idempotency_key: str, amount: int, currency: str) -> Mapping[str, Any] | None:
        now = self._clock.now()
        t = sim_gateway_charges
        with self._engine.begin() as conn:
            where = and_(t.c.processor == self.name, t.c.idempotency_key == idempotency_key)
            conn.execute(
                update(t)
                .where(where)
                .values(
                    capture_requests=t.c.capture_requests + 1,
                    captured_at=case(
                        (and_(t.c.authorized, ~t.c.voided, ~t.c.captured, t.c.amount >= amount), now),
                        else_=t.c.captured_at,
                    ),
                    captured=case(
                        (and_(t.c.authorized, ~t.c.voided, t.c.amount >= amount, t.c.currency == currency), True),
                        else_=t.c.captured,
                    ),
                )
            )
            return conn.execute(select(t).where(where)).mappings().first()

    @staticmethod
    def _capture_answer(row: Mapping[str, Any] | None) -> ProcessorResponse:
        if row is None:
            return ProcessorResponse(False, None, "unknown_authorization")
        if row["voided"]:
            return ProcessorResponse(False, row["reference"], "authorization_voided")
        if not row["authorized"]:
            return ProcessorResponse(False, row["reference"], "not_authorized")
        if not row["captured"]:
            return ProcessorResponse(False, row["reference"], "amount_exceeds_authorization")
        return ProcessorResponse(True, row["reference"])

    def _void_ledger(self, idempotency_key: str) -> Mapping[str, Any] | None:
        now = self._clock.now()
        t = sim_gateway_charges
        where = and_(t.c.processor == self.name, t.c.idempotency_key == idempotency_key)
        row = None
        for _ in range(3):
            try:
                void_it = update(t).where(and_(where, ~t.c.captured, ~t.c.voided)).values(voided=True, voided_at=now)
                with self._engine.begin() as conn:
                    conn.execute(void_it)
                    row = conn.execute(select(t).where(where)).mappings().first()
                    if row is not None and not row["voided"] and not row["captured"]:
                        # Under READ COMMITTED the authorization can commit between our UPDATE and SELECT:
                        # it is visible now, so void it for real before answering.
                        conn.execute(void_it)
                        row = conn.execute(select(t).where(where)).mappings().first()
                    if row is None:
                        conn.execute(
                            t.insert().values(
                                processor=self.name,
                                idempotency_key=idempotency_key,
                                order_id="",
                                amount=0,
                                currency="",
                                reference=f"{self.name[:3]}_cancel_{uuid.uuid4().hex[:12]}",
                                authorized=False,
                                declined=False,
                                captured=False,
                                voided=True,
                                capture_requests=0,
                                created_at=now,
                                voided_at=now,
                            )
                        )
                        row = {"captured": False, "voided": True, "reference": None}
                break
            except IntegrityError:  # the authorization arrived concurrently: void that one instead
                continue
        return row

    def _void_answer(self, row: Mapping[str, Any] | None) -> ProcessorResponse:
        if row is None:  # pragma: no cover - three lost races in a row
            raise ProcessorUnavailable(self.name, "503 conflict, not processed", 503)
        if row["captured"]:
            return ProcessorResponse(False, row["reference"], "already_captured")
        if not row.get("voided", True):  # pragma: no cover - defensive: never claim a cancel that did not happen
            raise ProcessorTimeout(self.name, "void not confirmed")
        return ProcessorResponse(True, row["reference"])

    def _status_answer(self, idempotency_key: str, row: Mapping[str, Any] | None) -> ChargeStatus:
        if row is None:
            return ChargeStatus(self.name, idempotency_key, found=False)
        return ChargeStatus(
            processor=self.name,
            idempotency_key=idempotency_key,
            found=True,
            authorized=bool(row["authorized"]),
            declined=bool(row["declined"]),
            captured=bool(row["captured"]),
            voided=bool(row["voided"]),
            amount=row["amount"],
            currency=row["currency"],
            order_id=row["order_id"],
            reference=row["reference"],
            decline_reason=row["decline_reason"],
        )

    # -- ledger -------------------------------------------------------------------------------------------------
    def _row(self, key: str) -> Mapping[str, Any] | None:
        with self._engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            row = conn.execute(_select_charge, {"b_proc": self.name, "b_key": key}).mappings().first()
            conn.rollback()
        return row

    def _insert_on_kept_connection(self, values: dict[str, Any]) -> int:
        """SQLite: the insert in its own transaction on a DBAPI connection this processor keeps, queued with the
        engine's other write transactions on the engine's own lock. A checkout's one ledger write: the pool
        check-out, SQLAlchemy's begin and commit around it cost this process more than SQLite's insert and commit."""
        with self._write_lock:
            if self._kept is None:
                self._kept = self._engine.raw_connection()
            cur = self._kept.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
                try:
                    cur.execute(self._insert_charge.sql, self._insert_charge.parameters(values))
                    inserted = cur.rowcount
                    cur.execute("COMMIT")
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
            finally:
                cur.close()
        return inserted

    def _record_authorization(
        self, key: str, order_id: str, amount: int, currency: str, token: str, decline: bool
    ) -> Mapping[str, Any]:
        """Insert the charge once per (processor, key); a concurrent or repeated request reads the first one."""
        now = self._clock.now()
        values = {
            "processor": self.name,
            "idempotency_key": key,
            "order_id": order_id,
            "amount": amount,
            "currency": currency,
            "token": _mask_token(token),
            "reference": f"{self.name[:3]}_{uuid.uuid4().hex[:20]}",
            "authorized": not decline,
            "declined": decline,
            "decline_reason": "card_declined" if decline else None,
            "captured": False,
            "voided": False,
            "capture_requests": 0,
            "created_at": now,
            "authorized_at": None if decline else now,
        }
        # One statement: the first request with a key inserts; a repeat (or a concurrent twin) inserts nothing and
        # reads the charge the first one recorded. On the DBAPI cursor (SQL compiled once from the table): this is
        # the one ledger write of every checkout, and SQLAlchemy's execution cost more than the insert itself.
        if self._write_lock is not None:
            inserted = self._insert_on_kept_connection(values)
        else:
            with self._engine.begin() as conn:
                inserted = self._insert_charge.execute(conn, values)
        if inserted == 1:
            return values
        row = self._row(key)
        assert row is not None
        return row


# Built once per dialect and executed with a parameter dict: no statement construction per authorization.
_insert_charge = {
    name: dialect_insert(name, sim_gateway_charges).on_conflict_do_nothing() for name in ("sqlite", "postgresql")
}
_CHARGE_KEYS = ("processor", "idempotency_key", "order_id", "amount", "currency", "token", "reference", "authorized",
                "declined", "decline_reason", "captured", "voided", "capture_requests", "created_at", "authorized_at")
_select_charge = select(sim_gateway_charges).where(
    sim_gateway_charges.c.processor == bindparam("b_proc"), sim_gateway_charges.c.idempotency_key == bindparam("b_key"))


def _mask_token(token: str) -> str:
    return token if len(token) <= 8 else f"{token[:4]}...{token[-4:]}"


def ledger(engine: Engine, processor: str) -> list[dict[str, Any]]:
    """Every charge ``processor`` holds, oldest first, in the admin API's ledger shape."""
    t = sim_gateway_charges
    with engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
        rows = conn.execute(
            select(t).where(t.c.processor == processor).order_by(t.c.created_at, t.c.idempotency_key)
        ).mappings().all()
        conn.rollback()
    return [
        {
            "idempotency_key": r["idempotency_key"],
            "order_id": r["order_id"],
            "amount": r["amount"],
            "currency": r["currency"],
            "authorized": bool(r["authorized"]),
            "captured": bool(r["captured"]),
            "voided": bool(r["voided"]),
            "declined": bool(r["declined"]),
            "capture_requests": r["capture_requests"],
            "reference": r["reference"],
        }
        for r in rows
    ]


# --------------------------------------------------------------------------------------------------------------
# Carrier rates
# --------------------------------------------------------------------------------------------------------------


class SimulatedRateService(_FaultedService):
    """A carrier-rate service: zone base price plus a per-kilogram price, with the same fault model."""

    #: (base minor units, per kg minor units, currency, days) by destination country; "*" for the rest.
    ZONES: dict[str, tuple[int, int, str, int]] = {
        "US": (650, 120, "USD", 4),
        "CA": (1200, 200, "USD", 6),
        "BR": (1890, 310, "BRL", 8),
        "DE": (520, 90, "EUR", 2),
        "*": (1600, 350, "USD", 9),
    }

    def __init__(
        self, faults: FaultStore, *, seed: int | None = None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        super().__init__(RATES_SERVICE, faults, seed=seed, sleep=sleep)

    def quote(self, country: str, postal_code: str | None, weight_g: int, *, timeout_s: float) -> RateQuote:
        try:
            cfg, latency = self._before_processing(timeout_s)
            self._lose_response(cfg, latency, timeout_s)
        except (ConnectionRefused, ProcessorUnavailable, ProcessorTimeout) as exc:
            raise _rate_error(exc) from exc
        return self._price(country, weight_g)

    async def quote_on_loop(self, country: str, postal_code: str | None, weight_g: int, *,
                            timeout_s: float) -> RateQuote:
        try:
            cfg, latency = await self._before_processing_async(timeout_s)
            await self._lose_response_async(cfg, latency, timeout_s)
        except (ConnectionRefused, ProcessorUnavailable, ProcessorTimeout) as exc:
            raise _rate_error(exc) from exc
        return self._price(country, weight_g)

    def _price(self, country: str, weight_g: int) -> RateQuote:
        base, per_kg, currency, days = self.ZONES.get(country.upper(), self.ZONES["*"])
        kg = max(1, math.ceil(max(0, weight_g) / 1000))
        return RateQuote(base + per_kg * kg, currency, days, "simcarrier", "ground")


def _rate_error(exc: Exception) -> RateServiceError:
    if isinstance(exc, ConnectionRefused):
        return RateServiceError("unavailable", str(exc))
    if isinstance(exc, ProcessorUnavailable):
        return RateServiceError("error", str(exc))
    return RateServiceError("timeout", str(exc))
