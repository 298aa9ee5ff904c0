"""The proxy headers (``X-Forwarded-For``/``-Proto`` from trusted proxies) without parsing every client address.

uvicorn's own middleware decides whether an address is a trusted proxy by parsing it with :mod:`ipaddress`, behind
an LRU cache of 4,096 addresses. A flash crowd brings tens of thousands of addresses, each new: the cache misses on
nearly every request, and the parse cost about 15 % of a crowd request's CPU on the server. An IPv4 address
written the only way :mod:`ipaddress` accepts it (four decimal octets, no leading zeros) has one spelling, so
when no trusted *network* is configured such an address is trusted exactly when its text is one of the trusted
addresses' texts: no parse needed. Everything else (IPv6, trusted networks, literals, ``*``) is decided by
uvicorn's own code, so the answers are the same as uvicorn's.
"""

from __future__ import annotations

import re

from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware, _TrustedHosts


class _FastTrustedHosts(_TrustedHosts):
    def __init__(self, trusted_hosts: list[str] | str) -> None:
        super().__init__(trusted_hosts)
        self._texts = frozenset(str(ip) for ip in self.trusted_hosts) | frozenset(self.trusted_literals)
        self._plain_v4_only = not self.always_trust and not self.trusted_networks

    def __contains__(self, host: str | None) -> bool:
        if self._plain_v4_only and host and ":" not in host and _plain_ipv4(host):
            return host in self._texts
        return super().__contains__(host)


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_PLAIN_IPV4 = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")


def _plain_ipv4(text: str) -> bool:
    """Whether ``text`` is a dotted-quad IPv4 address in its one canonical spelling (ASCII digits, no leading
    zeros, each octet at most 255)."""
    return _PLAIN_IPV4.fullmatch(text) is not None


class FastProxyHeaders(ProxyHeadersMiddleware):
    """uvicorn's :class:`ProxyHeadersMiddleware` (same behaviour) with the cheaper trust check above."""

    def __init__(self, app, trusted_hosts: list[str] | str = "127.0.0.1") -> None:
        super().__init__(app, trusted_hosts)
        self.trusted_hosts = _FastTrustedHosts(trusted_hosts)
