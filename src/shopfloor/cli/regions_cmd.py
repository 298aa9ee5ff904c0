"""``shopfloor regions``: two regions on one machine, active/passive (region A: app, worker, PostgreSQL primary;
region B: app, synchronous standby), PostgreSQL managed by Patroni with etcd."""

from __future__ import annotations

import typer

from .output import console, err_console, fail, print_json

app = typer.Typer(help="Two regions, active/passive, with automatic failover.\n\n"
                       "A runs the app, the worker and the PostgreSQL primary, B the app and a synchronous standby "
                       "(Patroni + etcd; tools/install-regions.sh installs them). Files under SHOPFLOOR_REGIONS_DIR "
                       "(default var/regions).",
                  no_args_is_help=True)


def _layout(asynchronous: bool = False):
    from ..config import Settings
    from ..regions import RegionsLayout

    try:
        settings = Settings()
        if asynchronous:
            settings = settings.model_copy(update={"regions_synchronous": False})
        return RegionsLayout.from_settings(settings)
    except ValueError as exc:
        fail(str(exc))


def _print_status(out: dict) -> None:
    console.print(f"etcd      {'up' if out['etcd']['healthy'] else 'DOWN'}  {out['etcd']['url']}")
    for name, r in out["regions"].items():
        role = r["role"] or "-"
        fenced = "  FENCED" if r["fenced"] else ""
        console.print(f"region {name}  postgres {role:8} ({r['postgres']})  app {'up' if r['app_healthy'] else 'down':4}"
                      f" {r['app']}  worker {'pid ' + str(r['worker']) if r['worker'] else '-'}{fenced}")
    console.print(f"primary: {out['primary'] or 'none'}   replication: "
                  f"{'synchronous' if out['synchronous'] else 'asynchronous'}")


def _run(label: str, action):
    """Run a long regions action under a spinner that shows its progress; a missing tool or a failed step exits
    with its message instead of a traceback."""
    try:
        with err_console.status(label) as spinner:
            return action(lambda msg: spinner.update(msg))
    except (FileNotFoundError, RuntimeError) as exc:
        fail(str(exc))


def _require_running(layout, doing: str) -> None:
    """Exit with a clean error unless etcd and region B's Patroni answer: without them there is nothing to fail
    over to (region A may be down: that is what a failover is for)."""
    from ..regions import status

    state = status(layout)
    etcd_up = state["etcd"]["healthy"]
    alive = {name: bool(r["role"]) or r["app_healthy"] for name, r in state["regions"].items()}
    if not etcd_up and not any(alive.values()):
        fail(f"regions: not running (etcd at {layout.etcd_url} and both regions do not answer; files under "
             f"{layout.root}); start them with `shopfloor regions up`")
    missing = ([f"etcd at {layout.etcd_url}"] if not etcd_up else []) + (
        [f"region B's Patroni at {layout.b.rest_url}"] if not state["regions"]["B"]["role"] else [])
    if missing:
        fail(f"regions: {' and '.join(missing)} {'does' if len(missing) == 1 else 'do'} not answer, so {doing} "
             "cannot promote region B; `shopfloor regions status` shows what runs, `shopfloor regions up` starts "
             "the regions")


def _print_result(out: dict | None, as_json: bool, summary) -> None:
    if as_json:
        print_json(out)
    else:
        _print_status(out)
        console.print(summary(out))


@app.command("up")
def up_cmd(as_json: bool = typer.Option(False, "--json", help="Print pids, timings and status as JSON."),
           asynchronous: bool = typer.Option(False, "--async", help="Asynchronous replication (same as "
                                             "SHOPFLOOR_REGIONS_SYNCHRONOUS=false): commits in A do not wait for "
                                             "B, so a failover may lose the last acknowledged orders (see "
                                             "docs/benchmarks/regions.md for the measured window).")) -> None:
    """Start etcd and both regions; wait until both apps answer.

    Region A: Patroni primary, app, worker. Region B: Patroni standby cloned from A, app. Waits until B is the
    synchronous standby and both apps answer. Idempotent.
    """
    from ..regions import up

    layout = _layout(asynchronous)
    out = _run("starting regions", lambda report: up(layout, report=report))
    _print_result(out, as_json, lambda o: f"up in {o['timings']['total_s']:.1f} s")


@app.command("status")
def status_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """Each region's role, app, worker and fence mark; the primary.

    The role is PostgreSQL's as Patroni reports it; the app is up when its health check answers.
    """
    from ..regions import status

    out = status(_layout())
    if as_json:
        print_json(out)
    else:
        _print_status(out)


@app.command("failover")
def failover_cmd(
    timeout: float = typer.Option(90.0, min=1, max=600, help="Seconds to wait for B to become primary."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Fence region A and make region B the primary.

    Stops A's app, worker, Patroni and PostgreSQL and marks it FENCED so `up` will not restart it; Patroni promotes
    B's synchronous standby, then B's worker starts. The regions must be running (`shopfloor regions up`).
    """
    from ..regions import failover

    layout = _layout()
    _require_running(layout, "a failover")
    out = _run("failing over to region B", lambda report: failover(layout, timeout=timeout, report=report))
    _print_result(out, as_json, lambda o: f"region B primary {o['promoted_s']:.1f} s after the failover began")


@app.command("watch")
def watch_cmd(
    grace: float = typer.Option(3.0, min=0.5, max=300, help="Seconds region A must stay silent (neither its "
                                                             "Patroni nor its app answering) before failing over."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Watch region A and fail over to B once it falls silent.

    Automatic failover, in the foreground: once region A has been silent for --grace seconds, run `failover`
    (fence A, Patroni promotes B when A's leader key expires, B's worker starts), then exit.
    """
    import threading

    from ..regions import watch

    layout = _layout()
    if layout.a.fence_file.exists():
        fail("region A is already fenced: nothing to watch")
    _require_running(layout, "the watcher")
    stop = threading.Event()
    try:
        out = _run("watching region A", lambda report: watch(layout, stop.is_set, grace_s=grace, report=report))
    except KeyboardInterrupt:
        raise typer.Exit(130)
    if out is None:
        fail("region A is already fenced: nothing to watch")
    _print_result(out, as_json, lambda o: f"region A silent for {o['detected_s']:.1f} s; region B primary "
                                          f"{o['promoted_s']:.1f} s after the failover began")


@app.command("down")
def down_cmd(
    purge: bool = typer.Option(False, "--purge", help="Also delete both regions' data and the fence mark."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Stop both regions and etcd."""
    from ..regions import down

    out = down(_layout(), purge=purge)
    if as_json:
        print_json(out)
    else:
        for name, was in out.items():
            console.print(f"{name:10} {'stopped' if was else 'was not running'}")


def register(root: typer.Typer) -> None:
    """Attach ``shopfloor regions`` to the root app."""
    root.add_typer(app, name="regions")
