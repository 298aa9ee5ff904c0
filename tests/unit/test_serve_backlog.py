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


def test_serve_runs_uvicorns_httptools_protocol_with_the_sold_out_shortcut_in_front(monkeypatch):
    from uvicorn.config import Config
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from shopfloor.api.lean_http import CrowdHttpProtocol, find_shortcut

    seen = _served_with(monkeypatch)
    config = Config(app=lambda *a: None, http=seen["http"])
    config.load()  # what uvicorn (and each --workers process) resolves the setting to
    assert config.http_protocol_class is CrowdHttpProtocol and issubclass(CrowdHttpProtocol, HttpToolsProtocol)

    class Front:
        shortcut = object()

    class App:
        front = Front()

    class Wrapper:  # the proxy headers' middleware, uvicorn's wrappers: each keeps the app it wraps as .app
        def __init__(self, app):
            self.app = app

    assert find_shortcut(Wrapper(Wrapper(App()))) is Front.shortcut
    assert find_shortcut(Wrapper(object())) is None
