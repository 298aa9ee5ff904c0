"""Game-day faults: what a schedule may do (processor and rate-service fault patches, ``kill -9`` of the server, the
worker or the simulator process, heal), reading a schedule from YAML/JSON, and applying one fault to the running
system."""

from __future__ import annotations

from collections.abc import Iterator

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ..runtime import ServerProcess, SimulatorProcess, WorkerProcess

#: The simulated processors' and rate service's latency during a game day (fast, so that a short game day drains).
LATENCY_MS = 5.0
#: What ``heal`` puts back: the game day's starting point, every fault a schedule may have set cleared.
HEAL = {"down": False, "error_rate": 0.0, "timeout_rate": 0.0, "lost_response_rate": 0.0, "decline_rate": 0.0,
        "latency_ms": LATENCY_MS, "latency_jitter": 0.25}
#: How long the simulator process stays dead after a ``processor_kill`` before it is started again.
PROCESSOR_KILL_DOWN_S = 3.0


@dataclass(frozen=True)
class Fault:
    """At ``at`` (a fraction of the load phase) do ``action``: ``processor`` / ``rates`` (a fault patch for the
    simulated processor ``target`` or the rate service), ``kill_server``, ``kill_worker``, ``processor_kill`` (``kill
    -9`` the simulator process that serves every processor and the rate service, start it again
    :data:`PROCESSOR_KILL_DOWN_S` later on the same port and ledger) or ``heal``."""

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
    Fault(0.65, "processor_kill", f"kill -9 the simulator process (every processor and the rate service), restart "
          f"it {PROCESSOR_KILL_DOWN_S:g} s later", name="processors killed"),
    Fault(0.75, "heal", "primary and rate service back", name="healed"),
    Fault(0.85, "kill_server", "kill -9 the server again, restart it", name="server killed"),
)


ACTIONS = ("processor", "rates", "kill_server", "kill_worker", "processor_kill", "heal")

#: What the edge game day (``shopfloor gameday --scenario edge``) may do: kill one edge node and bring it back,
#: stall the origin (SIGSTOP most of every second: requests wait past the shield's timeout), kill it and restart
#: it, and sell out a SKU in one order.
EDGE_ACTIONS = ("edge_down", "edge_up", "origin_slow", "origin_down", "origin_up", "sell_out")

EDGE_SCHEDULE: tuple[Fault, ...] = (
    Fault(0.12, "edge_down", "edge node edge-a dies (its shoppers move to edge-b)", "edge-a", name="edge down"),
    Fault(0.27, "edge_up", "edge node edge-a back (its cache reloaded from disk)", "edge-a", name="edge back"),
    Fault(0.35, "sell_out", "one order takes the last units of LAST", name="sell-out"),
    Fault(0.50, "origin_slow", "origin stalls 0.9 s of every 1.2 s (SIGSTOP/SIGCONT)", name="origin slow"),
    Fault(0.64, "origin_down", "origin killed (kill -9), not restarted", name="origin down"),
    Fault(0.82, "origin_up", "origin restarted", name="origin back"),
)


#: What the regions game day (``shopfloor gameday --scenario regions``) may do: kill region A whole (app, worker,
#: Patroni and its PostgreSQL primary, SIGKILL; the failover that follows is automatic), stop a warehouse's
#: fulfillment feed (``warehouse_delay``, target: the warehouse) and let it flow again, its held-back events
#: arriving late (``warehouse_back``).
REGIONS_ACTIONS = ("region_down", "warehouse_delay", "warehouse_back")
#: The warehouse whose feed the regions game day delays.
DELAYED_WAREHOUSE = "us-east-1"

REGIONS_SCHEDULE: tuple[Fault, ...] = (
    Fault(0.10, "warehouse_delay", f"warehouse {DELAYED_WAREHOUSE}'s fulfillment events stop",
          DELAYED_WAREHOUSE, name="warehouse delayed"),
    Fault(0.40, "region_down", "region A killed whole with SIGKILL (app, worker, Patroni, PostgreSQL primary); "
          "automatic failover to B", "A", name="region A down"),
    Fault(0.90, "warehouse_back", f"{DELAYED_WAREHOUSE}'s held-back events arrive, late", DELAYED_WAREHOUSE,
          name="warehouse back"),
)
#: Actions that name a target, and what it is.
_TARGETS = {"processor": "the processor to change (e.g. 'primary')", "warehouse_delay": "the warehouse (e.g. "
            f"'{DELAYED_WAREHOUSE}')", "warehouse_back": "the warehouse", "region_down": "the region: 'A'"}


def parse_schedule(data: Any, actions: tuple[str, ...] = ACTIONS) -> tuple[Fault, ...]:
    """A schedule from plain data (a list of faults, or ``{"faults": [...]}``), each
    ``{"at": 0.3, "action": "processor", "target": "primary", "patch": {"down": true}, "label": "...", "name": "..."}``.
    ``at`` is a fraction of the load phase; ``patch`` (processor, rates) takes the fields of
    ``PUT /v1/admin/processors/{name}/faults``. ``actions``: the scenario's (:data:`ACTIONS`, :data:`EDGE_ACTIONS`
    or :data:`REGIONS_ACTIONS`). Raises ``ValueError`` naming the fault and field."""
    from pydantic import ValidationError

    from ..simulators import FaultPatch

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
        if action not in actions:
            raise ValueError(f"{where}.action: one of {', '.join(actions)} (got {action!r})")
        target, patch = item.get("target"), item.get("patch")
        if action == "region_down" and target is None:
            target = "A"
        if action in _TARGETS and not (isinstance(target, str) and target):
            raise ValueError(f"{where}.target: {_TARGETS[action]}")
        if action == "region_down" and target != "A":
            raise ValueError(f"{where}.target: {_TARGETS[action]} (region B is the standby; got {target!r})")
        if action not in _TARGETS and target is not None:
            raise ValueError(f"{where}.target: only {', '.join(repr(a) for a in _TARGETS)} faults name a target")
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


def load_schedule(path: str | Path, actions: tuple[str, ...] = ACTIONS) -> tuple[Fault, ...]:
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
        return parse_schedule(data, actions)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON: {exc.msg} at line {exc.lineno}") from None
    except ValueError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise ValueError(f"{path}: {exc}") from None


class ProcessorKiller:
    """``kill -9`` of the simulator process, restarted :data:`PROCESSOR_KILL_DOWN_S` later on a background thread
    so that the rest of the schedule keeps its times. Its ledger is durable (its own database), so a charge made
    before the kill is still there to be found, captured or voided after the restart."""

    def __init__(self, sim: SimulatorProcess, down_s: float = PROCESSOR_KILL_DOWN_S) -> None:
        self.sim = sim
        self.down_s = down_s
        self._restarts: list[threading.Thread] = []
        self.errors: list[str] = []
        #: Seconds from each kill until the simulator process answered its health check again, in kill order.
        self.back_after_s: list[float] = []

    def kill(self) -> dict[str, Any]:
        self.wait()  # a previous kill is back before the next one
        self.sim.kill9()
        killed_at = time.monotonic()

        def restart() -> None:
            time.sleep(max(0.0, self.down_s - (time.monotonic() - killed_at)))
            try:
                self.sim.start(timeout=60)
                self.back_after_s.append(round(time.monotonic() - killed_at, 1))
            except Exception as exc:  # noqa: BLE001 - reported by wait(); the game day cannot go on without it
                self.errors.append(str(exc))

        thread = threading.Thread(target=restart, name="gameday-sim-restart", daemon=True)
        thread.start()
        self._restarts.append(thread)
        return {"down_s": self.down_s}

    def wait(self) -> None:
        """Block until every restart has finished; raise if one failed (the processors never came back)."""
        for thread in self._restarts:
            thread.join()
        self._restarts.clear()
        if self.errors:
            raise RuntimeError(f"the simulator process did not come back after a kill: {self.errors[0]}")


def inject(fault: Fault, server: ServerProcess, worker: WorkerProcess, admin: httpx.Client,
           processors: list[str], killer: ProcessorKiller | None = None) -> dict[str, Any]:
    if fault.action == "processor_kill":
        if killer is None:
            raise ValueError("processor_kill: the simulated processors do not run as their own process here")
        return killer.kill()
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
        heal(admin, server.url, processors)
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


def heal(admin: httpx.Client, url: str, processors: list[str]) -> None:
    for name in processors:
        admin.put(f"{url}/v1/admin/processors/{name}/faults", json=HEAL).raise_for_status()
    admin.put(f"{url}/v1/admin/rates/faults", json=HEAL).raise_for_status()


def play(schedule, t0: float, seconds: float, say) -> Iterator[tuple[Fault, float]]:
    """Yield each fault of ``schedule`` when its time comes (``at`` is a fraction of the ``seconds``-long load phase
    that started at monotonic ``t0``), with the seconds since ``t0``; after the last one, wait out the load phase."""
    for fault in sorted(schedule, key=lambda f: f.at):
        wait = t0 + fault.at * seconds - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        say(f"fault: {fault.label}")
        yield fault, time.monotonic() - t0
    remaining = t0 + seconds - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)
