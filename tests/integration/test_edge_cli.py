"""`shopfloor edge config` and the game day's scenario option, without starting nginx."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from shopfloor.cli.main import app


def test_edge_config_writes_one_nginx_config_per_node_under_the_edge_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOPFLOOR_EDGE_DIR", str(tmp_path / "edge"))
    result = CliRunner().invoke(app, ["edge", "config", "--json"])
    assert result.exit_code == 0, result.output
    nodes = json.loads(result.output)["nodes"]
    assert set(nodes) == {"shield", "edge-a", "edge-b"}
    for node in nodes.values():
        assert (tmp_path / "edge").resolve() in __import__("pathlib").Path(node["config"]).parents
    token = (tmp_path / "edge" / "purge.token")
    assert token.stat().st_mode & 0o077 == 0  # the purge secret is readable by its owner only


def test_edge_config_names_a_bad_origin_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOPFLOOR_EDGE_DIR", str(tmp_path / "edge"))
    monkeypatch.setenv("SHOPFLOOR_EDGE_ORIGIN_URL", "ftp://origin")
    result = CliRunner().invoke(app, ["edge", "config"])
    assert result.exit_code == 2 and "SHOPFLOOR_EDGE_ORIGIN_URL" in result.output


def test_gameday_refuses_an_unknown_scenario():
    result = CliRunner().invoke(app, ["gameday", "--scenario", "moon"])
    assert result.exit_code == 2 and "--scenario" in result.output


def test_edge_warm_with_no_edge_running_names_the_edge_and_how_to_start_it(tmp_path, monkeypatch):
    from shopfloor.runtime import free_port

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SHOPFLOOR_EDGE_DIR", str(tmp_path / "edge"))
    ports = [free_port(), free_port()]
    monkeypatch.setenv("SHOPFLOOR_EDGE_NODE_PORTS", json.dumps(ports))
    urls = tmp_path / "warm.json"
    urls.write_text(json.dumps(["/v1/products/A", "/v1/products/B"]))
    result = CliRunner().invoke(app, ["edge", "warm", "--urls-file", str(urls)])
    said = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert (f"the edge at http://127.0.0.1:{ports[0]}, http://127.0.0.1:{ports[1]} did not answer" in said
            and "start it with `shopfloor edge up`" in said), said
