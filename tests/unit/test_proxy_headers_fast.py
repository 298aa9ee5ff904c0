"""The app's proxy-headers middleware answers as uvicorn's does, for every kind of address and trust setting."""

from __future__ import annotations

import asyncio

import pytest
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from shopfloor.api.app import served_app_from_env
from shopfloor.api.proxy import FastProxyHeaders

TRUSTED = ["127.0.0.1", "127.0.0.1,10.0.0.5", "10.0.0.0/8", "*", "::1", "127.0.0.1, unix-socket"]
PEERS = ["127.0.0.1", "10.0.0.5", "10.1.2.3", "203.0.113.9", "::1", None]
FORWARDED = [None, "198.51.100.7", "198.51.100.7, 10.0.0.5", "010.0.0.5", "10.0.0.5, 127.0.0.1",
             "2001:db8::1", "[2001:db8::1]:443", "198.51.100.7:8080", "", "garbage, 127.0.0.1", "1.2.3",
             "256.1.1.1", "10.0.0.5,127.0.0.1", "unix-socket"]


def _client(middleware_cls, trusted, peer, forwarded):
    seen = {}

    async def app(scope, receive, send):
        seen["client"], seen["scheme"] = scope.get("client"), scope.get("scheme")

    headers = [(b"x-forwarded-proto", b"https")]
    if forwarded is not None:
        headers.append((b"x-forwarded-for", forwarded.encode()))
    scope = {"type": "http", "scheme": "http", "headers": headers,
             "client": None if peer is None else (peer, 5000)}
    asyncio.run(middleware_cls(app, trusted)(scope, None, None))
    return seen


@pytest.mark.parametrize("trusted", TRUSTED)
def test_the_client_and_scheme_are_the_same_as_uvicorns(trusted):
    for peer in PEERS:
        for forwarded in FORWARDED:
            assert _client(FastProxyHeaders, trusted, peer, forwarded) == \
                _client(ProxyHeadersMiddleware, trusted, peer, forwarded), (trusted, peer, forwarded)


def test_a_new_client_address_is_not_parsed_when_only_addresses_are_trusted(monkeypatch):
    import ipaddress

    seen = {}

    async def app(scope, receive, send):
        seen["client"] = scope["client"]

    middleware = FastProxyHeaders(app, "127.0.0.1")
    calls = []
    real = ipaddress.ip_address
    monkeypatch.setattr(ipaddress, "ip_address", lambda v: calls.append(v) or real(v))

    async def crowd():
        for i in range(5000):  # more new addresses than uvicorn's cache holds
            await middleware({"type": "http", "client": ("127.0.0.1", 5000),
                              "headers": [(b"x-forwarded-for", f"198.51.{i >> 8}.{i & 255}".encode())]}, None, None)

    asyncio.run(crowd())
    assert seen["client"] == ("198.51.19.135", 0) and calls == []


def test_the_served_app_reads_the_proxy_headers_when_the_setting_is_on(monkeypatch, tmp_path):
    monkeypatch.setenv("SHOPFLOOR_DATABASE_URL", f"sqlite:///{tmp_path / 'p.db'}")
    from shopfloor.store.migrate import upgrade_database

    upgrade_database(f"sqlite:///{tmp_path / 'p.db'}")
    assert isinstance(served_app_from_env(), FastProxyHeaders)
    monkeypatch.setenv("SHOPFLOOR_HTTP_PROXY_HEADERS", "false")
    assert not isinstance(served_app_from_env(), FastProxyHeaders)
