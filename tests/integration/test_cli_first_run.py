"""What a newcomer meets first on the command line: one-line errors that name the cause, no stray files, a version,
and help that reads right."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from shopfloor import __version__
from shopfloor.cli.main import app
from shopfloor.runtime import child_env


def _said(result) -> str:
    return " ".join(result.output.split())


def shopfloor(args: list[str], db_url: str, cwd, timeout: float = 120) -> subprocess.CompletedProcess:
    """The real command in its own process, so a traceback would show on stderr as a user would see it."""
    return subprocess.run([sys.executable, "-m", "shopfloor", *args], cwd=cwd, env=child_env(db_url),
                          capture_output=True, text=True, timeout=timeout)


def test_the_worker_on_an_unreachable_database_says_so_in_one_line(tmp_path):
    out = shopfloor(["worker"], f"sqlite:///{tmp_path}/no/such/folder/shop.db", tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0, out.stderr  # one line, not a 90-line traceback
    assert "Traceback" not in out.stderr
    assert f"cannot open {tmp_path}/no/such/folder/shop.db" in out.stderr


@pytest.mark.parametrize("args", [["worker"], ["serve"], ["db", "upgrade"], ["keys", "create", "--scope", "admin"]],
                         ids=lambda a: " ".join(a[:2]))
def test_an_unsupported_database_is_named_as_such(tmp_path, monkeypatch, args):
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", "mysql://root@localhost/shop")
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2
    assert "SHOPFLOOR_DATABASE_URL: unsupported database 'mysql'" in _said(r)
    assert "postgresql://" in _said(r)
    assert r.exception is None or isinstance(r.exception, SystemExit)


def test_keys_create_never_makes_a_new_store_in_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("SHOPFLOOR_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["keys", "create", "--scope", "admin"])
    assert r.exit_code == 2
    assert f"no store at {tmp_path / 'shopfloor.db'}" in _said(r) and "shopfloor db upgrade" in _said(r)
    assert list(tmp_path.iterdir()) == []


def test_keys_create_says_which_store_got_the_key(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", url)
    assert CliRunner().invoke(app, ["db", "upgrade"]).exit_code == 0
    out = shopfloor(["keys", "create", "--scope", "admin"], url, tmp_path)
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.split()) == 1  # stdout is the key alone, for $(shopfloor keys create ...)
    assert f"in {tmp_path / 'shop.db'}" in " ".join(out.stderr.split())


def test_the_demo_on_a_busy_port_names_the_port_and_keeps_the_running_demos_store(tmp_path):
    workdir = tmp_path / "var" / "demo"
    workdir.mkdir(parents=True)
    (workdir / "shopfloor.db").write_text("the running demo's store")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = shopfloor(["demo", "--once", "--port", str(port), "--workdir", str(workdir)],
                        f"sqlite:///{tmp_path / 'unused.db'}", tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr, out.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in out.stderr and "--port" in out.stderr
    assert (workdir / "shopfloor.db").read_text() == "the running demo's store"


def test_version_prints_the_package_version():
    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.stdout.strip() == f"shopfloor {__version__}"


def _commands(group, path: list[str]):
    for name, command in group.commands.items():
        yield [*path, name]
        if getattr(command, "commands", None):  # a group of subcommands
            yield from _commands(command, [*path, name])


def test_no_help_page_shows_a_type_for_a_flag():
    root = typer.main.get_command(app)
    pages = [[], *(_commands(root, []))]
    assert len(pages) > 20
    for path in pages:
        r = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
        assert r.exit_code == 0, (path, r.output)
        assert "<bool>" not in r.output, path
    serve = CliRunner().invoke(app, ["serve", "--help"], terminal_width=200).output
    assert "<int" in serve  # options that take a value still say what they take


def test_a_new_sqlite_store_its_wal_and_the_gateway_file_are_readable_by_their_owner_only(tmp_path, monkeypatch):
    """The store holds webhook signing secrets and channel client secrets; SQLite would create it with the umask's
    mode (644), and its -wal and -shm files after it."""
    import os

    from sqlalchemy import text

    from shopfloor.bootstrap import build_container
    from shopfloor.config import Settings

    url = f"sqlite:///{tmp_path / 'shop.db'}"
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", url)
    old_umask = os.umask(0o022)
    try:
        assert CliRunner().invoke(app, ["db", "upgrade"]).exit_code == 0
        container = build_container(Settings(database_url=url))
        try:
            with container.engine.connect() as conn:  # an open connection keeps the -wal and -shm files
                conn.execute(text("SELECT count(*) FROM api_keys")).scalar()
                files = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
        finally:
            container.close()
    finally:
        os.umask(old_umask)
    assert {"shop.db", "shop.db-wal", "shop.db-shm", "shop.db-gateway.db"} <= set(files), files
    assert set(files.values()) == {0o600}, files


def test_an_existing_sqlite_store_keeps_its_mode(tmp_path):
    from shopfloor.store.migrate import upgrade_database

    path = tmp_path / "shared.db"
    path.touch(mode=0o640)
    path.chmod(0o640)  # an operator's choice (a group that backs it up, say): not ours to change
    upgrade_database(f"sqlite:///{path}")
    assert path.stat().st_mode & 0o777 == 0o640
