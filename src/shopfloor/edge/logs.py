"""Edge access logs (``log_format edge``) read back: hit ratio per node, stale serves, origin requests per minute."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .purge import PURGER_AGENT

#: Cache statuses answered from the node's own copy.
SERVED_FROM_CACHE = frozenset({"HIT", "STALE", "UPDATING", "REVALIDATED"})
_LINE = re.compile(r'^(?P<msec>[\d.]+) "(?P<method>\S+) (?P<uri>\S+)" (?P<status>\d{3}) (?P<cache>\S+) '
                   r'(?P<rt>[\d.]+) "(?P<upstream>[^"]*)" "(?P<agent>[^"]*)" purge=(?P<purge>\d)')


@dataclass(frozen=True)
class LogLine:
    at: float
    method: str
    uri: str
    status: int
    cache: str
    agent: str
    purge: bool


def parse_lines(lines: Iterable[str]) -> list[LogLine]:
    out = []
    for line in lines:
        m = _LINE.match(line)
        if m:
            out.append(LogLine(float(m["msec"]), m["method"], m["uri"], int(m["status"]), m["cache"], m["agent"],
                               m["purge"] == "1"))
    return out


def read_log(path: Path, since: float = 0.0, max_bytes: int | None = None) -> list[LogLine]:
    """Lines at or after ``since`` (epoch seconds); with ``max_bytes``, only the file's last ``max_bytes``."""
    if not path.exists():
        return []
    with path.open("rb") as fh:
        if max_bytes is not None:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            if size > max_bytes:
                fh.readline()  # a partial first line
        text = fh.read().decode("utf-8", errors="replace")
    return [line for line in parse_lines(text.splitlines()) if line.at >= since]


@dataclass
class CacheStats:
    requests: int = 0
    from_cache: int = 0
    stale: int = 0
    to_next_tier: int = 0
    errors: int = 0
    by_status: dict[str, int] = field(default_factory=dict)

    @property
    def hit_ratio(self) -> float | None:
        return self.from_cache / self.requests if self.requests else None

    def to_dict(self) -> dict:
        ratio = self.hit_ratio
        return {"requests": self.requests, "from_cache": self.from_cache, "stale": self.stale,
                "to_next_tier": self.to_next_tier, "errors": self.errors,
                "hit_ratio": None if ratio is None else round(ratio, 4), "by_cache_status": self.by_status}


def cache_stats(lines: Iterable[LogLine], *, path_prefix: str | tuple[str, ...] = "/v1/products/",
                agent: str | None = None) -> CacheStats:
    """Stats of the cacheable requests under ``path_prefix``, leaving out the purger's refreshes (and, with
    ``agent``, keeping only that client's requests)."""
    stats = CacheStats()
    for line in lines:
        if line.purge or line.agent == PURGER_AGENT or not line.uri.startswith(path_prefix):
            continue
        if agent is not None and line.agent != agent:
            continue
        stats.requests += 1
        stats.by_status[line.cache] = stats.by_status.get(line.cache, 0) + 1
        if line.cache in SERVED_FROM_CACHE:
            stats.from_cache += 1
        else:
            stats.to_next_tier += 1
        if line.cache in ("STALE", "UPDATING"):
            stats.stale += 1
        if line.status >= 500:
            stats.errors += 1
    return stats


def per_minute(lines: Iterable[LogLine], *, to_next_tier_only: bool = True) -> dict[int, int]:
    """Requests per minute (epoch minute -> count); by default only those the node passed on (a shield's are the
    origin's requests)."""
    out: dict[int, int] = {}
    for line in lines:
        if to_next_tier_only and line.cache in SERVED_FROM_CACHE:
            continue
        minute = int(line.at // 60)
        out[minute] = out.get(minute, 0) + 1
    return out


#: The cacheable routes (what the edge config caches).
CACHEABLE = ("/v1/products", "/v1/promise")


class EdgeLogStats:
    """The dashboard's cache panel: per node, hit ratio and stale serves of the cacheable routes over the last
    minutes, and the requests the shield passed to the origin per minute (all routes; background refreshes,
    which nginx does not log, are not counted). Reads at most the last ``max_bytes`` of each log."""

    def __init__(self, layout, max_bytes: int = 8 * 1024 * 1024) -> None:
        self.layout = layout
        self.max_bytes = max_bytes

    def snapshot(self, now_epoch: float, minutes: int = 60) -> dict:
        since = now_epoch - 60 * minutes
        nodes = {}
        origin: dict[int, int] = {}
        for node in self.layout.nodes:
            lines = read_log(node.access_log, since, self.max_bytes)
            nodes[node.name] = {"role": node.role, "log_present": Path(node.access_log).exists(),
                                **cache_stats(lines, path_prefix=CACHEABLE).to_dict()}
            if node.role == "shield":
                origin = per_minute(lines)
        first = int(since // 60) + 1
        last = int(now_epoch // 60)
        series = [{"minute": m * 60, "requests": origin.get(m, 0)} for m in range(first, last + 1)]
        return {"nodes": nodes, "origin_requests_per_min": series}
