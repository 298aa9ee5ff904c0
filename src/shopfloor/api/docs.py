"""``/docs``: Swagger UI served from the package (it works offline), and an OpenAPI document that says how to
authenticate (an ``Authorize`` button) and which errors each protected operation can answer.

Swagger UI's files are vendored from npm in ``static/vendor/swagger-ui`` (see the README there); nothing comes
from a CDN.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles

from .errors import ErrorEnvelope

SWAGGER_DIR = Path(__file__).resolve().parent / "static" / "vendor" / "swagger-ui"
#: The security scheme's name (``api/deps.py`` declares it on every ``require_scope`` dependency).
SCHEME = "apiKey"
AUTH_ERRORS = {
    "401": "unauthorized: the Authorization header is missing, malformed, or names an unknown or revoked key",
    "403": "forbidden: the key lacks the scope this operation needs (details name required and granted scopes)",
}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus, on each operation that needs a key, the scopes in words and its 401 and 403 with
    the error envelope."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    envelope_schema = ErrorEnvelope.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(envelope_schema.pop("$defs", {}))
    schemas.setdefault("ErrorEnvelope", envelope_schema)
    envelope_ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}}
    fastapi_422 = "#/components/schemas/HTTPValidationError"
    for path_item in doc.get("paths", {}).values():
        for op in path_item.values():
            # FastAPI documents its own validation body ({"detail": [...]}); the error handlers answer 422 with the
            # envelope, each bad field in its details
            bad = op.get("responses", {}).get("422")
            if bad is not None and (bad.get("content", {}).get("application/json", {}).get("schema", {})
                                    .get("$ref") == fastapi_422):
                op["responses"]["422"] = {
                    "description": "validation_error (or malformed_json): the message names the first bad field, "
                                   "the details every one", **envelope_ref}
            scopes = sorted({s for req in op.get("security", []) for s in req.get(SCHEME, [])})
            if not scopes:
                continue
            op["description"] = (op.get("description", "") + "\n\nNeeds an API key with the scope "
                                 + " or ".join(f"`{s}`" for s in scopes) + ".").strip()
            responses = op.setdefault("responses", {})
            for status, text in AUTH_ERRORS.items():
                responses.setdefault(status, {"description": text, **envelope_ref})
    if fastapi_422 not in json.dumps(doc):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    app.openapi_schema = doc
    return doc


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` from the vendored Swagger UI and replace ``app.openapi`` with :func:`build_openapi`.

    The app must be created with ``docs_url=None`` (FastAPI's own page loads Swagger UI from a CDN)."""
    app.mount("/docs/static", StaticFiles(directory=SWAGGER_DIR), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request):
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + app.openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{root}/docs/static/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/docs/static/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs/static/favicon-32x32.png",
            swagger_ui_parameters={"persistAuthorization": True, "displayRequestDuration": True,
                                   "validatorUrl": None},  # the default badge asks validator.swagger.io
        )

    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
