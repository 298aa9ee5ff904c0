"""The processes of two regions on one machine and the moves between them.

Region A: ``shopfloor serve`` + ``shopfloor worker`` + PostgreSQL primary. Region B: ``shopfloor serve`` + a
streaming standby (synchronous by default: a commit on A returns only once B has it). PostgreSQL in both regions
runs under Patroni, which holds the leader key in etcd: only the holder of that key runs a writable primary, so a
region that lost the key can never take writes again. Every process runs detached with a pid file and a log under
``RegionsLayout.root`` (default ``var/regions``)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

INSTALL_HINT = "etcd or patroni is missing: run tools/install-regions.sh (Debian etcd-server, PyPI patroni[etcd3])"
PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin")
DATABASE = "shopfloor"


@dataclass(frozen=True)
class Region:
    name: str  # "A" or "B"
    root: Path
    pg_port: int
    rest_port: int
    app_port: int
    runs_worker: bool

    @property
    def data_dir(self) -> Path:
        return self.root / "pgdata"

    @property
    def patroni_config(self) -> Path:
        return self.root / "patroni.yml"

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/{DATABASE}"

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def fence_file(self) -> Path:
        return self.root / "FENCED"


@dataclass(frozen=True)
class RegionsLayout:
    root: Path
    etcd_port: int
    etcd_peer_port: int
    a: Region
    b: Region
    synchronous: bool = True
    ttl_s: int = 20
    loop_wait_s: int = 1
    scope: str = "shopfloor"

    @classmethod
    def from_settings(cls, settings) -> RegionsLayout:
        root = Path(settings.regions_dir).resolve()
        base = int(settings.regions_port_base)
        return cls(
            root=root, etcd_port=base, etcd_peer_port=base + 1,
            a=Region("A", root / "A", base + 10, base + 20, base + 30, runs_worker=True),
            b=Region("B", root / "B", base + 11, base + 21, base + 31, runs_worker=False),
            synchronous=bool(settings.regions_synchronous), ttl_s=int(settings.regions_ttl_s),
        )

    @property
    def regions(self) -> tuple[Region, Region]:
        return (self.a, self.b)

    def region(self, name: str) -> Region:
        for r in self.regions:
            if r.name == name.upper():
                return r
        raise ValueError(f"region: no region {name!r} (A or B)")

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_port}"


# --- binaries and users ---------------------------------------------------------------------------------------------

def _binary(name: str) -> str:
    found = shutil.which(name) or next((str(Path(d) / name) for d in (Path(sys.executable).parent, "/usr/bin")
                                        if (Path(d) / name).exists()), None)
    if found is None:
        raise FileNotFoundError(INSTALL_HINT)
    return found


def pg_bin_dir() -> str:
    for d in PG_BIN_DIRS:
        if (Path(d) / "postgres").exists():
            return d
    raise FileNotFoundError("PostgreSQL server binaries not found in " + ", ".join(PG_BIN_DIRS))


def _db_user() -> str | None:
    """PostgreSQL refuses to run as root: as root, Patroni (and the PostgreSQL it starts) run as ``postgres``."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise RuntimeError("running as root needs a `postgres` system user for the database processes") from exc
    return "postgres"


def _patroni_command() -> list[str]:
    """Patroni, run by an interpreter the database user may execute. Patroni starts PostgreSQL through a
    ``multiprocessing`` spawn of ``sys.executable``; when this process runs as root from an interpreter under a
    private home (e.g. pyenv in /root), ``postgres`` cannot run it, so the system Python of the same version is used
    with this environment's site-packages on PYTHONPATH."""
    try:
        import patroni  # noqa: F401
    except ImportError as exc:
        raise FileNotFoundError(INSTALL_HINT) from exc
    python = sys.executable
    if _db_user() is not None and _root_only(sys.executable):
        system = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
        if not Path(system).exists():
            raise RuntimeError(f"{sys.executable} cannot be run by the postgres user and {system} is missing")
        python = system
    return [python, "-m", "patroni"]


def _root_only(path: str) -> bool:
    """Whether some folder on the way to ``path`` (links resolved) is closed to other users."""
    real = Path(os.path.realpath(path))
    return any(not (p.stat().st_mode & 0o001) for p in real.parents if p != Path("/"))


def _patroni_env(user: str | None) -> dict:
    import patroni

    if user is None:
        return {}
    site = str(Path(patroni.__file__).resolve().parent.parent)
    return {"PYTHONPATH": site, "HOME": "/tmp"}


def _chown_tree(path: Path, user: str | None) -> None:
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for p in [path, *path.rglob("*")]:
        os.chown(p, entry.pw_uid, entry.pw_gid, follow_symlinks=False)


# --- detached processes with pid files ------------------------------------------------------------------------------

def _pid_file(layout: RegionsLayout, name: str) -> Path:
    return layout.root / f"{name}.pid"


def pid_of(layout: RegionsLayout, name: str) -> int | None:
    try:
        pid = int(_pid_file(layout, name).read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    try:  # a zombie child of this process counts as gone
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            os.waitpid(pid, os.WNOHANG)
            return None
    except (OSError, IndexError, ChildProcessError):
        pass
    return pid


def _spawn(layout: RegionsLayout, name: str, argv: list[str], env: dict | None = None, user: str | None = None) -> int:
    running = pid_of(layout, name)
    if running is not None:
        return running
    if user is not None:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", *argv]
    log = open(layout.root / f"{name}.log", "ab")
    proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, **(env or {})}, cwd=str(layout.root))
    log.close()
    _pid_file(layout, name).write_text(f"{proc.pid}\n")
    return proc.pid


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(os.getpgid(pid), sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _stop(layout: RegionsLayout, name: str, grace_s: float = 15.0, sig: int = signal.SIGTERM) -> bool:
    """Signal a process group, wait up to ``grace_s``, then SIGKILL it. Returns whether it was running."""
    pid = pid_of(layout, name)
    if pid is None:
        _pid_file(layout, name).unlink(missing_ok=True)
        return False
    _signal_group(pid, sig)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and pid_of(layout, name) is not None:
        time.sleep(0.05)
    if pid_of(layout, name) is not None:
        _signal_group(pid, signal.SIGKILL)
        while pid_of(layout, name) is not None and time.monotonic() < deadline + 5:
            time.sleep(0.05)
    _pid_file(layout, name).unlink(missing_ok=True)
    return True


def postmaster_pid(region: Region) -> int | None:
    try:
        pid = int((region.data_dir / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError, IndexError):
        return None


# --- configs ---------------------------------------------------------------------------------------------------------

def patroni_config(layout: RegionsLayout, region: Region) -> dict:
    return {
        "scope": layout.scope,
        "name": region.name,
        "restapi": {"listen": f"127.0.0.1:{region.rest_port}", "connect_address": f"127.0.0.1:{region.rest_port}"},
        "etcd3": {"hosts": f"127.0.0.1:{layout.etcd_port}"},
        "bootstrap": {
            "dcs": {
                "ttl": layout.ttl_s, "loop_wait": layout.loop_wait_s, "retry_timeout": max(3, layout.ttl_s // 4),
                "maximum_lag_on_failover": 1_048_576,
                "synchronous_mode": layout.synchronous,
                "postgresql": {"use_pg_rewind": True, "use_slots": True,
                               "parameters": {"wal_level": "replica", "hot_standby": "on", "wal_log_hints": "on",
                                              "max_wal_senders": 5, "max_replication_slots": 5}},
            },
            "initdb": [{"encoding": "UTF8"}, {"auth-local": "trust"}, {"auth-host": "trust"}],
        },
        "postgresql": {
            "listen": f"127.0.0.1:{region.pg_port}",
            "connect_address": f"127.0.0.1:{region.pg_port}",
            "data_dir": str(region.data_dir),
            "bin_dir": pg_bin_dir(),
            "pgpass": str(region.root / "pgpass"),
            # the standby's clone asks for an immediate checkpoint: a spread one keeps `up` waiting ~90 s
            "basebackup": [{"checkpoint": "fast"}],
            "authentication": {"superuser": {"username": "postgres"}, "replication": {"username": "postgres"}},
            "pg_hba": ["local all all trust", "host all all 127.0.0.1/32 trust",
                       "host replication all 127.0.0.1/32 trust"],
            "parameters": {"unix_socket_directories": str(region.root), "shared_buffers": "64MB",
                           "max_connections": 100},
        },
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False, "nosync": False},
    }


def write_configs(layout: RegionsLayout) -> None:
    import yaml

    user = _db_user()
    if user is not None:
        layout.root.mkdir(parents=True, exist_ok=True)
        closed = next((p for p in [layout.root, *layout.root.parents] if not p.stat().st_mode & 0o001), None)
        if closed is not None:
            raise RuntimeError(f"regions_dir: {layout.root} is not reachable by the `{user}` user that runs "
                               f"PostgreSQL ({closed} is closed to other users); choose a folder under an open one")
    for region in layout.regions:
        region.root.mkdir(parents=True, exist_ok=True)
        region.patroni_config.write_text(yaml.safe_dump(patroni_config(layout, region), sort_keys=False))
        _chown_tree(region.root, user)


# --- probes -----------------------------------------------------------------------------------------------------------

def _get(url: str, timeout: float = 1.0) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=timeout)
    except httpx.HTTPError:
        return None


def patroni_state(region: Region) -> dict | None:
    r = _get(region.rest_url + "/patroni")
    if r is None:
        return None
    try:
        return r.json()
    except ValueError:
        return None


def is_primary(region: Region) -> bool:
    r = _get(region.rest_url + "/primary")
    return r is not None and r.status_code == 200


def is_sync_standby(region: Region) -> bool:
    r = _get(region.rest_url + "/synchronous")
    return r is not None and r.status_code == 200


def app_healthy(region: Region) -> bool:
    r = _get(region.app_url + "/healthz")
    return r is not None and r.status_code == 200


def etcd_healthy(layout: RegionsLayout) -> bool:
    r = _get(layout.etcd_url + "/health")
    return r is not None and r.status_code == 200


def _wait(what: str, check: Callable[[], bool], timeout: float, log: Path | None = None) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.1)
    tail = ""
    if log is not None and log.exists():
        tail = " | " + " / ".join(log.read_text(errors="replace").strip().splitlines()[-3:])[-400:]
    raise RuntimeError(f"{what}: not ready after {timeout:.0f} s (see {log}){tail}")


def wait_for_primary(layout: RegionsLayout, region: Region, timeout: float = 60.0) -> float:
    """Block until ``region``'s Patroni holds the leader key and runs a writable primary; seconds waited."""
    return _wait(f"region {region.name} primary", lambda: is_primary(region), timeout,
                 layout.root / f"patroni-{region.name}.log")


# --- the moves --------------------------------------------------------------------------------------------------------

def _create_database(region: Region) -> None:
    import psycopg

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{region.pg_port}/postgres", autocommit=True,
                         connect_timeout=5) as conn:
        if conn.execute("select 1 from pg_database where datname = %s", (DATABASE,)).fetchone() is None:
            conn.execute(f'create database "{DATABASE}"')


def _app_env(region: Region, extra: dict | None) -> dict:
    env = {"SHOPFLOOR_DATABASE_URL": region.database_url, "PYTHONUNBUFFERED": "1",
           "SHOPFLOOR_DATA_DIR": str(region.root / "app")}
    if region.name == "B":  # product reads in B come from its own copy, the standby while A is primary
        env["SHOPFLOOR_READ_DATABASE_URL"] = region.database_url
    return {**env, **(extra or {})}


def _start_app(layout: RegionsLayout, region: Region, env: dict | None) -> int:
    pid = _spawn(layout, f"app-{region.name}", [sys.executable, "-m", "shopfloor", "serve", "--port",
                                                 str(region.app_port)], env=_app_env(region, env))
    _wait(f"region {region.name} app", lambda: app_healthy(region), 90, layout.root / f"app-{region.name}.log")
    return pid


def _start_worker(layout: RegionsLayout, region: Region, env: dict | None) -> int:
    return _spawn(layout, f"worker-{region.name}", [sys.executable, "-m", "shopfloor", "worker"],
                  env=_app_env(region, env))


def up(layout: RegionsLayout, env: dict | None = None, report: Callable[[str], None] = lambda _: None) -> dict:
    """Start etcd, Patroni A (primary), Patroni B (synchronous standby, cloned from A), app + worker in A and the
    app in B. Idempotent; refuses while region A is fenced (after a failover, until ``down(purge=True)``)."""
    if layout.a.fence_file.exists():
        raise RuntimeError(f"region A is fenced since a failover ({layout.a.fence_file}); `shopfloor regions down "
                           "--purge` resets both regions")
    etcd, patroni = _binary("etcd"), _patroni_command()
    layout.root.mkdir(parents=True, exist_ok=True)
    write_configs(layout)
    user = _db_user()
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    _spawn(layout, "etcd", [etcd, "--name", "regions", "--data-dir", str(layout.root / "etcd"),
                            "--listen-client-urls", layout.etcd_url, "--advertise-client-urls", layout.etcd_url,
                            "--listen-peer-urls", f"http://127.0.0.1:{layout.etcd_peer_port}",
                            "--initial-advertise-peer-urls", f"http://127.0.0.1:{layout.etcd_peer_port}",
                            "--initial-cluster", f"regions=http://127.0.0.1:{layout.etcd_peer_port}"])
    _wait("etcd", lambda: etcd_healthy(layout), 30, layout.root / "etcd.log")
    report("etcd up")
    _spawn(layout, "patroni-A", [*patroni, str(layout.a.patroni_config)], env=_patroni_env(user), user=user)
    wait_for_primary(layout, layout.a, timeout=120)
    _create_database(layout.a)
    timings["primary_s"] = time.monotonic() - t0
    report("region A: PostgreSQL primary up")
    if not is_primary(layout.b):
        _spawn(layout, "patroni-B", [*patroni, str(layout.b.patroni_config)], env=_patroni_env(user), user=user)
    standby_check = (lambda: is_sync_standby(layout.b)) if layout.synchronous else (
        lambda: (_get(layout.b.rest_url + "/replica") or httpx.Response(503)).status_code == 200)
    if not is_primary(layout.b):
        _wait("region B standby", standby_check, 180, layout.root / "patroni-B.log")
    timings["standby_s"] = time.monotonic() - t0
    report("region B: " + ("synchronous" if layout.synchronous else "asynchronous") + " standby streaming")
    pids = {"app-A": _start_app(layout, layout.a, env)}
    pids["worker-A"] = _start_worker(layout, layout.a, env)
    report("region A: app and worker up")
    pids["app-B"] = _start_app(layout, layout.b, env)
    report("region B: app up (writes refused while its database is a standby)")
    timings["total_s"] = time.monotonic() - t0
    return {"pids": pids, "timings": timings, **status(layout)}


def status(layout: RegionsLayout) -> dict:
    out: dict = {"etcd": {"healthy": etcd_healthy(layout), "url": layout.etcd_url}, "regions": {}}
    for region in layout.regions:
        state = patroni_state(region) or {}
        out["regions"][region.name] = {
            "role": state.get("role") if state else None,
            "postgres": state.get("state") if state else ("stopped" if postmaster_pid(region) is None else "unknown"),
            "database_url": region.database_url,
            "app": region.app_url, "app_healthy": app_healthy(region),
            "worker": pid_of(layout, f"worker-{region.name}"),
            "fenced": region.fence_file.exists(),
        }
    out["primary"] = next((r.name for r in layout.regions if is_primary(r)), None)
    out["synchronous"] = layout.synchronous
    return out


def kill_region(layout: RegionsLayout, name: str) -> dict[str, bool]:
    """The region dies at once: SIGKILL its app, worker, Patroni and PostgreSQL (no clean shutdown, no handing over
    of the leader key: the standby takes over once the key expires, ``ttl_s``)."""
    region = layout.region(name)
    killed = {}
    postmaster = postmaster_pid(region)
    for proc in (f"app-{region.name}", f"worker-{region.name}", f"patroni-{region.name}"):
        killed[proc] = _stop(layout, proc, grace_s=0, sig=signal.SIGKILL)
    if postmaster is not None:
        _signal_group(postmaster, signal.SIGKILL)
        try:
            os.kill(postmaster, signal.SIGKILL)
        except ProcessLookupError:
            pass
    killed["postgres"] = postmaster is not None
    return killed


def _fence(layout: RegionsLayout, region: Region) -> dict:
    """Make sure nothing of ``region`` can take a write: app and worker stopped, Patroni stopped (a Patroni that
    stops cleanly hands the leader key back), PostgreSQL stopped, and a FENCED mark that `regions up` honours."""
    stopped = {proc: _stop(layout, proc, grace_s=10) for proc in (f"app-{region.name}", f"worker-{region.name}")}
    stopped[f"patroni-{region.name}"] = _stop(layout, f"patroni-{region.name}", grace_s=30)
    leftover = postmaster_pid(region)
    if leftover is not None:  # Patroni died without stopping it: no graceful path left
        _signal_group(leftover, signal.SIGKILL)
        try:
            os.kill(leftover, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while postmaster_pid(region) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    if postmaster_pid(region) is not None:
        raise RuntimeError(f"region {region.name}: PostgreSQL still runs; fencing failed")
    region.fence_file.write_text(json.dumps({"fenced_at": time.time()}) + "\n")
    return stopped


def failover(layout: RegionsLayout, env: dict | None = None, timeout: float = 90.0,
             report: Callable[[str], None] = lambda _: None) -> dict:
    """Fence region A, let Patroni promote B's synchronous standby, and start B's worker. Works whether A is alive
    (its Patroni stops cleanly and hands the key back at once) or already dead (B waits for the key to expire)."""
    t0 = time.monotonic()
    stopped = _fence(layout, layout.a)
    fenced_s = time.monotonic() - t0
    report("region A fenced (app, worker, Patroni and PostgreSQL stopped)")
    wait_for_primary(layout, layout.b, timeout=timeout)
    promoted_s = time.monotonic() - t0
    report("region B: primary")
    worker = _start_worker(layout, layout.b, env)
    if not app_healthy(layout.b):
        _start_app(layout, layout.b, env)
    return {"fenced": stopped, "fenced_s": round(fenced_s, 3), "promoted_s": round(promoted_s, 3),
            "worker-B": worker, **status(layout)}


def region_alive(layout: RegionsLayout, region: Region) -> bool:
    """Whether anything of ``region`` answers: its Patroni REST API or its app."""
    return patroni_state(region) is not None or app_healthy(region)


def watch(layout: RegionsLayout, stop: Callable[[], bool], env: dict | None = None, grace_s: float = 3.0,
          interval_s: float = 0.5, report: Callable[[str], None] = lambda _: None) -> dict | None:
    """Automatic failover: poll region A every ``interval_s``; once neither its Patroni nor its app has answered
    for ``grace_s``, run :func:`failover` (fence A, wait for Patroni to promote B, start B's worker) and return its
    result. Returns None when ``stop()`` turns true first or region A is already fenced."""
    down_since: float | None = None
    while not stop():
        if layout.a.fence_file.exists():
            return None
        if region_alive(layout, layout.a):
            down_since = None
        else:
            now = time.monotonic()
            down_since = now if down_since is None else down_since
            if now - down_since >= grace_s:
                report(f"region A silent for {grace_s:g} s: failing over to B")
                out = failover(layout, env=env, timeout=max(90.0, 3.0 * layout.ttl_s), report=report)
                out["detected_s"] = round(now - down_since, 3)
                return out
        time.sleep(interval_s)
    return None


def down(layout: RegionsLayout, purge: bool = False) -> dict[str, bool]:
    """Stop everything (apps and workers first, the standby before the primary, etcd last); ``purge`` also deletes
    the data under the layout's root, fence marks included."""
    stopped = {}
    for name in ("app-B", "app-A", "worker-B", "worker-A", "patroni-B", "patroni-A"):
        stopped[name] = _stop(layout, name, grace_s=30)
    for region in layout.regions:  # a PostgreSQL whose Patroni was killed keeps running: stop it too
        pid = postmaster_pid(region)
        if pid is not None:
            _signal_group(pid, signal.SIGQUIT)
            try:
                os.kill(pid, signal.SIGQUIT)
            except ProcessLookupError:
                pass
            stopped[f"postgres-{region.name}"] = True
    stopped["etcd"] = _stop(layout, "etcd", grace_s=10)
    if purge and layout.root.exists():
        shutil.rmtree(layout.root)
    return stopped
