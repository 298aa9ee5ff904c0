"""Cache warming: the capacity plan's warm list requested through every edge node, for each configured
destination, so that the pages expected to be hottest are cached before the traffic arrives."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, Sequence
from urllib.parse import quote, urlencode

import httpx

from .layout import EdgeLayout

WARMER_AGENT = "shopfloor-edge-warm"


def parse_destinations(values: Sequence[str]) -> list[tuple[str, str]]:
    """``["US:94107", "BR"]`` -> ``[("US", "94107"), ("BR", "")]``; raises ValueError naming a bad entry."""
    out = []
    for value in values:
        country, _, postal = value.partition(":")
        if len(country) != 2 or not country.isalpha() or len(postal) > 16 or not all(
                c.isalnum() or c in " -" for c in postal):
            raise ValueError(f"destination {value!r}: COUNTRY or COUNTRY:POSTAL_CODE (e.g. US:94107)")
        out.append((country.upper(), postal))
    return out


def warm_paths(entries: Iterable[dict], destinations: Sequence[tuple[str, str]]) -> list[str]:
    """Paths to request: each product of the warm list once per destination, then the list's other URLs."""
    paths: list[str] = []
    for entry in entries:
        if entry.get("kind") == "product" and entry.get("sku"):
            sku = quote(str(entry["sku"]), safe="")
            for country, postal in destinations:
                query = {"country": country, **({"postal_code": postal} if postal else {})}
                paths.append(f"/v1/products/{sku}?{urlencode(query)}")
        elif str(entry.get("url", "")).startswith("/"):
            paths.append(str(entry["url"]))
    return list(dict.fromkeys(paths))


class EdgeWarmer:
    """Requests paths through every edge node (each PoP keeps its own cache). Implements the tower's
    ``CacheWarmer`` port."""

    def __init__(self, layout: EdgeLayout, timeout_s: float = 10.0, threads: int = 8) -> None:
        self.layout = layout
        self.timeout_s = timeout_s
        self.threads = threads

    def warm(self, paths: Sequence[str], progress=None) -> dict[str, int | str]:
        """``{"<node> <path>": status or "error: ..."}``."""
        jobs = [(node, path) for path in paths for node in self.layout.edges]
        results: dict[str, int | str] = {}
        with httpx.Client(timeout=self.timeout_s, headers={"User-Agent": WARMER_AGENT}) as client:
            def one(job):
                node, path = job
                try:
                    return f"{node.name} {path}", client.get(node.url + path).status_code
                except httpx.HTTPError as exc:
                    return f"{node.name} {path}", f"error: {type(exc).__name__}"

            with ThreadPoolExecutor(max_workers=self.threads) as pool:
                for key, outcome in pool.map(one, jobs):
                    results[key] = outcome
                    if progress is not None:
                        progress()
        return results
