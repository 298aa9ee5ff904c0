"""API keys: generation and hashing. Keys are 256-bit random tokens, so a plain SHA-256 is the right hash
(no slow KDF is needed for high-entropy secrets; it keeps per-request auth cheap)."""

from __future__ import annotations

import hashlib
import secrets

SCOPES = ("storefront", "admin", "ingest", "scaler")
KEY_PREFIX = "sf_"


def new_api_key() -> tuple[str, str, str]:
    """Return (key_id, secret_key, key_hash). Only the hash is stored; the key is shown once."""
    key_id = "key_" + secrets.token_hex(6)
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    return key_id, secret, hash_api_key(secret)


def hash_api_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def validate_scopes(scopes: list[str]) -> list[str]:
    bad = [s for s in scopes if s not in SCOPES]
    if bad or not scopes:
        from .errors import InvalidInput

        raise InvalidInput(
            f"scopes must be a non-empty subset of {', '.join(SCOPES)}",
            [{"field": "scope", "invalid": bad}],
        )
    return sorted(set(scopes))


#: Longest key name the store holds (``api_keys.name``).
KEY_NAME_MAX = 120


def validate_key_name(name: str) -> str:
    """A key's label: 1-120 printable characters (shown in `keys list` and the audit log; no control characters)."""
    if not isinstance(name, str) or not name.strip() or len(name) > KEY_NAME_MAX or not name.isprintable():
        from .errors import InvalidInput

        raise InvalidInput(f"a key name is 1 to {KEY_NAME_MAX} printable characters, got {name[:40]!r}"
                           f"{'...' if isinstance(name, str) and len(name) > 40 else ''}", [{"field": "name"}])
    return name
