"""API-key authentication with scopes. Keys are stored hashed; lookups are cached briefly per process."""

from __future__ import annotations

import time

from sqlalchemy import Engine

from ..domain.errors import Forbidden, Unauthorized
from ..domain.keys import hash_api_key
from ..store.keys import find_key_by_secret


class Authenticator:
    """``require(header, scopes)`` returns the key id or raises 401/403 (never echoes the key)."""

    def __init__(self, engine: Engine, cache_ttl_s: float = 5.0, max_cache: int = 10_000) -> None:
        self.engine = engine
        self.cache_ttl_s = cache_ttl_s
        self.max_cache = max_cache
        self._cache: dict[str, tuple[float, str | None, frozenset[str]]] = {}

    def _lookup(self, secret: str) -> tuple[str | None, frozenset[str]]:
        digest = hash_api_key(secret)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < self.cache_ttl_s:
            return hit[1], hit[2]
        found = find_key_by_secret(self.engine, secret)
        entry = (now, found[0], frozenset(found[1])) if found else (now, None, frozenset())
        if len(self._cache) >= self.max_cache:
            self._cache.clear()
        self._cache[digest] = entry
        return entry[1], entry[2]

    def require(self, header: str | None, scopes: tuple[str, ...] | list[str]) -> str:
        return self.authenticate(header, scopes)[0]

    def authenticate(self, header: str | None, scopes: tuple[str, ...] | list[str]) -> tuple[str, frozenset[str]]:
        """Like :meth:`require`, but returns (key id, every scope the key holds)."""
        if not header:
            raise Unauthorized("missing Authorization header; send 'Authorization: Bearer <key>'")
        scheme, _, secret = header.partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret or len(secret) > 200:
            raise Unauthorized("Authorization must be 'Bearer <key>'")
        key_id, granted = self._lookup(secret)
        if key_id is None:
            raise Unauthorized("invalid or revoked API key")
        if not granted.intersection(scopes):
            raise Forbidden(
                f"this key lacks the required scope ({' or '.join(scopes)})",
                [{"required": list(scopes), "granted": sorted(granted)}],
            )
        return key_id, granted
