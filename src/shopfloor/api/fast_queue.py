"""``GET /v1/queue/{token}`` ahead of the FastAPI router.

In a flash crowd every waiting shopper holds one of these requests, so its per-request cost is what the crowd
costs the server. Well-formed requests (a token of the right shape, ``wait`` absent or a number within limits) are
answered here with :meth:`~shopfloor.waitroom.WaitingRoom.status`; anything else goes to the FastAPI route, which
answers with the usual validation envelope and stays the OpenAPI entry.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qsl

from ..domain.errors import DomainError
from .errors import envelope
from .responses import FastJSONResponse

log = logging.getLogger(__name__)

PREFIX = "/v1/queue/"
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\Z")  # \Z: "$" would let a trailing LF through


class QueueStatusFastPath:
    def __init__(self, app, container, max_wait_s: float, route: Any = None) -> None:
        self.app = app
        self.container = container
        self.max_wait_s = max_wait_s
        self.route = route

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        room = self.container.services.get("waitroom")
        if (room is None or scope["type"] != "http" or scope["method"] != "GET"
                or not scope["path"].startswith(PREFIX)):
            await self.app(scope, receive, send)
            return
        token = scope["path"][len(PREFIX):]
        wait_s = self._wait(scope.get("query_string", b""))
        if wait_s is None or len(token) > 512 or TOKEN_RE.match(token) is None:
            await self.app(scope, receive, send)
            return
        if self.route is not None:
            scope["route"] = self.route
        try:
            answer = await room.hold(token, wait_s)
            response = FastJSONResponse(answer.status, headers=None if answer.retry_after_s is None
                                        else {"Retry-After": str(answer.retry_after_s)})
        except DomainError as exc:
            response = envelope(exc.status, exc.code, exc.message, exc.details)
        except Exception:  # the queue store (Redis) is unreachable: the place is kept, ask again
            log.exception("waiting room unavailable on GET %s...", PREFIX)
            response = envelope(503, "service_unavailable", "the waiting room is unavailable; ask again after "
                                "Retry-After (your place is kept)", [{"field": "token"}], headers={"Retry-After": "2"})
        await response(scope, receive, send)

    def _wait(self, query: bytes) -> float | None:
        return parse_wait(query, self.max_wait_s)


def parse_wait(query: bytes, max_wait_s: float) -> float | None:
    """Seconds to hold the request (0 without ``wait``); None when the query is not one the fast paths serve."""
    if not query:
        return 0.0
    try:
        params = parse_qsl(query.decode("latin-1"), keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return None
    if len(params) != 1 or params[0][0] != "wait" or not params[0][1].isascii():
        return None  # float() also reads non-ASCII digits ("١"), which the route refuses (422 naming wait)
    try:
        wait = float(params[0][1])
    except ValueError:
        return None
    return wait if 0 <= wait <= max_wait_s else None
