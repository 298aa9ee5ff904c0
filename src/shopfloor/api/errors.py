"""One place that maps exceptions to the error envelope ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import logging

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .responses import FastJSONResponse

from ..domain.errors import DomainError
from ..store.engine import is_read_only

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    406: "not_acceptable", 409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type",
    422: "validation_error", 429: "too_many_requests",
}


class ErrorBody(BaseModel):
    code: str = Field(description="A stable snake_case code to branch on.", examples=["out_of_stock"])
    message: str = Field(description="For people; names the field or header at fault.",
                         examples=["not enough stock for: A1"])
    details: list[dict[str, Any]] = Field(description="Structured data: the field, sku, warehouse, available, ...",
                                          examples=[[{"sku": "A1", "requested": 6, "available": 5}]])


class ErrorEnvelope(BaseModel):
    """Every error, whatever its status: ``{"error": {"code", "message", "details"}}``."""

    error: ErrorBody


def error_responses(descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for a route: each status with its description and the error envelope's schema."""
    return {status: {"model": ErrorEnvelope, "description": text} for status, text in descriptions.items()}


def envelope(status: int, code: str, message: str, details: list | None = None, headers=None) -> FastJSONResponse:
    return FastJSONResponse(
        {"error": {"code": code, "message": message, "details": details or []}}, status_code=status, headers=headers
    )


def _field_name(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or ".".join(str(p) for p in loc)


def _not_json(request: Request, exc: RequestValidationError) -> str | None:
    """What the request's Content-Type said when a JSON body was refused for want of the right header (``curl -d``
    sends ``application/x-www-form-urlencoded`` unless told otherwise; ``"none"`` when the header is missing), so
    the answer can name the header instead of "Input should be a valid dictionary". A body without the header is
    not read as JSON: a browser can send such a body cross-site without asking first."""
    ctype = request.headers.get("content-type", "")
    media = ctype.split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return None
    if any(tuple(err.get("loc", ())) == ("body",) and err.get("type") != "missing" for err in exc.errors()):
        return ctype or "none"
    return None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError):
        return envelope(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        wrong_type = _not_json(request, exc)
        if wrong_type is not None:
            return envelope(
                415, "unsupported_media_type",
                f"Content-Type: send the body as JSON with the header 'Content-Type: application/json' "
                f"(this request's Content-Type: {wrong_type})",
                [{"field": "Content-Type", "expected": "application/json", "got": wrong_type}],
            )
        details = []
        for err in exc.errors():
            field = "body" if err.get("type") == "json_invalid" else _field_name(err.get("loc", ()))
            details.append({"field": field, "message": err.get("msg", ""), "type": err.get("type", "")})
        code = "malformed_json" if any(d["type"] == "json_invalid" for d in details) else "validation_error"
        first = details[0] if details else {"field": "body", "message": "invalid request"}
        return envelope(422, code, f"{first['field']}: {first['message']}", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        unparsable = _unparsable_body(exc)
        if unparsable is not None:
            return envelope(422, "malformed_json", f"body: {unparsable}",
                            [{"field": "body", "message": unparsable, "type": "json_invalid"}])
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        # BodyTooLarge and NulCharacter (api.middleware) carry their details
        return envelope(exc.status_code, code, str(exc.detail), getattr(exc, "details", None),
                        headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):  # pragma: no cover - safety net
        # Outside BodySizeLimitMiddleware only (an exception in an outer middleware): inside it, that middleware
        # answers with the same function and the exception goes no further.
        return unexpected_error_response(exc, request.scope)


#: FastAPI's answer when reading a JSON body raised something other than a JSON syntax error.
_FASTAPI_BODY_ERROR = "There was an error parsing the body"


def _unparsable_body(exc: StarletteHTTPException) -> str | None:
    """What was wrong with a JSON body FastAPI could not read (its own answer is a bare 400 ``There was an error
    parsing the body``), or None for any other HTTP exception. The README promises 422 ``malformed_json``."""
    if exc.status_code != 400 or exc.detail != _FASTAPI_BODY_ERROR:
        return None
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return f"not valid UTF-8 (byte {cause.start}); send JSON in UTF-8"
    if isinstance(cause, RecursionError):
        return "the JSON is nested too deeply"
    return "not valid JSON"


def unexpected_error_response(exc: Exception, scope: dict[str, Any]) -> FastJSONResponse:
    """The answer to an exception nothing else handled: 503 ``read_only_region`` when a write reached a standby,
    else 500 ``internal_error``, logged once with its traceback. The statement's parameters (customer data, secrets)
    are left out of the log."""
    if is_read_only(exc):  # a write reached a standby: this region is not the primary
        return envelope(503, "read_only_region", "this region's database is a standby: it takes no writes "
                        "until a failover promotes it", headers={"Retry-After": "5"})
    from sqlalchemy.exc import StatementError

    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, StatementError):
            link.hide_parameters = True
        link = link.__cause__ or link.__context__
    log.error("unhandled error on %s %s", scope.get("method"), scope.get("path"), exc_info=exc)
    return envelope(500, "internal_error", "internal error; it has been logged")
