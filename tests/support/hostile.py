"""Hostile values and the places of a JSON document to put them: for sweeps that replace each field of a valid
request (or agent line) in turn and check that the answer is a clear refusal or a sane acceptance."""

from __future__ import annotations

import copy
from typing import Any, Iterator

#: What a careless or hostile client sends in place of a field's value.
HOSTILE_VALUES: list[Any] = [
    None, "", "x" * 5000, "a\u0000b", "\U0001f600", -1, 0, 1.5, 1e308, -1e308, 2**63, 2**64, True, [], {}, [1],
    {"a": 1}, "2026-13-45", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "9999-12-31", "0001-01-01",
    "../../etc/passwd", "' OR 1=1 --",
]


def places(doc: Any, at: tuple = (), *, items_per_list: int | None = None) -> Iterator[tuple]:
    """Every place in a JSON document (a path of keys and indices), the document itself first; with
    ``items_per_list``, only that many items of each list."""
    yield at
    if isinstance(doc, dict):
        children = list(doc.items())
    elif isinstance(doc, list):
        children = list(enumerate(doc[:items_per_list] if items_per_list is not None else doc))
    else:
        children = []
    for key, value in children:
        yield from places(value, at + (key,), items_per_list=items_per_list)


def replaced(doc: Any, at: tuple, value: Any = None, *, drop: bool = False) -> Any:
    """A copy of ``doc`` with the value at ``at`` replaced by ``value`` (or left out with ``drop``)."""
    if not at:
        return value
    out = copy.deepcopy(doc)
    parent = out
    for key in at[:-1]:
        parent = parent[key]
    if drop:
        del parent[at[-1]]
    else:
        parent[at[-1]] = value
    return out


def variants(doc: Any, at: tuple, values: list[Any] = HOSTILE_VALUES) -> list[tuple[str, Any]]:
    """``(label, document)`` for each hostile value at ``at``, and the document with it left out."""
    out = [(repr(v)[:40], replaced(doc, at, v)) for v in values]
    if at:
        out.append(("<left out>", replaced(doc, at, drop=True)))
    return out
