"""FastAPI dependencies shared by every router: the container and scope checks."""

from __future__ import annotations

from fastapi import Depends, Request

from ..bootstrap import Container


def get_container(request: Request) -> Container:
    return request.app.state.container


def require_scope(*scopes: str):
    """Dependency: the caller's API key must carry one of ``scopes`` (401 without a valid key, 403 otherwise).

    Returns the authenticated key's id.
    """

    def _check(request: Request, container: Container = Depends(get_container)) -> str:
        authenticator = request.app.state.authenticator
        return authenticator.require(request.headers.get("authorization"), scopes)

    return _check
