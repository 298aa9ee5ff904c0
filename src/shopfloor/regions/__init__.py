"""Two regions on one machine, active/passive: region A runs the app, the worker and the PostgreSQL primary, region
B the app and a synchronous streaming standby. Patroni (with etcd as its consensus store) manages PostgreSQL; this
package writes their configs, starts and stops the processes under ``var/regions`` and fails over from A to B with
A fenced. Public entry point."""

from .cluster import (
    INSTALL_HINT,
    Region,
    RegionsLayout,
    down,
    is_primary,
    failover,
    kill_region,
    pid_of,
    postmaster_pid,
    region_alive,
    status,
    up,
    wait_for_primary,
    watch,
)

__all__ = ["INSTALL_HINT", "Region", "RegionsLayout", "down", "failover", "is_primary", "kill_region", "pid_of",
           "postmaster_pid", "region_alive", "status",
           "up", "wait_for_primary", "watch"]
