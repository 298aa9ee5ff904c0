"""SSRF guard for outbound webhooks: a subscriber URL must not reach into the shop's own network (loopback,
private ranges, link-local such as a cloud metadata service, carrier-grade NAT; any address that is not globally
reachable) unless its host is allow-listed in settings.

The host is resolved when the subscription is created and again before every delivery, and redirects are never
followed. The HTTP client then resolves the name once more to connect: a DNS answer that changes in between (DNS
rebinding) is not caught here; where that matters, send webhooks through an egress proxy that enforces the same rule.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Protocol
from urllib.parse import urlsplit


class TargetRefused(ValueError):
    """The URL may not be called; ``reason`` says why (for the API's error envelope, field ``url``)."""


class HostResolver(Protocol):
    def addresses(self, host: str, port: int) -> list[str]: ...


class SystemResolver:
    def addresses(self, host: str, port: int) -> list[str]:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return sorted({info[4][0] for info in infos})


_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052's well-known prefix: the low 32 bits are an IPv4 address


def _internal(address: str) -> bool:
    """Whether ``address`` is anything but a globally reachable unicast address: private, loopback, link-local,
    carrier-grade NAT (100.64.0.0/10, where Alibaba Cloud's metadata service and Tailscale live), reserved,
    documentation, multicast. An IPv6 address that carries an IPv4 one (IPv4-mapped, 6to4, Teredo, NAT64) is
    judged by that IPv4 address as well: 2002:a9fe:a9fe:: is 169.254.169.254 through a 6to4 relay."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            candidates = [ip.ipv4_mapped]
        if ip.sixtofour is not None:
            candidates.append(ip.sixtofour)
        if ip.teredo is not None:
            candidates.extend(ip.teredo)
        if ip in _NAT64:
            candidates.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return any(not c.is_global or c.is_multicast for c in candidates)


class TargetGuard:
    """``check(url)`` raises :class:`TargetRefused` for a URL that is not http(s), has no host, or whose host
    resolves to an internal address and is not in ``allowed_hosts``. Checked when a subscription is created and
    again before every delivery (DNS may change in between)."""

    def __init__(self, allowed_hosts: frozenset[str] = frozenset(), resolver: HostResolver | None = None) -> None:
        self.allowed_hosts = frozenset(h.lower() for h in allowed_hosts)
        self.resolver = resolver or SystemResolver()

    def check(self, url: str) -> None:
        try:
            parts = urlsplit(url)
        except ValueError:  # an unclosed IPv6 bracket, say
            raise TargetRefused("the URL is malformed") from None
        if parts.scheme not in ("http", "https"):
            raise TargetRefused("the URL must start with http:// or https://")
        host = (parts.hostname or "").lower()
        if not host:
            raise TargetRefused("the URL has no host")
        if parts.username or parts.password:
            raise TargetRefused("the URL must not carry credentials; the signature authenticates deliveries")
        if host in self.allowed_hosts:
            return
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port is None:
            port = 443 if parts.scheme == "https" else 80
        elif not 1 <= port <= 65535:
            raise TargetRefused("the URL's port is not a number in 1-65535")
        try:
            addresses = [host] if _is_ip(host) else self.resolver.addresses(host, port)
        except (OSError, UnicodeError):  # UnicodeError: an empty or over-long label the IDNA codec refuses
            raise TargetRefused(f"the host {host} does not resolve") from None
        internal = [a for a in addresses if _internal(a)]
        if internal:
            raise TargetRefused(
                f"the host {host} resolves to an internal address ({internal[0]}); allow it with "
                "SHOPFLOOR_WEBHOOK_ALLOWED_HOSTS if that is intended")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
