"""Purge on sell-out and price change.

A watcher compares, every ``edge_purge_interval_s``, each SKU's stock band per warehouse (sold out, limited, low,
plenty: the boundaries that change what a page says or how long it is cached) and its price and name with what
it saw last. For every SKU that changed, the nginx purge target refreshes each cached variant of its product page
(every destination an edge holds) on every node: a request with the purge token skips the cached copy, goes
through the shield (which skips its copy too) to the origin, and the fresh answer replaces both copies. Each
purge is repeated once ``repeat_after_s`` later, so that a read replica that lagged behind the first refresh
cannot leave an old page cached; a purge that could not reach a node (down or restarting: its old copy is still
on disk) is retried until it does.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

import httpx

from .layout import EdgeLayout, Node

log = logging.getLogger(__name__)

PURGE_HEADER = "X-Shopfloor-Purge"
PURGER_AGENT = "shopfloor-edge-purger"


@dataclass(frozen=True)
class StockRow:
    sku: str
    warehouse: str | None
    available: int


@dataclass(frozen=True)
class PriceRow:
    sku: str
    name: str
    price: int
    currency: str


def band_boundaries(limited_threshold: int, risk_units: int, plenty_units: int) -> tuple[int, ...]:
    """Available-unit counts where a product page changes: 1 (sold out below), limited, alternatives shown,
    long TTL."""
    return tuple(sorted({1, limited_threshold + 1, risk_units, plenty_units}))


def page_signatures(stock_rows: Iterable[StockRow], prices: Iterable[PriceRow],
                    boundaries: Sequence[int]) -> dict[str, tuple]:
    """Per SKU, what its product pages depend on, coarsened to bands (a sale that leaves it in the same band
    changes nothing on the page)."""
    bands: dict[str, list[tuple[str, int]]] = {}
    totals: dict[str, int] = {}
    for row in stock_rows:
        bands.setdefault(row.sku, []).append((row.warehouse or "", bisect.bisect_right(boundaries, row.available)))
        totals[row.sku] = totals.get(row.sku, 0) + max(0, row.available)
    out = {}
    for p in prices:
        total_band = bisect.bisect_right(boundaries, totals.get(p.sku, 0))
        out[p.sku] = (p.name, p.price, p.currency, total_band, tuple(sorted(bands.get(p.sku, []))))
    return out


def changed_skus(before: Mapping[str, tuple], after: Mapping[str, tuple]) -> set[str]:
    return {sku for sku in set(before) | set(after) if before.get(sku) != after.get(sku)}


class PageSource(Protocol):
    def stock_rows(self) -> list[StockRow]: ...

    def price_rows(self) -> list[PriceRow]: ...


class PurgeTarget(Protocol):
    def refresh(self, skus: set[str]) -> dict[str, int]: ...


def product_key_matches(key: str, skus: set[str]) -> bool:
    if not key.startswith("/v1/products/"):
        return False
    sku = key[len("/v1/products/"):].split("?", 1)[0]
    return sku in skus


def cached_keys(cache_dir: Path) -> list[str]:
    """The cache keys held in an nginx cache folder (each file's ``KEY:`` line; temp files are skipped)."""
    keys = []
    for path in cache_dir.rglob("*"):
        name = path.name
        if len(name) != 32 or not path.is_file():
            continue
        try:
            with path.open("rb") as fh:
                head = fh.read(4096)
        except OSError:
            continue  # replaced or evicted while we looked
        at = head.find(b"\nKEY: ")
        if at < 0:
            continue
        end = head.find(b"\n", at + 6)
        if end > 0:
            keys.append(head[at + 6:end].decode("utf-8", "replace"))
    return keys


class NginxPurgeTarget:
    """Refreshes product pages on the edge nodes and the shield of an :class:`EdgeLayout` (same host)."""

    def __init__(self, layout: EdgeLayout, token: str, timeout_s: float = 5.0, threads: int = 8) -> None:
        self.layout = layout
        self.headers = {PURGE_HEADER: token, "User-Agent": PURGER_AGENT}
        self.client = httpx.Client(timeout=timeout_s)
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="edge-purge")

    def _get(self, node: Node, key: str) -> bool:
        try:
            return self.client.get(node.url + key, headers=self.headers).status_code < 500
        except httpx.HTTPError:
            return False

    def refresh(self, skus: set[str]) -> dict[str, int]:
        jobs: list[tuple[Node, str]] = []
        through_edges: set[str] = set()
        for node in self.layout.edges:
            for key in cached_keys(node.cache_dir):
                if product_key_matches(key, skus):
                    jobs.append((node, key))
                    through_edges.add(key)
        # Variants only the shield holds (no edge asked for them lately) are refreshed there directly.
        jobs += [(self.layout.shield, key) for key in cached_keys(self.layout.shield.cache_dir)
                 if product_key_matches(key, skus) and key not in through_edges]
        results = list(self.pool.map(lambda job: self._get(*job), jobs))
        return {"requests": len(jobs), "failed": results.count(False)}

    def close(self) -> None:
        self.pool.shutdown(wait=False)
        self.client.close()


class PurgeWatcher:
    """Polls ``source`` and refreshes what changed; ``tick`` is one step (tests drive it directly)."""

    def __init__(self, source: PageSource, target: PurgeTarget, boundaries: Sequence[int], *,
                 repeat_after_s: float = 1.0, now: Callable[[], float] = time.monotonic,
                 on_purge: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.source, self.target, self.boundaries = source, target, tuple(boundaries)
        self.repeat_after_s = repeat_after_s
        self.now = now
        self.on_purge = on_purge
        self.seen: dict[str, tuple] | None = None
        self.repeats: list[tuple[float, set[str]]] = []

    def tick(self) -> set[str]:
        current = page_signatures(self.source.stock_rows(), self.source.price_rows(), self.boundaries)
        changed = set() if self.seen is None else changed_skus(self.seen, current)
        self.seen = current
        due = {sku for at, skus in self.repeats if at <= self.now() for sku in skus}
        self.repeats = [(at, skus) for at, skus in self.repeats if at > self.now()]
        todo = changed | due
        if todo:
            outcome = self.target.refresh(todo)
            if outcome.get("failed"):
                # A node that could not be reached (down, restarting) still holds the old copy on disk: try again
                # until every refresh lands.
                self.repeats.append((self.now() + max(self.repeat_after_s, 0.5), set(todo)))
            elif changed and self.repeat_after_s > 0:
                self.repeats.append((self.now() + self.repeat_after_s, set(changed)))
            if self.on_purge is not None:
                self.on_purge({"skus": sorted(todo), "repeat": sorted(due - changed), **outcome})
        return changed

    def run(self, interval_s: float, stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the database or an edge may be down; try again next interval
                log.exception("edge purge tick failed")
            stop.wait(max(0.0, interval_s - (time.monotonic() - started)))
