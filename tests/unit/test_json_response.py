"""The API's JSON response writes what the request carried, even numbers orjson cannot."""

from __future__ import annotations

import json

from shopfloor.api.responses import FastJSONResponse


def test_an_integer_beyond_64_bits_is_written_instead_of_failing_the_response():
    body = FastJSONResponse({"error": {"details": [{"field": "days", "got": 2**64}]}}).body
    assert json.loads(body) == {"error": {"details": [{"field": "days", "got": 18446744073709551616}]}}


def test_ordinary_content_is_written_compactly():
    assert FastJSONResponse({"a": [1, 2.5, "x"]}).body == b'{"a":[1,2.5,"x"]}'
