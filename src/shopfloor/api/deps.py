"""FastAPI dependencies shared by every router: the container, scope checks and the id pattern."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from ..bootstrap import Container

#: SKU, warehouse and similar ids, wherever a route accepts one (path, query or body).
IDENT_PATTERN = r"^[A-Za-z0-9._-]+$"


async def get_container(request: Request) -> Container:
    return request.app.state.container


def require_scope(*scopes: str):
    """Dependency: the caller's API key must carry one of ``scopes`` (401 without a valid key, 403 otherwise).

    Returns the authenticated key's id.
    """

    # async on purpose: FastAPI runs sync dependencies in a thread pool, which costs more than the (cached)
    # key lookup itself on the hot checkout path.
    async def _check(request: Request) -> str:
        return request.app.state.authenticator.require(request.headers.get("authorization"), scopes)

    return _check


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated API key: its id and every scope it holds."""

    key_id: str
    scopes: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes


def require_caller(*scopes: str):
    """Like :func:`require_scope`, but the dependency returns the :class:`Caller` (for routes whose answer depends
    on who asks, e.g. a storefront key sees only its own orders)."""

    async def _check(request: Request) -> Caller:
        key_id, granted = request.app.state.authenticator.authenticate(request.headers.get("authorization"), scopes)
        return Caller(key_id, granted)

    return _check
