"""Running the real server and worker as child processes (demo, benchmarks, game days, tests)."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import httpx


def name_os_thread(name: str | None = None) -> None:
    """Give the calling thread its name at the operating-system level too (Linux: 15 bytes, ``prctl``), so ``top -H``,
    ``/proc/<pid>/task/*/comm``, py-spy and the checkout benchmark's per-thread CPU split can tell the buy path's
    threads apart. Python 3.11 names threads only inside the interpreter. Does nothing elsewhere or on failure."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        label = (name or threading.current_thread().name).encode("utf-8", "replace")[:15]
        libc.prctl(15, ctypes.c_char_p(label), 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):  # pragma: no cover - no libc prctl
        pass


def os_thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each thread of process ``pid``, summed by OS thread name with a
    trailing number dropped (``buy-path_12`` counts as ``buy-path``). Empty where ``/proc`` is unavailable."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    out: dict[str, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended between listing and reading
            continue
        if tid == str(pid):
            name = "main (event loop)"
        key = name.rstrip("0123456789").rstrip("_-") or name
        out[key] = out.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on ``host:port`` (a server started there would exit at once)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _log_tail(path: Path | None, lines: int = 1) -> str:
    """The last non-blank line(s) of a child's log, to say why it exited."""
    if path is None:
        return ""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


_HANDED_OUT: set[int] = set()
#: Where :func:`free_port` picks by default: just below the kernel's ephemeral range, above the fixed ports the
#: project's own layouts default to (the regions' 25400.. block and the like).
_PICK_LOW = 30500


def _ephemeral_low() -> int:
    """The lowest port the kernel hands to outgoing connections (Linux: ``ip_local_port_range``)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A free local port for a child to listen on: the first free one in ``SHOPFLOOR_FREE_PORTS`` ("LOW-HIGH") when
    set (a shared machine where each user keeps to a range), else a random free one between 30500 and the start of
    the kernel's ephemeral range.

    Not the kernel's own pick (binding port 0): that comes from the ephemeral range, which every outgoing
    connection on the machine draws from too, so in the seconds before the child binds it, a client socket of
    another process can take it ("Address already in use"). Where the ephemeral range leaves no room below it,
    the kernel's pick it is."""
    span = os.environ.get("SHOPFLOOR_FREE_PORTS")
    if span:
        low, high = (int(x) for x in span.split("-", 1))
        # A port handed out is not bound until its child starts: skip the ones this process already gave, or two
        # children constructed before either starts (the game day's simulator and server) would share one.
        for port in [p for p in range(low, high + 1) if p not in _HANDED_OUT] + sorted(_HANDED_OUT):
            if low <= port <= high and not port_in_use("127.0.0.1", port):
                _HANDED_OUT.add(port)
                return port
        raise RuntimeError(f"no free port in SHOPFLOOR_FREE_PORTS={span}")
    high = _ephemeral_low() - 1
    if high - _PICK_LOW >= 256:
        pick = random.SystemRandom()
        for _ in range(200):
            port = pick.randint(_PICK_LOW, high)
            if port not in _HANDED_OUT and not port_in_use("127.0.0.1", port):
                _HANDED_OUT.add(port)
                return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _interrupted(signum, _frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def interrupt_on_termination() -> Callable[[], None]:
    """Make SIGTERM and SIGHUP raise ``KeyboardInterrupt`` in the main thread, as Ctrl-C does, so the ``finally``
    that stops a command's child processes (server, worker) runs when the command is killed too; otherwise a plain
    ``kill`` of the demo or a benchmark leaves its server running on the port. Returns a function that puts the
    previous handlers back. Off the main thread (signals cannot be handled there) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.signal(sig, _interrupted) for sig in (signal.SIGTERM, signal.SIGHUP)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def child_env(db_url: str, extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["SHOPFLOOR_DATABASE_URL"] = db_url
    src = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def _kill_group(proc: subprocess.Popen | None, sig: int) -> None:
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=10)


def _stop_group(proc: subprocess.Popen | None, grace_s: float) -> None:
    """SIGTERM the process group, then SIGKILL it if it has not exited within ``grace_s``."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc, signal.SIGKILL)


class _HttpChild:
    """A ``shopfloor`` HTTP command in its own process group, so a kill -9 takes the supervisor and workers down
    at once; ``start`` returns once ``/healthz`` answers 200."""

    what = "server"

    def __init__(self, db_url: str, port: int | None = None, env: dict | None = None, log_path: Path | None = None,
                 host: str = "127.0.0.1", pin_core: int | None = None) -> None:
        self.db_url = db_url
        self.host = host
        self.port = port or free_port()
        self.env = env
        self.log_path = log_path
        self.pin_core = pin_core
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _args(self) -> list[str]:
        raise NotImplementedError

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "shopfloor", *self._args()]

    def start(self, timeout: float = 90.0):
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        pin = ["taskset", "-c", str(self.pin_core)] if self.pin_core is not None else []
        self.proc = subprocess.Popen(
            pin + self._command(),
            env=child_env(self.db_url, self.env), stdout=out, stderr=out, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                cause = _log_tail(self.log_path)
                raise RuntimeError(f"{self.what} exited with {self.proc.returncode}"
                                   + (f": {cause}" if cause else "")
                                   + (f" (log: {self.log_path})" if self.log_path else ""))
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.what} did not become healthy")

    def kill9(self) -> None:
        _kill_group(self.proc, signal.SIGKILL)

    def stop(self) -> None:
        _stop_group(self.proc, 15)


class ServerProcess(_HttpChild):
    """``shopfloor serve`` (``workers`` uvicorn workers) in its own process group."""

    def __init__(self, db_url: str, port: int | None = None, workers: int = 1, env: dict | None = None,
                 log_path: Path | None = None, host: str = "127.0.0.1", pin_core: int | None = None) -> None:
        super().__init__(db_url, port, env, log_path, host, pin_core)
        self.workers = workers

    def _args(self) -> list[str]:
        return ["serve", "--host", self.host, "--port", str(self.port), "--workers", str(self.workers)]

    def start(self, timeout: float = 90.0) -> ServerProcess:
        return super().start(timeout)


class ScriptServerProcess(_HttpChild):
    """A server started from Python source given as text (``python -c SCRIPT PORT``), for benchmarks that wrap the
    app (in a profiler, say): the same process group, start-up wait and stop as :class:`ServerProcess`."""

    def __init__(self, script: str, db_url: str, port: int | None = None, env: dict | None = None,
                 log_path: Path | None = None, pin_core: int | None = None) -> None:
        super().__init__(db_url, port, env, log_path, "127.0.0.1", pin_core)
        self.script = script

    def _command(self) -> list[str]:
        return [sys.executable, "-c", self.script, str(self.port)]

    def start(self, timeout: float = 90.0) -> ScriptServerProcess:
        return super().start(timeout)


class SimulatorProcess(_HttpChild):
    """``shopfloor simulate serve``: the simulated processors and rate service as their own process."""

    what = "simulator process"

    def _args(self) -> list[str]:
        return ["simulate", "serve", "--host", self.host, "--port", str(self.port)]

    def start(self, timeout: float = 90.0) -> SimulatorProcess:
        return super().start(timeout)


class WorkerProcess:
    """``shopfloor worker`` in its own process group."""

    def __init__(self, db_url: str, env: dict | None = None, log_path: Path | None = None) -> None:
        self.db_url = db_url
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> "WorkerProcess":
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shopfloor", "worker"], env=child_env(self.db_url, self.env),
            stdout=out, stderr=out, start_new_session=True,
        )
        return self

    def kill9(self) -> None:
        _kill_group(self.proc, signal.SIGKILL)

    def stop(self) -> None:
        _stop_group(self.proc, 20)
