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
from ..store.engine import dialect_insert
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

    def _before_processing(self, timeout_s: float) -> tuple[FaultConfig, float]:
        """Apply the faults that happen before the request is processed. Returns (config, latency left)."""
        cfg = self._faults.get(self.name)
        if cfg.down:
            raise ConnectionRefused(self.name, "connection refused")
        latency = self._dice.latency_s(cfg)
        if self._dice.hit(cfg.error_rate):
            if latency >= timeout_s:
                self._sleep(timeout_s)
                raise ProcessorTimeout(self.name, f"no answer within {timeout_s:.3f}s")
            self._sleep(latency)
            raise ProcessorUnavailable(self.name, "503 service unavailable (request not processed)", 503)
        if self._dice.hit(cfg.timeout_rate) or latency >= timeout_s:
            # The request hangs (or stalls past the caller's patience); the caller gives up and nothing happens.
            self._sleep(timeout_s)
            raise ProcessorTimeout(self.name, f"no answer within {timeout_s:.3f}s")
        self._sleep(latency)
        return cfg, latency

    def _lose_response(self, cfg: FaultConfig, latency: float, timeout_s: float) -> None:
        if self._dice.hit(cfg.lost_response_rate):
            self._sleep(max(0.0, timeout_s - latency))
            raise ProcessorTimeout(self.name, f"no answer within {timeout_s:.3f}s (response lost)")


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

    # -- protocol -----------------------------------------------------------------------------------------------
    def authorize(
        self, idempotency_key: str, amount: int, currency: str, token: str, order_id: str, *, timeout_s: float
    ) -> ProcessorResponse:
        cfg, latency = self._before_processing(timeout_s)
        decline = self._dice.hit(cfg.decline_rate)
        row = self._record_authorization(idempotency_key, order_id, amount, currency, token, decline)
        if row["voided"]:
            raise AttemptKeyCancelled(self.name, f"idempotency key {idempotency_key} was cancelled")
        self._lose_response(cfg, latency, timeout_s)
        if row["amount"] != amount or row["currency"] != currency or row["order_id"] != order_id:
            return ProcessorResponse(False, row["reference"], "idempotency_key_reused")
        if row["authorized"] and not row["voided"]:
            return ProcessorResponse(True, row["reference"])
        return ProcessorResponse(False, row["reference"], row["decline_reason"] or "declined")

    def capture(self, idempotency_key: str, amount: int, currency: str, *, timeout_s: float) -> ProcessorResponse:
        cfg, latency = self._before_processing(timeout_s)
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
            row = conn.execute(select(t).where(where)).mappings().first()
        self._lose_response(cfg, latency, timeout_s)
        if row is None:
            return ProcessorResponse(False, None, "unknown_authorization")
        if row["voided"]:
            return ProcessorResponse(False, row["reference"], "authorization_voided")
        if not row["authorized"]:
            return ProcessorResponse(False, row["reference"], "not_authorized")
        if not row["captured"]:
            return ProcessorResponse(False, row["reference"], "amount_exceeds_authorization")
        return ProcessorResponse(True, row["reference"])

    def void(self, idempotency_key: str, *, timeout_s: float) -> ProcessorResponse:
        """Release an authorization; for a key never seen, record a cancelled key (technical cancel) so that a
        late-arriving authorize with it cannot charge."""
        cfg, latency = self._before_processing(timeout_s)
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
        self._lose_response(cfg, latency, timeout_s)
        if row is None:  # pragma: no cover - three lost races in a row
            raise ProcessorUnavailable(self.name, "503 conflict, not processed", 503)
        if row["captured"]:
            return ProcessorResponse(False, row["reference"], "already_captured")
        if not row.get("voided", True):  # pragma: no cover - defensive: never claim a cancel that did not happen
            raise ProcessorTimeout(self.name, "void not confirmed")
        return ProcessorResponse(True, row["reference"])

    def status(self, idempotency_key: str, *, timeout_s: float) -> ChargeStatus:
        self._before_processing(timeout_s)
        row = self._row(idempotency_key)
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
        # reads the charge the first one recorded.
        with self._engine.begin() as conn:
            inserted = conn.execute(_insert_charge[conn.dialect.name], values).first()
        if inserted is not None:
            return values
        row = self._row(key)
        assert row is not None
        return row


# Built once per dialect and executed with a parameter dict: no statement construction per authorization.
_insert_charge = {
    name: dialect_insert(name, sim_gateway_charges).on_conflict_do_nothing()
    .returning(sim_gateway_charges.c.idempotency_key)
    for name in ("sqlite", "postgresql")
}
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
        except ConnectionRefused as exc:
            raise RateServiceError("unavailable", str(exc)) from exc
        except ProcessorUnavailable as exc:
            raise RateServiceError("error", str(exc)) from exc
        except ProcessorTimeout as exc:
            raise RateServiceError("timeout", str(exc)) from exc
        base, per_kg, currency, days = self.ZONES.get(country.upper(), self.ZONES["*"])
        kg = max(1, math.ceil(max(0, weight_g) / 1000))
        return RateQuote(base + per_kg * kg, currency, days, "simcarrier", "ground")
