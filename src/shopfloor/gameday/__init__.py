"""Load runs and game days against the real server and worker. Public entry point.

* :mod:`.scenario` - a game day: shoppers over HTTP while a schedule of faults hits the running system
* :mod:`.faults` - the faults a schedule may hold, reading a schedule, applying one fault
* :mod:`.checks` - after the load: nothing lost, oversold, duplicated or charged twice; stock conserved
* :mod:`.report` - per-phase and per-second outcomes, the PNG chart
* :mod:`.load` - the ``wrk``-driven checkout benchmark (``bench/checkout.py``, ``shopfloor bench checkout``)
* :mod:`.edge_scenario` - the edge game day: browsing and buying through nginx edge nodes under edge and origin
  faults and a sell-out
* :mod:`.regions_scenario` - the regions game day: shoppers through the edge in front of two regions while a
  warehouse's feed stops and region A dies whole (automatic failover)
* :mod:`.warehouse_feed` - the warehouses' fulfillment feed and the ``warehouse_delay`` fault on it
* :mod:`.flash_crowd` - the ``flash_crowd`` scenario: a crowd and bots for one product behind the waiting room
* :mod:`.seed` - the store a run starts from
* :mod:`.harness` - what every scenario shares: the simulators' environment, the drain and store checks after
  the load, the processors' ledgers
"""

from .checks import CHECKS, charge_anomalies, live_authorizations_on_ended_orders, verify_store
from .edge_scenario import EdgeGameDayResult, run_edge_gameday
from .flash_crowd import FLASH_CROWD_CHECKS, FlashCrowdConfig, FlashCrowdResult, run_flash_crowd
from .faults import (
    ACTIONS,
    DEFAULT_SCHEDULE,
    EDGE_ACTIONS,
    EDGE_SCHEDULE,
    REGIONS_ACTIONS,
    REGIONS_SCHEDULE,
    Fault,
    load_schedule,
    parse_schedule,
)
from .regions_scenario import RegionsGameDayResult, run_regions_gameday
from .warehouse_feed import PromiseSeen, WarehouseFeed, unchanged_promises
from .load import (
    CORRECTNESS_KEYS,
    WRK_CHECKOUT_LUA,
    WRK_STATUS_LUA,
    run_checkout_benchmark,
    run_wrk,
    summarize_checkout_runs,
)
from .report import Attempt, GameDayResult, plot_gameday, summarize_phases, timeline
from .scenario import run_gameday
from .seed import ensure_fresh_store, seed_bench_store

__all__ = [
    "ACTIONS", "EDGE_ACTIONS", "REGIONS_ACTIONS", "REGIONS_SCHEDULE", "RegionsGameDayResult", "run_regions_gameday",
    "PromiseSeen", "WarehouseFeed", "unchanged_promises", "EDGE_SCHEDULE", "EdgeGameDayResult", "run_edge_gameday", "FLASH_CROWD_CHECKS",
    "FlashCrowdConfig", "FlashCrowdResult", "run_flash_crowd", "Attempt", "CHECKS", "CORRECTNESS_KEYS", "DEFAULT_SCHEDULE", "Fault", "GameDayResult", "charge_anomalies",
    "WRK_CHECKOUT_LUA", "WRK_STATUS_LUA",
    "ensure_fresh_store", "live_authorizations_on_ended_orders", "load_schedule", "parse_schedule", "plot_gameday",
    "run_checkout_benchmark", "run_gameday", "run_wrk", "seed_bench_store", "summarize_checkout_runs",
    "summarize_phases", "timeline", "verify_store",
]
