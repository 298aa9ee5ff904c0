"""``shopfloor webhooks ...``: subscriber endpoints for outbound events, their delivery log and redelivery."""

from __future__ import annotations

import typer

from .output import console, fail, open_store, print_json

webhooks_app = typer.Typer(help="Outbound webhook subscriptions (Standard Webhooks signatures).",
                           no_args_is_help=True)


def _subscriptions():
    from ..bootstrap import build_integrations

    c = open_store()
    return c, build_integrations(c)["webhooks.subscriptions"]


def _run(action):
    from ..domain.errors import DomainError

    c, subs = _subscriptions()
    try:
        return action(subs)
    except DomainError as exc:
        fail(exc.message)
    finally:
        c.close()


@webhooks_app.command("add")
def add(
    url: str = typer.Argument(..., help="Where to POST events (http or https)."),
    event: list[str] = typer.Option(..., "--event", "-e", help="An event type to subscribe to (repeatable): "
                                    "order.placed, order.paid, order.cancelled, order.shipped, stock.low, "
                                    "promise.degraded, tower.alert."),
    description: str = typer.Option(None, "--description", help="A label for people."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Subscribe URL to events; prints its signing secret once.

    The endpoint's whsec_ signing secret is shown only now.
    """
    ep = _run(lambda s: s.create(url, event, description))
    if json_out:
        print_json(ep)
        return
    console.print(f"[green]endpoint {ep['id']}[/] -> {ep['url']} ({', '.join(ep['events'])})", soft_wrap=True)
    console.print(f"signing secret (shown once): {ep['secret']}", soft_wrap=True)


@webhooks_app.command("list")
def list_(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every subscriber endpoint with its status."""
    eps = _run(lambda s: s.list())
    if json_out:
        print_json(eps)
        return
    from rich.table import Table

    from rich import box

    # The id is never cut or wrapped, so it can be copied whole for `disable`, `deliveries` ...; the URL folds and
    # the events go one per line. When the endpoint is failing is said below the table (it is rare and long).
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    t.add_column("id", no_wrap=True, overflow="fold", min_width=max([len(ep["id"]) for ep in eps] or [2]))
    t.add_column("status", no_wrap=True)
    t.add_column("events", overflow="fold")
    t.add_column("url", overflow="fold")
    for ep in eps:
        t.add_row(ep["id"], ep["status"], "\n".join(ep["events"]), ep["url"])
    console.print(t)
    for ep in eps:
        if ep["failing_since"]:
            console.print(f"{ep['id']} failing since {ep['failing_since']}", highlight=False)


@webhooks_app.command("disable")
def disable(endpoint_id: str, json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Stop delivering to an endpoint.

    Pending deliveries wait until it is enabled again.
    """
    ep = _run(lambda s: s.set_status(endpoint_id, active=False))
    print_json(ep) if json_out else console.print(f"endpoint {endpoint_id} disabled")


@webhooks_app.command("enable")
def enable(endpoint_id: str, json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Deliver to an endpoint again.

    Also after it was disabled for failing or answering 410.
    """
    ep = _run(lambda s: s.set_status(endpoint_id, active=True))
    print_json(ep) if json_out else console.print(f"endpoint {endpoint_id} enabled")


@webhooks_app.command("rotate-secret")
def rotate_secret(endpoint_id: str, json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Give an endpoint a new signing secret.

    Deliveries are signed with the new and the previous one until the next rotation.
    """
    ep = _run(lambda s: s.rotate_secret(endpoint_id))
    if json_out:
        print_json(ep)
        return
    console.print(f"new signing secret (shown once): {ep['secret']}", soft_wrap=True)


@webhooks_app.command("deliveries")
def deliveries(
    endpoint_id: str,
    status: str = typer.Option(None, "--status", help="pending, succeeded or failed."),
    limit: int = typer.Option(50, "--limit", min=1, max=500),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The delivery log of an endpoint, newest first.

    Each delivery with its attempt count and last answer; --json adds every attempt.
    """
    if status not in (None, "pending", "succeeded", "failed"):
        fail("--status: choose pending, succeeded or failed")
    rows = _run(lambda s: s.deliveries(endpoint_id, status=status, limit=limit))
    if json_out:
        print_json(rows)
        return
    # One block per delivery, its id first and whole (for `redeliver`), the details on an indented line: a table
    # of seven columns cannot show a 35-character id at 80 columns without cutting it or the others.
    for d in rows:
        console.print(f"{d['id']}  {d['status']}  {d['event_type']}", highlight=False)
        details = f"created {d['created_at']}, {d['attempts']} attempt(s)"
        if d["last_status_code"]:
            details += f", last answer HTTP {d['last_status_code']}"
        if d["last_error"]:
            details += f", last error: {d['last_error'][:200]}"
        console.print("    " + details, highlight=False, markup=False)
    if not rows:
        console.print("no deliveries")


@webhooks_app.command("redeliver")
def redeliver(endpoint_id: str, delivery_id: str,
              json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Send a delivery again now, with the same webhook-id.

    The worker sends it.
    """
    d = _run(lambda s: s.redeliver(endpoint_id, delivery_id))
    print_json(d) if json_out else console.print(f"delivery {delivery_id} queued again")


def register(app: typer.Typer) -> None:
    app.add_typer(webhooks_app, name="webhooks")
