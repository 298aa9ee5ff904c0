"""``shopfloor serve``'s HTTP protocol: uvicorn's httptools protocol, with the crowd's cheapest answer taken first.

A checkout of a guarded product whose answer is one of the waiting room's refusals (sold out; queued, or the rate
limit's 429, while the queue and the buckets are in this process) is answered from the bytes as they arrive
(:class:`~shopfloor.api.crowd_front.SoldOutShortcut`), before the protocol parses the request into a scope and
starts a task for it; so is a queue status request, held here without a task when it waits
(:class:`~shopfloor.api.crowd_front.QueueStatusShortcut`); every other request, and any request the shortcuts are
not sure of, is handed to uvicorn's protocol unchanged. With the arrival line on
(``waitroom_arrival_lane_per_turn``), a new arrival's checkout of a guarded product waits in that line before it
is answered, so that the crowd's answers take a bounded share of each loop turn
(:class:`~shopfloor.api.crowd_front.ArrivalLane`).
"""

from __future__ import annotations

import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .fast_checkout import LINE_PASSED

#: most bytes a connection's request waiting in the arrival line holds before its reading is paused (uvicorn's
#: own flow-control mark)
WAITING_HIGH_WATER = 64 * 1024
#: the answer to a request the HTTP parser refuses (what it could not read is not known past the parser's error)
_BAD_REQUEST_BODY = json.dumps({"error": {
    "code": "bad_request", "message": "invalid HTTP request: the request line or a header is malformed (a raw "
    "non-ASCII byte or a control character in the path, query or a header; percent-encode them)",
    "details": [{"field": "request"}]}}, separators=(",", ":")).encode()
#: what ``uvicorn.run(http=...)`` takes (also in the worker processes of ``--workers N``)
PROTOCOL = "shopfloor.api.lean_http:CrowdHttpProtocol"


def find_front(app: Any) -> Any | None:
    """The crowd front of the Shopfloor app behind ``app`` (through the wrappers' ``.app``), or None."""
    seen = 0
    while app is not None and seen < 16:
        front = getattr(app, "front", None)
        if front is not None:
            return front
        app = getattr(app, "app", None)
        seen += 1
    return None


def find_shortcut(app: Any) -> Any | None:
    """The sold-out shortcut of the Shopfloor app behind ``app``, or None."""
    return getattr(find_front(app), "shortcut", None)


class CrowdHttpProtocol(HttpToolsProtocol):
    def __init__(self, config, server_state, app_state, _loop=None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        front = find_front(self.app)
        self.shortcut = getattr(front, "shortcut", None)
        self.status_shortcut = getattr(front, "status_shortcut", None)
        self.held = None  # a status request held for this connection (crowd_front.HeldRequest)
        self.lane = getattr(front, "arrivals", None) if self.shortcut is not None else None
        self.waiting: bytes | None = None  # a request in the arrival line, and whatever the client sent after it
        self.waiting_paused = False  # reading paused while it waits (more than WAITING_HIGH_WATER bytes held)

    def data_received(self, data: bytes) -> None:
        if self.waiting is not None:  # keep the order: behind the request that waits in line
            self.waiting += data
            if len(self.waiting) > WAITING_HIGH_WATER and not self.waiting_paused:
                self.waiting_paused = True  # a client streaming while it waits: stop reading until its turn
                self.transport.pause_reading()
            return
        held = self.held
        if held is not None:  # the client sent more before its held status request was answered: answer it first
            self.held = None
            self._answered(held.answer_now())
        lane = self.lane
        if lane is not None and self._idle() and self.shortcut.is_arrival(data):
            # a crowd's new arrival: served in the arrival line, at most its share per loop turn, so that it does not
            # hold up every step of the purchases under way (their I/O would otherwise wait for all of the crowd's
            # answers that came in meanwhile)
            self._unset_keepalive_if_required()
            self.waiting = data
            lane.defer(self._from_line)
            return
        self._serve(data, False)

    def _idle(self) -> bool:
        return not self.pipeline and (self.cycle is None or self.cycle.response_complete) and self.parser is not None

    def _from_line(self) -> bool:
        data, self.waiting = self.waiting, None
        if data is None or self.transport is None or self.transport.is_closing():
            return False  # the client went away while it waited: its place in the turn goes to the next one
        if self.waiting_paused:
            self.waiting_paused = False
            self.transport.resume_reading()
        self._serve(data, True)
        return True

    def _serve(self, data: bytes, lined: bool) -> None:
        if self._idle():
            peer = self.client[0] if self.client else None
            shortcut = self.shortcut
            if shortcut is not None:
                answer = shortcut.answer(data, peer, self.server_state.default_headers)
                if answer is not None:
                    self._unset_keepalive_if_required()
                    self._answered(answer)
                    return
            status = self.status_shortcut
            if status is not None:
                answer = status.answer(data, peer, self.server_state.default_headers, self._answered_later)
                if answer is not None:
                    self._unset_keepalive_if_required()
                    if isinstance(answer, bytes):
                        self._answered(answer)
                    else:  # held: no keep-alive timer until it is answered
                        self.held = answer
                    return
        super().data_received(data)
        if lined and self.cycle is not None:  # the request task the parser just started: it has waited its turn
            self.cycle.scope[LINE_PASSED] = True

    def _answered(self, answer: bytes) -> None:
        self.transport.write(answer)
        self.server_state.total_requests += 1
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def _answered_later(self, answer: bytes) -> None:
        """A held status request's answer (from a loop callback)."""
        if self.held is None:
            return
        self.held = None
        if not self.transport.is_closing():
            self._answered(answer)

    def send_400_response(self, msg: str) -> None:
        """A request the HTTP parser refuses (a raw non-ASCII byte or a control character in the request line, a
        malformed header): uvicorn's 400, in the API's error envelope rather than as plain text, and the connection
        closed as uvicorn closes it."""
        body = _BAD_REQUEST_BODY
        head = [b"HTTP/1.1 400 Bad Request"]
        head += [name + b": " + value for name, value in self.server_state.default_headers]
        head += [b"content-type: application/json", b"content-length: " + str(len(body)).encode(),
                 b"cache-control: no-store", b"connection: close"]
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.waiting = None
        held, self.held = self.held, None
        if held is not None:
            held.cancel()
        super().connection_lost(exc)
