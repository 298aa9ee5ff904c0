"""FastAPI dependencies shared by every router: the container, scope checks and the id pattern."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request, Security
from fastapi.security import HTTPBearer

from ..bootstrap import Container
from ..domain.errors import InvalidInput

#: SKU, warehouse and similar ids, wherever a route accepts one (path, query or body).
IDENT_PATTERN = r"^[A-Za-z0-9._-]+$"


async def get_container(request: Request) -> Container:
    return request.app.state.container


class _BearerKeyScheme(HTTPBearer):
    """Declares the API key to the OpenAPI document (``components.securitySchemes.apiKey``, each protected
    operation's ``security`` with its scopes: Swagger UI's Authorize button). It checks nothing itself: the
    ``Authenticator`` does, with error messages that say what to send."""

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


API_KEY = _BearerKeyScheme(
    scheme_name="apiKey",
    description="An API key, sent as `Authorization: Bearer <key>`. Create one with `shopfloor keys create "
                "--scope admin|storefront|ingest`; `shopfloor demo` writes its keys to `var/demo/keys.env` and "
                "prints them.",
    auto_error=False,
)


def single_header(request: Request, name: str) -> str | None:
    """The one value of header ``name``; a header sent twice is refused (422 naming it), so that no layer reads the
    first copy where another reads the last (two ``Idempotency-Key`` or ``Authorization`` headers)."""
    values = request.headers.getlist(name)
    if len(values) > 1:
        raise InvalidInput(f"{name}: send this header once (got {len(values)})",
                           [{"field": name, "got": len(values)}])
    return values[0] if values else None


def require_scope(*scopes: str):
    """Dependency: the caller's API key must carry one of ``scopes`` (401 without a valid key, 403 otherwise).

    Returns the authenticated key's id.
    """

    # async on purpose: FastAPI runs sync dependencies in a thread pool, which costs more than the (cached)
    # key lookup itself on the hot checkout path.
    async def _check(request: Request, _doc: None = Security(API_KEY, scopes=list(scopes))) -> str:
        return request.app.state.authenticator.require(single_header(request, "Authorization"), scopes)

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

    async def _check(request: Request, _doc: None = Security(API_KEY, scopes=list(scopes))) -> Caller:
        key_id, granted = request.app.state.authenticator.authenticate(single_header(request, "Authorization"),
                                                                       scopes)
        return Caller(key_id, granted)

    return _check
