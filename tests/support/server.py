"""Run the real server (and worker) as subprocesses for integration and e2e tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(db_url: str, extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["SHOPFLOOR_DATABASE_URL"] = db_url
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


class ServerProcess:
    def __init__(self, db_url: str, port: int | None = None, workers: int = 1, env: dict | None = None,
                 log_path: Path | None = None) -> None:
        self.db_url = db_url
        self.port = port or free_port()
        self.workers = workers
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> "ServerProcess":
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shopfloor", "serve", "--port", str(self.port), "--workers", str(self.workers)],
            env=_env(self.db_url, self.env), stdout=out, stderr=out, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not become healthy")

    def kill9(self) -> None:
        """SIGKILL the whole process group (uvicorn supervisor and its workers): a crash, not a shutdown."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


class WorkerProcess:
    def __init__(self, db_url: str, env: dict | None = None) -> None:
        self.db_url = db_url
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self) -> "WorkerProcess":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shopfloor", "worker"], env=_env(self.db_url, self.env),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        return self

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
