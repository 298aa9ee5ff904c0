"""Start, stop and kill the nginx instances of an :class:`EdgeLayout`, each with its own prefix (no system
service, no root needed)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx

from .layout import EdgeLayout, Node

INSTALL_HINT = "nginx is not installed: run tools/install-nginx.sh (it installs the Debian package)"


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                           if Path(p).exists()), None)
    if found is None:
        raise FileNotFoundError(INSTALL_HINT)
    return found


def _cmd(node: Node) -> list[str]:
    return [nginx_binary(), "-p", str(node.prefix), "-c", str(node.conf), "-e", str(node.prefix / "error.log")]


def master_pid(node: Node) -> int | None:
    try:
        pid = int(node.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def is_healthy(node: Node, timeout: float = 1.0) -> bool:
    try:
        return httpx.get(node.url + "/edge/healthz", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def check_config(node: Node) -> None:
    out = subprocess.run([*_cmd(node), "-t", "-q"], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{node.conf}: nginx -t failed: {(out.stderr or out.stdout).strip()[-500:]}")


def start_node(node: Node, timeout: float = 10.0) -> int:
    """Start ``node`` (a no-op when it already runs) and wait until it answers. Returns the master's pid."""
    running = master_pid(node)
    if running is not None and is_healthy(node):
        return running
    if not node.conf.exists():
        raise FileNotFoundError(f"{node.conf}: no config; run `shopfloor edge config` first")
    check_config(node)
    out = subprocess.run(_cmd(node), capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{node.name}: nginx did not start: {(out.stderr or out.stdout).strip()[-500:]}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = master_pid(node)
        if pid is not None and is_healthy(node, timeout=0.5):
            return pid
        time.sleep(0.05)
    raise RuntimeError(f"{node.name}: nginx did not answer on port {node.port} (see {node.prefix}/error.log)")


def stop_node(node: Node, timeout: float = 10.0) -> bool:
    """Graceful stop (SIGQUIT: finish the requests in flight). Returns whether it was running."""
    pid = master_pid(node)
    if pid is None:
        return False
    os.kill(pid, signal.SIGQUIT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and master_pid(node) is not None:
        time.sleep(0.05)
    if master_pid(node) is not None:
        kill_node(node)
    return True


def kill_node(node: Node) -> bool:
    """SIGKILL the node's master and workers at once (nginx puts them in one process group): a dead point of
    presence, for the game day's ``edge_down``."""
    pid = master_pid(node)
    if pid is None:
        return False
    try:
        group = os.getpgid(pid)
        if group == os.getpgrp():  # not daemonized into its own group: never signal our own
            os.kill(pid, signal.SIGKILL)
        else:
            os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and master_pid(node) is not None:
        time.sleep(0.02)
    node.pid_file.unlink(missing_ok=True)
    return True


def start_all(layout: EdgeLayout) -> dict[str, int]:
    return {node.name: start_node(node) for node in layout.nodes}


def stop_all(layout: EdgeLayout) -> dict[str, bool]:
    return {node.name: stop_node(node) for node in reversed(layout.nodes)}
