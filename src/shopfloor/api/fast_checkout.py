"""``POST /v1/checkouts`` ahead of the FastAPI router.

The checkout is the hot route, and FastAPI's generic request handling (route matching, dependency solving, the
body parsed to a dict and then validated) cost about as much event-loop CPU as the rest of the request. This ASGI
layer answers the well-formed checkout itself: JSON content type, a valid ``Idempotency-Key``, a storefront key,
and a body that :class:`~shopfloor.api.routes.checkout.CheckoutIn` accepts (the same model, validated straight
from the bytes). Anything else -- a missing or bad header, a refused key, a body the model rejects -- is handed,
body and all, to the FastAPI route, which answers exactly as before (the same validation messages, the same error
envelope). The FastAPI route also stays the OpenAPI entry, and both run the same
:func:`~shopfloor.api.routes.checkout.run_checkout`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from pydantic import ValidationError

from ..domain.errors import DomainError
from .errors import envelope
from .routes.checkout import CheckoutIn, run_checkout

log = logging.getLogger(__name__)

PATH = "/v1/checkouts"
#: set in the scope of a request that already waited in the arrival line in the HTTP protocol (it waits once)
LINE_PASSED = "shopfloor.arrival_line.passed"
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,200}$")  # the route's Idempotency-Key rules (length 1-200, visible ASCII)
_SCOPES = ("storefront",)


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")


class CheckoutFastPath:
    """ASGI middleware: serves well-formed ``POST /v1/checkouts`` requests, passes everything else on."""

    def __init__(self, app, container, authenticator, route: Any = None, arrivals: Any = None) -> None:
        self.app = app
        self.container = container
        self.authenticator = authenticator
        self.route = route  # the FastAPI route, put in the scope so that metrics label requests by its template
        # the line for new arrivals at a guarded product (see crowd_front.ArrivalLane); None: no line
        self.arrivals = arrivals

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        auth = idem = ctype = queue_token = None
        twice = False  # a header sent twice: the route refuses it by name
        for name, value in scope["headers"]:
            if name == b"authorization":
                twice = twice or auth is not None
                auth = value
            elif name == b"idempotency-key":
                twice = twice or idem is not None
                idem = value
            elif name == b"content-type":
                ctype = value
            elif name == b"queue-token":
                twice = twice or queue_token is not None
                queue_token = value
        chunks = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        cmd = self.accept(auth, idem, ctype, body)
        if cmd is not None and (twice or queue_token is not None and len(queue_token) > 512):
            cmd = None  # the route answers a repeated or over-long header with its validation envelope
        if cmd is None:
            await self.app(scope, _replay(body, receive), send)
            return
        checkout_in, key, key_id = cmd
        if self.route is not None:
            scope["route"] = self.route
        if self.arrivals is not None and queue_token is None and not scope.get(LINE_PASSED):
            room = self.container.services.get("waitroom")
            if room is not None and room.guarded_sku([line.sku for line in checkout_in.lines]) is not None:
                await self.arrivals.enter()
        try:
            client = scope.get("client")
            response = await run_checkout(
                checkout_in, key, key_id, self.container,
                queue_token=None if queue_token is None else queue_token.decode("latin-1"),
                client=client[0] if client else None)
        except DomainError as exc:
            response = envelope(exc.status, exc.code, exc.message, exc.details)
        except Exception:
            log.exception("unhandled error on POST %s", PATH)
            response = envelope(500, "internal_error", "internal error; it has been logged")
        await response(scope, receive, send)

    def accept(self, auth: bytes | None, idem: bytes | None, ctype: bytes | None, body: bytes):
        """(validated body, idempotency key, key id) when this request is well formed, else None."""
        if auth is None or idem is None or ctype is None or not _is_json(ctype):
            return None
        try:
            key = idem.decode("latin-1")
            if _KEY_RE.match(key) is None:
                return None
            key_id = self.authenticator.require(auth.decode("latin-1"), _SCOPES)
            return CheckoutIn.model_validate_json(body), key, key_id
        except (DomainError, ValidationError, UnicodeDecodeError):
            return None


def _replay(body: bytes, receive):
    """A ``receive`` that hands the already-read body to the next app once, then listens to the client again."""
    sent = False

    async def replayed() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
