"""`shopfloor serve` hands its listen backlog to uvicorn (a flash crowd's connections wait in the kernel's queue
instead of being dropped and retried seconds later)."""

from __future__ import annotations

import uvicorn

from shopfloor.cli import core_cmd
from shopfloor.config import Settings


def _served_with(monkeypatch, **settings) -> dict:
    seen: dict = {}
    monkeypatch.setattr(core_cmd, "load_settings", lambda: Settings(**settings))
    monkeypatch.setattr(core_cmd, "upgrade_or_fail", lambda _url: None)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: seen.update(kw))
    core_cmd.serve(host="127.0.0.1", port=8000, workers=1, log_level="warning")
    return seen


def test_serve_listens_with_a_backlog_of_4096_by_default_and_the_setting_when_given(monkeypatch):
    assert _served_with(monkeypatch)["backlog"] == 4096
    assert _served_with(monkeypatch, http_backlog=512)["backlog"] == 512


def test_serve_reads_the_proxy_headers_in_the_app_not_in_uvicorn(monkeypatch):
    seen = _served_with(monkeypatch)
    assert seen["proxy_headers"] is False  # uvicorn's parses every new client address: the app's own does it
    assert "forwarded_allow_ips" not in seen
