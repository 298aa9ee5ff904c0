"""Game day: shoppers plus a schedule of real faults against the running system, then a report that checks that
nothing was lost, nothing oversold and nobody charged twice.

The real ``shopfloor serve`` and ``shopfloor worker`` run as child processes on a fresh store, calling the simulated
payment processors and rate service in a third one (``shopfloor simulate serve``), as they would a real gateway.
Shopper threads check out over HTTP (retrying the same idempotency key while the server is down, as a storefront
would), some of them in a flash sale of a scarce SKU, and some replay a key they were already answered on.
Meanwhile the fault schedule changes the simulated payment processors and rate service through the admin API (lost
responses after a charge, the primary down, the rate service blackholed) and kills the server, the worker and the
simulator process with ``SIGKILL``. After the load, everything heals, the worker drains the outbox, and the store
and the processors' ledgers are checked.

Used by ``shopfloor gameday``; the invariants it checks are the buy path's guarantees (see the README).
"""

from __future__ import annotations

import random
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

import httpx

from ..runtime import ServerProcess, SimulatorProcess, WorkerProcess
from .checks import stock_snapshot, verify_store
from .faults import DEFAULT_SCHEDULE, Fault, ProcessorKiller, heal, inject, play
from .harness import drain_and_check, ledger_anomalies, simulator_env
from .report import Attempt, GameDayResult, summarize_phases, timeline
from .seed import ensure_fresh_store, seed_bench_store

#: Scarce units of the flash-sale SKU (``HOT``); every other SKU has ample stock.
FLASH_UNITS = 150


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



def run_gameday(database_url: str | None = None, *, seconds: float = 40.0, shoppers: int = 12, seed: int = 7,
                n_skus: int = 50, drain_timeout_s: float = 120.0, schedule: tuple[Fault, ...] = DEFAULT_SCHEDULE,
                progress: Callable[[str], None] | None = None, workdir: Path | None = None,
                slow_subscriber_s: float = 0.0) -> GameDayResult:
    """Run one game day and return its report. ``database_url``: an empty database (default: a fresh SQLite file).
    ``slow_subscriber_s`` > 0 adds two webhook subscribers, one answering only after that many seconds; the fast one
    must still receive every accepted order (check ``webhook_fast_subscriber_missing``)."""
    from ..runtime import interrupt_on_termination

    say = progress or (lambda _msg: None)
    tmp = workdir or Path(tempfile.mkdtemp(prefix="sf-gameday-"))
    if database_url:
        ensure_fresh_store(database_url)
    url_db = database_url or f"sqlite:///{tmp / 'gameday.db'}"
    say("seeding the store")
    key = seed_bench_store(url_db, n_skus, FLASH_UNITS)
    initial = stock_snapshot(url_db)
    # Processors answer in ~5 ms and the worker retries payments quickly, so that a short game day drains.
    env = simulator_env(seed)
    subscribers = None
    if slow_subscriber_s > 0:
        from .subscribers import SubscriberPair

        subscribers = SubscriberPair(slow_subscriber_s)
        subscribers.start()
        env["SHOPFLOOR_WEBHOOK_ALLOWED_HOSTS"] = "127.0.0.1"
    # The simulators keep their ledger and faults in the gateway database (on SQLite a file beside the store's), so
    # a kill -9 of their process loses nothing it had answered.
    sim = SimulatorProcess(url_db, env=env, log_path=tmp / "simulators.log")
    killer = ProcessorKiller(sim)
    server = ServerProcess(url_db, env={**env, "SHOPFLOOR_PAYMENTS_SIM_URL": sim.url}, log_path=tmp / "server.log")
    worker = WorkerProcess(url_db, env={**env, "SHOPFLOOR_PAYMENTS_SIM_URL": sim.url}, log_path=tmp / "worker.log")
    restore_signals = interrupt_on_termination()
    result = GameDayResult("postgresql" if url_db.startswith("postgres") else "sqlite", seconds, shoppers)
    admin = httpx.Client(timeout=10, headers={"Authorization": f"Bearer {key}"})
    try:
        say("starting the simulated processors, the server and the worker")
        sim.start()
        server.start()
        worker.start()
        if subscribers is not None:
            subscribers.subscribe(admin, server.url)
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
        for fault, at in play(schedule, t0, seconds, say):
            detail = inject(fault, server, worker, admin, processors, killer)
            boundaries.append((at, fault.name or fault.label))
            result.faults.append({"at_s": round(at, 1), "action": fault.action, "label": fault.label, **detail})
        crowd.stop.set()
        for t in threads:
            t.join(timeout=30)
        end_s = time.monotonic() - t0
        killer.wait()  # a simulator process killed late in the load is back before the drain
        kills = [f for f in result.faults if f["action"] == "processor_kill"]
        for entry, back in zip(kills, killer.back_after_s):
            entry["back_after_s"] = back
        say("healing and draining the outbox")
        heal(admin, server.url, processors)
        drained, checks = drain_and_check(url_db, drain_timeout_s, FLASH_UNITS, initial, say)
        result.drain = {"seconds": drained["seconds"], "settled": drained["settled"],
                        "outbox_pending": drained["outbox_pending"], "outbox_delivered": drained["outbox_delivered"],
                        "payment_pending_orders": checks["payment_pending_orders"],
                        "provisional_quotes_left": checks["provisional_quotes_left"],
                        "orders_by_status": checks["orders_by_status"]}
        say("checking the store and the processors' ledgers")
        charges, double_captures, double_auth, live_on_ended = ledger_anomalies(server.url, key, processors,
                                                                                checks["ended_unpaid_orders"])
        if subscribers is not None:
            say("waiting for the fast webhook subscriber")
            waiting = [a.order_id for a in crowd.attempts if a.status == 201 and a.order_id]
            result.drain["fast_subscriber_caught_up_s"] = round(subscribers.wait_for_fast(waiting, drain_timeout_s), 1)
    finally:
        admin.close()
        worker.stop()
        server.stop()
        try:
            killer.wait()
        except RuntimeError:
            pass  # already raised above, or the run is failing for another reason
        sim.stop()
        if subscribers is not None:
            subscribers.stop()
        restore_signals()
    attempts = crowd.attempts
    created = [a.order_id for a in attempts if a.status == 201 and a.order_id]
    if subscribers is not None:
        result.subscribers = subscribers.summary(created)
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
        "dead_letters": drained["outbox_dead"],
        "stock_not_conserved": checks["stock_not_conserved"],
    }
    if subscribers is not None:
        result.checks["webhook_fast_subscriber_missing"] = result.subscribers["fast_missing_order_placed"]
    return result
