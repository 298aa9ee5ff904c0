"""``shopfloor serve``'s HTTP protocol: uvicorn's httptools protocol, with the crowd's cheapest answer taken first.

A checkout of a guarded product whose answer is one of the waiting room's refusals (sold out; queued, or the rate
limit's 429, while the queue and the buckets are in this process) is answered from the bytes as they arrive
(:class:`~shopfloor.api.crowd_front.SoldOutShortcut`), before the protocol parses the request into a scope and
starts a task for it; every other request, and any request the shortcut is not sure of, is handed to uvicorn's
protocol unchanged.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: what ``uvicorn.run(http=...)`` takes (also in the worker processes of ``--workers N``)
PROTOCOL = "shopfloor.api.lean_http:CrowdHttpProtocol"


def find_shortcut(app: Any) -> Any | None:
    """The sold-out shortcut of the Shopfloor app behind ``app`` (through the wrappers' ``.app``), or None."""
    seen = 0
    while app is not None and seen < 16:
        front = getattr(app, "front", None)
        if front is not None:
            return getattr(front, "shortcut", None)
        app = getattr(app, "app", None)
        seen += 1
    return None


class CrowdHttpProtocol(HttpToolsProtocol):
    def __init__(self, config, server_state, app_state, _loop=None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.shortcut = find_shortcut(self.app)

    def data_received(self, data: bytes) -> None:
        shortcut = self.shortcut
        if (shortcut is not None and not self.pipeline and (self.cycle is None or self.cycle.response_complete)
                and self.parser is not None):
            answer = shortcut.answer(data, self.client[0] if self.client else None,
                                     self.server_state.default_headers)
            if answer is not None:
                self._unset_keepalive_if_required()
                self.transport.write(answer)
                self.server_state.total_requests += 1
                self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive,
                                                                    self.timeout_keep_alive_handler)
                return
        super().data_received(data)
