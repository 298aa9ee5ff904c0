"""The edge cache: nginx edge nodes (points of presence) behind which one shield tier talks to the origin; their
configs, processes, purges, warming and logs. Public entry point."""

from .layout import EdgeLayout, Node, render, write_configs
from .logs import CacheStats, EdgeLogStats, cache_stats, parse_lines, per_minute, read_log
from .nodes import INSTALL_HINT, is_healthy, kill_node, master_pid, nginx_binary, start_all, start_node, stop_all, stop_node
from .purge import (
    PURGE_HEADER,
    NginxPurgeTarget,
    PriceRow,
    PurgeWatcher,
    StockRow,
    band_boundaries,
    cached_keys,
    changed_skus,
    page_signatures,
)
from .warm import EdgeWarmer, parse_destinations, warm_paths

__all__ = ["CacheStats", "EdgeLogStats", "EdgeLayout", "EdgeWarmer", "INSTALL_HINT", "NginxPurgeTarget", "Node", "PURGE_HEADER",
           "PriceRow", "PurgeWatcher", "StockRow", "band_boundaries", "cache_stats", "cached_keys", "changed_skus",
           "is_healthy", "kill_node", "master_pid", "nginx_binary", "page_signatures", "parse_destinations",
           "parse_lines", "per_minute", "read_log", "render", "start_all", "start_node", "stop_all", "stop_node",
           "warm_paths", "write_configs"]
