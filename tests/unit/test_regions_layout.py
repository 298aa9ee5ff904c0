"""The two-region layout: ports, Patroni settings (synchronous by default) and recognising a standby's refusal."""

from __future__ import annotations

from pathlib import Path

import psycopg.errors
import pytest

from shopfloor.config import Settings
from shopfloor.regions import RegionsLayout
from shopfloor.regions.cluster import patroni_config
from shopfloor.store.engine import is_read_only


def test_regions_get_distinct_ports_from_one_base_and_replication_is_synchronous_by_default(tmp_path):
    layout = RegionsLayout.from_settings(Settings(regions_dir=tmp_path, regions_port_base=30000))
    ports = [layout.etcd_port, layout.etcd_peer_port] + [p for r in layout.regions
                                                        for p in (r.pg_port, r.rest_port, r.app_port)]
    assert len(set(ports)) == len(ports)
    cfg = patroni_config(layout, layout.b)
    assert cfg["bootstrap"]["dcs"]["synchronous_mode"] is True
    assert cfg["postgresql"]["listen"] == "127.0.0.1:30011"
    assert cfg["etcd3"]["hosts"] == "127.0.0.1:30000"
    assert Path(cfg["postgresql"]["data_dir"]).is_relative_to(tmp_path)


def test_asynchronous_replication_is_an_option(tmp_path):
    layout = RegionsLayout.from_settings(Settings(regions_dir=tmp_path, regions_synchronous=False))
    assert patroni_config(layout, layout.a)["bootstrap"]["dcs"]["synchronous_mode"] is False


def test_an_unknown_region_is_named_in_the_error(tmp_path):
    with pytest.raises(ValueError, match="'C'"):
        RegionsLayout.from_settings(Settings(regions_dir=tmp_path)).region("C")


def test_a_standby_refusing_a_write_is_recognised_and_other_errors_are_not():
    assert is_read_only(psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"))
    assert not is_read_only(psycopg.errors.UniqueViolation("duplicate"))
    assert not is_read_only(ValueError("x"))


def test_the_standby_clone_asks_for_a_fast_checkpoint(tmp_path):
    layout = RegionsLayout.from_settings(Settings(regions_dir=tmp_path))
    assert {"checkpoint": "fast"} in patroni_config(layout, layout.b)["postgresql"]["basebackup"]
