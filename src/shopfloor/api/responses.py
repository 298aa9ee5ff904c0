"""A fast JSON response (orjson) used as the app's default response class."""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.responses import JSONResponse


class FastJSONResponse(JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            # orjson refuses integers beyond 64 bits, which a request can carry into an error's details
            # (`?days=18446744073709551616`); the standard library writes them, so the answer stays a 4xx.
            return json.dumps(content, separators=(",", ":"), ensure_ascii=False, default=str).encode()
