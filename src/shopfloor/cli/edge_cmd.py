"""``shopfloor edge``: the nginx edge cache (two edge nodes -> one shield -> the origin) as project commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import typer

from .output import console, err_console, fail, print_json

app = typer.Typer(help="The nginx edge cache: edge nodes, a shield, the origin.\n\n"
                       "Edge nodes (points of presence) sit behind one shield tier that talks to the origin. Configs "
                       "come from src/shopfloor/edge/nginx.conf.template and SHOPFLOOR_EDGE_*.",
                  no_args_is_help=True)


def _settings():
    from ..config import Settings

    return Settings()


def regions_origin(settings):
    """``settings`` with the edge's origin set to region A's app and region B's app as its backup."""
    from ..regions import RegionsLayout

    regions = RegionsLayout.from_settings(settings)
    return settings.model_copy(update={"edge_origin_url": regions.a.app_url,
                                       "edge_origin_backup_urls": [regions.b.app_url]})


REGIONS_HELP = ("Origin: region A's app, with region B's app as its backup (`shopfloor regions`), so the edge "
                "follows a failover by itself.")


def _layout(settings=None, regions: bool = False):
    from ..edge import EdgeLayout

    settings = settings or _settings()
    if regions:
        settings = regions_origin(settings)
    try:
        return EdgeLayout.from_settings(settings)
    except ValueError as exc:
        fail(str(exc))


def _purger_pid_file(layout) -> Path:
    return layout.root / "purger.pid"


def _purger_pid(layout) -> int | None:
    try:
        pid = int(_purger_pid_file(layout).read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


@app.command("config")
def config_cmd(as_json: bool = typer.Option(False, "--json", help="Print the written paths as JSON."),
               regions: bool = typer.Option(False, "--regions", help=REGIONS_HELP)) -> None:
    """Write each node's nginx.conf under SHOPFLOOR_EDGE_DIR.

    Also its cache, log and temp folders (SHOPFLOOR_EDGE_DIR defaults to var/edge). Safe to rerun; running nodes
    pick the new config up on `edge up`.
    """
    from ..edge import write_configs

    layout = _layout(regions=regions)
    paths = write_configs(layout)
    out = {"nodes": {n.name: {"role": n.role, "port": n.port, "config": str(n.conf)} for n in layout.nodes},
           "origin": layout.origin_url, "origin_backups": list(layout.origin_backup_urls)}
    if as_json:
        print_json(out)
    else:
        for node in layout.nodes:
            console.print(f"{node.name:8} {node.role:6} 127.0.0.1:{node.port}  {node.conf}")
        backups = f" (backup {', '.join(layout.origin_backup_urls)})" if layout.origin_backup_urls else ""
        console.print(f"origin: {layout.origin_url}{backups}  ({len(paths)} configs written)")


@app.command("up")
def up_cmd(
    purger: bool = typer.Option(True, help="Also start the purger (refreshes pages on sell-out and price change)."),
    as_json: bool = typer.Option(False, "--json", help="Print node pids as JSON."),
    regions: bool = typer.Option(False, "--regions", help=REGIONS_HELP),
) -> None:
    """Start the shield, the edge nodes and the purger.

    Writes the configs first, then runs nginx as the current user, each node with its own prefix (no system
    service). Needs nginx: tools/install-nginx.sh installs it.
    """
    from ..edge import nginx_binary, start_all, write_configs

    layout = _layout(regions=regions)
    try:
        nginx_binary()
        write_configs(layout)
        pids = start_all(layout)
    except (FileNotFoundError, RuntimeError) as exc:
        fail(str(exc))
    purger_pid = _purger_pid(layout)
    if purger and purger_pid is None:
        log = open(layout.root / "purger.log", "ab")
        env = os.environ.copy()
        if regions:  # the purger reads stock and prices from region A's database (a failover needs a restart)
            from ..regions import RegionsLayout

            env["SHOPFLOOR_DATABASE_URL"] = RegionsLayout.from_settings(_settings()).a.database_url
        proc = subprocess.Popen([sys.executable, "-m", "shopfloor", "edge", "purger"], stdout=log, stderr=log,
                                start_new_session=True, env=env)
        _purger_pid_file(layout).write_text(f"{proc.pid}\n")
        purger_pid = proc.pid
    out = {"nodes": pids, "purger": purger_pid, "edges": [n.url for n in layout.edges], "shield": layout.shield.url}
    if as_json:
        print_json(out)
    else:
        for name, pid in pids.items():
            console.print(f"{name:8} up (pid {pid})")
        console.print(f"purger   {'up (pid ' + str(purger_pid) + ')' if purger_pid else 'not started'}")
        console.print(f"shoppers: {', '.join(n.url for n in layout.edges)}")


@app.command("down")
def down_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """Stop the purger and every nginx node, gracefully.

    Requests in flight finish first.
    """
    from ..edge import stop_all

    layout = _layout()
    pid = _purger_pid(layout)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        _purger_pid_file(layout).unlink(missing_ok=True)
    stopped = stop_all(layout)
    out = {"nodes": stopped, "purger": pid is not None}
    if as_json:
        print_json(out)
    else:
        for name, was in stopped.items():
            console.print(f"{name:8} {'stopped' if was else 'was not running'}")


@app.command("status")
def status_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """Each node: running, answering, hit ratio and stale serves.

    The product-page hit ratio and stale serves come from the node's access log.
    """
    from ..edge import cache_stats, is_healthy, master_pid, read_log

    layout = _layout()
    nodes = {}
    for node in layout.nodes:
        stats = cache_stats(read_log(node.access_log))
        nodes[node.name] = {"role": node.role, "port": node.port, "pid": master_pid(node),
                            "healthy": is_healthy(node), **stats.to_dict()}
    out = {"nodes": nodes, "purger": _purger_pid(layout)}
    if as_json:
        print_json(out)
        return
    for name, n in nodes.items():
        ratio = "-" if n["hit_ratio"] is None else f"{n['hit_ratio']:.3f}"
        console.print(f"{name:8} {'up' if n['healthy'] else 'DOWN':4} requests {n['requests']:>8,}  hit ratio {ratio}"
                      f"  stale {n['stale']:,}")
    console.print(f"purger   {'up (pid ' + str(out['purger']) + ')' if out['purger'] else 'not running'}")


@app.command("warm")
def warm_cmd(
    urls_file: Path = typer.Option(None, help="A warm list to use instead of planning one: the JSON of "
                                              "`shopfloor capacity plan --json` (its cache_warm.urls) or a list of "
                                              "paths."),
    destination: list[str] = typer.Option(None, help="COUNTRY:POSTAL_CODE to warm each product for (repeatable; "
                                                     "default SHOPFLOOR_EDGE_WARM_DESTINATIONS)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Request the cache-warm list through every edge node.

    The capacity plan's warm list (or --urls-file), for each destination, so the hottest product pages are cached
    before the traffic comes. The edge must be running (`shopfloor edge up`).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from ..bootstrap import EdgeCacheWarmer, build_container
    from ..edge import EdgeWarmer, is_healthy, parse_destinations, warm_paths

    settings = _settings()
    layout = _layout(settings)
    try:
        dests = parse_destinations(destination or settings.edge_warm_destinations)
    except ValueError as exc:
        fail(f"--destination: {exc}")
    silent = [node for node in layout.edges if not is_healthy(node)]
    if len(silent) == len(layout.edges):
        fail(f"edge: the edge at {', '.join(n.url for n in silent)} did not answer (GET /edge/healthz); start it "
             "with `shopfloor edge up`")
    for node in silent:
        err_console.print(f"[yellow]edge:[/] node {node.name} at {node.url} did not answer; its requests will fail "
                          "(`shopfloor edge status` shows the nodes)", soft_wrap=True, highlight=False)
    if urls_file is not None:
        try:
            data = json.loads(urls_file.read_text())
        except (OSError, ValueError) as exc:
            fail(f"--urls-file: {urls_file}: {exc}")
        entries = data.get("cache_warm", {}).get("urls", []) if isinstance(data, dict) else \
            [{"url": u} if isinstance(u, str) else u for u in data]
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            fail("--urls-file: expected `shopfloor capacity plan --json` output or a JSON list of paths")
    else:
        container = build_container(settings)
        try:
            entries = EdgeCacheWarmer(container).warm_list()
        finally:
            container.close()
    paths = warm_paths(entries, dests)
    with Progress(TextColumn("warming"), BarColumn(), MofNCompleteColumn(), console=err_console,
                  transient=True) as bar:
        task = bar.add_task("warm", total=len(paths) * len(layout.edges))
        results = EdgeWarmer(layout).warm(paths, progress=lambda: bar.advance(task))
    ok = sum(1 for v in results.values() if isinstance(v, int) and v < 400)
    out = {"paths": len(paths), "requests": len(results), "ok": ok,
           "failed": {k: v for k, v in results.items() if not (isinstance(v, int) and v < 400)}}
    if as_json:
        print_json(out)
    else:
        console.print(f"warmed {ok} of {len(results)} requests ({len(paths)} paths x {len(layout.edges)} edge nodes)")
    if results and ok == 0:
        from collections import Counter

        answer, times = Counter(str(v) for v in results.values()).most_common(1)[0]
        answer = answer if answer.startswith("error") else f"HTTP {answer}"
        hint = (f"; is the origin at {layout.origin_url} running (`shopfloor serve`)?"
                if answer in ("HTTP 502", "HTTP 503", "HTTP 504") else "")
        err_console.print(f"[bold red]error:[/] no warm request succeeded ({times} of {len(results)} got "
                          f"{answer}){hint}", soft_wrap=True, highlight=False)
        raise typer.Exit(1)


@app.command("purger")
def purger_cmd(
    once: bool = typer.Option(False, help="Take one snapshot and exit (the first one only records)."),
    interval: float = typer.Option(None, min=0.05, max=60, help="Seconds between checks (default "
                                                                "SHOPFLOOR_EDGE_PURGE_INTERVAL_S)."),
) -> None:
    """Run the purger in the foreground.

    `edge up` starts it in the background. Every interval, compare stock bands and prices with what it saw last
    and refresh the changed SKUs' product pages on every node.
    """
    import threading

    from ..bootstrap import build_container, build_edge_purger
    from ..runtime import interrupt_on_termination

    settings = _settings()
    container = build_container(settings)
    try:
        watcher = build_edge_purger(container, on_purge=lambda info: print(json.dumps({"at": time.time(), **info}),
                                                                           flush=True))
    except FileNotFoundError as exc:
        container.close()
        fail(str(exc))
    restore = interrupt_on_termination()
    try:
        watcher.tick()  # the first snapshot: what later ones are compared with
        print(json.dumps({"at": time.time(), "ready": True, "skus": len(watcher.seen or {})}), flush=True)
        if once:
            return
        watcher.run(interval or settings.edge_purge_interval_s, threading.Event())
    except KeyboardInterrupt:
        pass
    finally:
        restore()
        container.close()


def register(root: typer.Typer) -> None:
    """Attach ``shopfloor edge`` to the root app."""
    root.add_typer(app, name="edge")
