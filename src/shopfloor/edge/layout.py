"""The edge topology (edge nodes -> one shield -> origin) and its nginx configs, written from the checked-in
template ``nginx.conf.template``."""

from __future__ import annotations

import os
import pwd
import grp
import secrets
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

TEMPLATE = "nginx.conf.template"
SHIELD = "shield"


@dataclass(frozen=True)
class Node:
    name: str
    role: str  # "edge" (a point of presence) or "shield"
    port: int
    prefix: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def conf(self) -> Path:
        return self.prefix / "nginx.conf"

    @property
    def pid_file(self) -> Path:
        return self.prefix / "nginx.pid"

    @property
    def access_log(self) -> Path:
        return self.prefix / "access.log"

    @property
    def cache_dir(self) -> Path:
        return self.prefix / "cache"


@dataclass(frozen=True)
class EdgeLayout:
    root: Path
    origin_url: str
    edges: tuple[Node, ...]
    shield: Node
    origin_timeout_s: float = 2.0
    rate_limit_rps: int = 200  # GET /v1/queue/{token} per client address at an edge node
    checkout_rate_per_min: int = 120  # POST /v1/checkouts per client address at an edge node
    limit_burst: int = 10
    max_cache_size: str = "1g"
    #: Origins used only while ``origin_url`` fails (region B behind region A): nginx ``backup`` servers.
    origin_backup_urls: tuple[str, ...] = ()

    @property
    def nodes(self) -> tuple[Node, ...]:
        """Every nginx instance, shield first (the order to start them in)."""
        return (self.shield, *self.edges)

    @property
    def token_file(self) -> Path:
        return self.root / "purge.token"

    @classmethod
    def from_settings(cls, settings) -> "EdgeLayout":
        root = Path(settings.edge_dir).resolve()
        names = [f"edge-{chr(ord('a') + i)}" for i in range(len(settings.edge_node_ports))]
        edges = tuple(Node(n, "edge", p, root / n) for n, p in zip(names, settings.edge_node_ports))
        ports = [*settings.edge_node_ports, settings.edge_shield_port]
        if len(set(ports)) != len(ports):
            raise ValueError(f"SHOPFLOOR_EDGE_NODE_PORTS / SHOPFLOOR_EDGE_SHIELD_PORT: ports must differ (got {ports})")
        for name, url in (("SHOPFLOOR_EDGE_ORIGIN_URL", settings.edge_origin_url),
                          *(("SHOPFLOOR_EDGE_ORIGIN_BACKUP_URLS", u) for u in settings.edge_origin_backup_urls)):
            parts = urlsplit(url)
            if parts.scheme != "http" or not parts.hostname or not parts.port:
                raise ValueError(f"{name}: an http://host:port URL of `shopfloor serve` (got {url!r})")
        if settings.edge_origin_url in settings.edge_origin_backup_urls:
            raise ValueError("SHOPFLOOR_EDGE_ORIGIN_BACKUP_URLS: must differ from SHOPFLOOR_EDGE_ORIGIN_URL")
        return cls(root, settings.edge_origin_url, edges, Node(SHIELD, "shield", settings.edge_shield_port,
                                                               root / SHIELD),
                   origin_timeout_s=settings.edge_origin_timeout_s, rate_limit_rps=settings.edge_rate_limit_rps,
                   checkout_rate_per_min=settings.edge_checkout_rate_per_min, limit_burst=settings.edge_limit_burst,
                   origin_backup_urls=tuple(settings.edge_origin_backup_urls))

    @property
    def origins(self) -> tuple[str, ...]:
        """The origin, then its backups."""
        return (self.origin_url, *self.origin_backup_urls)

    def purge_token(self, create: bool = False) -> str:
        """The shared secret of purge refreshes (kept in ``<edge_dir>/purge.token``, mode 600)."""
        if self.token_file.exists():
            return self.token_file.read_text().strip()
        if not create:
            raise FileNotFoundError(f"{self.token_file}: no edge config yet; run `shopfloor edge config`")
        self.root.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(24)
        fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
        return token


def _user_directive() -> str:
    if os.geteuid() != 0:
        return "# not started as root: nginx runs as the current user"
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    return f"user {user} {group};  # the current user (nginx is started by `shopfloor edge up`, not as a service)"


def _limit(node: Node, zone: str, burst: int) -> str:
    """The ``limit_req`` lines of a location: on an edge node only; the shield sees the edge nodes' address, so a
    per-address limit there would throttle every shopper behind a node at once."""
    if node.role != "edge":
        return "            # shield: no per-address limit (every request comes from an edge node)"
    return (f"            limit_req zone={zone} burst={burst} nodelay;\n"
            "            error_page 429 = @rate_limited;")


def render(layout: EdgeLayout, node: Node, token: str, template: str | None = None) -> str:
    """The nginx config of ``node``: an edge node proxies to the shield, the shield to the origin."""
    text = template if template is not None else resources.files(__package__).joinpath(TEMPLATE).read_text()
    if node.role == "edge":
        servers = [f"server 127.0.0.1:{layout.shield.port} max_fails=0;"]
        next_upstream = "off"
    elif not layout.origin_backup_urls:
        origin = urlsplit(layout.origin_url)
        servers = [f"server {origin.hostname}:{origin.port} max_fails=0;"]
        next_upstream = "off"
    else:
        # Region A first, region B as a backup: a refused connection or a timeout moves the request to the next
        # server (a POST only when nothing was sent: nginx never resends a non-idempotent request), and a failed
        # server is skipped for a few seconds, so after a failover the shield follows region B by itself.
        servers = []
        for i, url in enumerate(layout.origins):
            parts = urlsplit(url)
            servers.append(f"server {parts.hostname}:{parts.port} max_fails=1 fail_timeout=3s"
                           f"{' backup' if i else ''};")
        next_upstream = "error timeout"
    # An edge waits a little longer than the shield, so that the shield's own stale answer reaches it first.
    read_timeout = layout.origin_timeout_s + (1.0 if node.role == "edge" else 0.0)
    values = {
        "role": "edge node (point of presence)" if node.role == "edge" else "shield tier",
        "name": node.name, "prefix": str(node.prefix), "port": str(node.port),
        "upstream_servers": "\n        ".join(servers), "next_upstream": next_upstream,
        "zone": node.name.replace("-", "_"), "purge_token": token, "user_directive": _user_directive(),
        "connect_timeout": f"{min(1.0, layout.origin_timeout_s):g}", "read_timeout": f"{read_timeout:g}",
        "pass_timeout": f"{max(read_timeout, 30.0):g}", "rate_limit": str(layout.rate_limit_rps),
        "max_size": layout.max_cache_size, "checkout_rate": str(layout.checkout_rate_per_min),
        "checkout_limit": _limit(node, "checkout", layout.limit_burst),
        "queue_limit": _limit(node, "waiting_room", layout.limit_burst),
        "cache_header": "X-Edge-Cache" if node.role == "edge" else "X-Shield-Cache",
    }
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    if "{{" in text:
        raise ValueError(f"{TEMPLATE}: unfilled placeholder near {text[text.index('{{'):][:40]!r}")
    return text


def write_configs(layout: EdgeLayout, template: str | None = None) -> list[Path]:
    """Write every node's ``nginx.conf`` (mode 600: it holds the purge token) and create its cache, log and temp
    folders. Returns the config paths."""
    token = layout.purge_token(create=True)
    written = []
    for node in layout.nodes:
        for sub in ("cache", "tmp"):
            (node.prefix / sub).mkdir(parents=True, exist_ok=True)
        _write_private(node.conf, render(layout, node, token, template))
        written.append(node.conf)
    return written


def _write_private(path: Path, text: str) -> None:
    """Write ``path`` readable by its owner only (an nginx.conf holds the purge token). nginx reads its config in
    the master process, which runs as the user who started it (``shopfloor edge up``), so it still can. A config an
    older version left world-readable is made owner-only too."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(text)
