"""The crowd's routes ahead of FastAPI: ``POST /v1/checkouts`` and ``GET /v1/queue/{token}``.

In a flash crowd nearly every request is one of these two, and most are answered in a few lines (``429 queued``,
``409 sold_out``, a queue status). Measured on the real server (``bench/flash_request_cost.py``), the generic path
around them -- FastAPI's entry, Starlette's middleware stack, five ASGI middlewares each wrapping ``send`` -- cost
about as much CPU as uvicorn's own HTTP work and the answer together. This front takes the two routes before any
of that and does itself what the stack would have done for them: the body-size limit (a declared
``Content-Length`` within the route's limit; anything else goes to the stack, which answers 413 as before), the
open-read limit per address on the queue status, ``Cache-Control: no-store``, and the request metrics. The answers
come from the same handlers as before (:class:`~shopfloor.api.fast_checkout.CheckoutFastPath`,
:class:`~shopfloor.api.fast_queue.QueueStatusFastPath`), with the same error envelope; whatever they do not serve
(a malformed request, a missing key) is handed to the full stack and its FastAPI route, which stays the OpenAPI
entry. Every other request goes straight to the stack.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import deque
from typing import Any, Awaitable, Callable

from fastapi import FastAPI

from ..domain.errors import DomainError
from ..waitroom import HeldAnswer
from ..waitroom.gate import QUEUED, RATE_LIMITED, Verdict
from .errors import envelope
from .fast_checkout import PATH as CHECKOUT_PATH
from .fast_queue import PREFIX as QUEUE_PREFIX, TOKEN_RE, parse_wait
from .responses import FastJSONResponse
from .routes.checkout import refused_answer

ASGI = Callable[[dict, Any, Any], Awaitable[None]]
_HANDED_ON = "shopfloor.front.handed_on"  # set in the scope when a request went on to the full stack


class ShopfloorAPI(FastAPI):
    """FastAPI with :class:`CrowdFront` (when set) ahead of its own request handling."""

    front: "CrowdFront | None" = None

    async def __call__(self, scope, receive, send) -> None:
        front = self.front
        if front is not None and scope["type"] == "http":
            await front(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class CrowdFront:
    def __init__(self, stack: ASGI, *, checkout: Any, queue: Any | None,
                 observers: list[Callable[[str, str, int, float], None]], checkout_body_limit: int,
                 read_limits: Any | None = None) -> None:
        self.stack = stack  # the app's full handling: middleware stack, router, FastAPI routes
        self.checkout = checkout
        self.queue = queue
        self.observers = observers
        self.checkout_body_limit = checkout_body_limit
        self.read_limits = read_limits
        self.shortcut: SoldOutShortcut | None = None  # answers from the HTTP protocol (see api.lean_http)
        self.status_shortcut: QueueStatusShortcut | None = None  # queue status from the HTTP protocol

    async def handed_on(self, scope, receive, send) -> None:
        """What the handlers call for a request they do not serve: the full stack answers it (and counts it)."""
        scope[_HANDED_ON] = True
        await self.stack(scope, receive, send)

    async def __call__(self, scope, receive, send) -> None:
        path = scope["path"]
        method = scope["method"]
        if method == "POST" and path == CHECKOUT_PATH:
            handler = self.checkout
            declared = None
            for name, value in scope["headers"]:
                if name == b"content-length":
                    declared = value
                    break
            if declared is None or not declared.isdigit() or int(declared) > self.checkout_body_limit:
                await self.stack(scope, receive, send)  # chunked, or over the limit: the stack's 413 path
                return
        elif method == "GET" and self.queue is not None and path.startswith(QUEUE_PREFIX):
            handler = self.queue
        else:
            await self.stack(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def lean_send(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start" and not scope.get(_HANDED_ON):
                status = message["status"]
                headers = message.get("headers") or []
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    message["headers"] = [*headers, (b"cache-control", b"no-store")]
            await send(message)

        try:
            if handler is self.queue and self.read_limits is not None and self.read_limits.is_read(method, path):
                if getattr(handler, "route", None) is not None:
                    scope["route"] = handler.route
                client = scope.get("client")
                refusal = await self.read_limits.read(client[0] if client else None)
                if refusal is not None:
                    response = envelope(429, "too_many_requests",
                                        f"rate limit {refusal.limit}: retry after {refusal.retry_after_s} s",
                                        refusal.details(), headers={"Retry-After": str(refusal.retry_after_s)})
                    await response(scope, receive, lean_send)
                    return
            await handler(scope, receive, lean_send)
        finally:
            if not scope.get(_HANDED_ON) and self.observers:
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                elapsed = time.perf_counter() - started
                for observe in self.observers:
                    observe(template, method, status, elapsed)


_SOLD_OUT_HEAD = b"POST " + CHECKOUT_PATH.encode() + b" HTTP/1.1\r\n"
# headers the shortcuts leave to the usual way: a body they would have to read in pieces, or a connection's change
_LEFT_TO_THE_STACK = frozenset((b"transfer-encoding", b"expect", b"connection", b"upgrade"))
_CHECKOUT_HEADERS = (b"authorization", b"idempotency-key", b"content-type", b"content-length")


def _header_fields(block: bytes) -> dict[bytes, list[bytes]] | None:
    """A request's header lines (``block``: from after the request line to before the blank line) as values by
    lower-case name, in order, stripped; None when a line is not ``name: value`` (whitespace around the name
    included, which the HTTP parser refuses) or names a header in ``_LEFT_TO_THE_STACK``, which the shortcuts leave
    to the usual way."""
    fields: dict[bytes, list[bytes]] = {}
    for line in block.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if not sep or b"\n" in line or b"\r" in line:
            return None  # a bare CR or LF inside the head: the parser refuses the request (400)
        stripped = name.strip()
        if len(stripped) != len(name) or not stripped:
            return None  # whitespace around a header's name (or a folded line): the parser refuses it (400)
        name = stripped.lower()
        if name in _LEFT_TO_THE_STACK:
            return None
        values = fields.get(name)
        if values is None:
            fields[name] = [value.strip()]
        else:
            values.append(value.strip())
    return fields


def _last(fields: dict[bytes, list[bytes]], name: bytes) -> bytes | None:
    """The last value of header ``name``, as a server that keeps the last of repeated headers reads it."""
    values = fields.get(name)
    return None if values is None else values[-1]


class SoldOutShortcut:
    """The cheapest answers a flash crowd gets: checkouts of a guarded product answered from the request's bytes as
    they arrive, before uvicorn builds a request and a task for it, when the answer is one of the gate's refusals.

    - **Sold out** (``409 sold_out``): a new arrival's checkout of a product the room reads as sold out, or one with
      ``Queue-Token`` whose place the room can decide at once to be ``sold_out``
      (:meth:`WaitingRoom.sold_out_for_token_now`: a bot retrying its place after the sell-out, the notice's tail).
      Most of a crowd arrives after its product sold out (in the game day about 16,000 of its ~25,000 requests).
    - **Queued** (``429 queued``, with ``answers_queued``): a new arrival that the room would put in line, or a
      ``Queue-Token`` whose place is still waiting (:meth:`WaitingRoom.waiting_now`: the arrivals before the opening,
      bots retrying every 0.5 s), after the checkout's rate limits as the gate takes them (per key, per address; a
      refusal is the gate's ``429 too_many_requests``). Only with the queue and the buckets in this process: with
      Redis (several processes) these take the usual way.

    On the usual path uvicorn's request cycle and the ASGI layers cost about as much CPU again as the answer itself,
    during the seconds when the opening's backlog holds up everyone else. Only a request that is unambiguous goes
    this way: one whole HTTP/1.1 ``POST /v1/checkouts`` in the bytes received (declared length, no pipelined
    request behind it, no ``Expect``/``Transfer-Encoding``/``Connection: close``) that the fast path would serve
    (JSON, a valid ``Idempotency-Key``, a storefront key, a body :class:`CheckoutIn` accepts). It is answered as
    the gate would answer it (same status, body and headers, same decision counts, rate-limit refusals and bucket
    tokens; the bot watch and the metrics see it); anything else returns None and takes the usual way.
    """

    def __init__(self, room: Any, checkout: Any, watch: Any | None,
                 observers: list[Callable[[str, str, int, float], None]], body_limit: int,
                 trusted_hosts: Any | None = None, *, limits: Any | None = None, answers_sold_out: bool = True,
                 answers_queued: bool = False) -> None:
        self.room = room
        self.checkout = checkout  # the fast path: its request checks (key, body, Idempotency-Key)
        self.watch = watch
        self.observers = observers
        self.body_limit = body_limit
        self.trusted_hosts = trusted_hosts  # the proxy headers' trust (None: X-Forwarded-For is not read)
        self.limits = limits  # the gate's rate limits (the same buckets), or None when none is set
        self.answers_sold_out = answers_sold_out
        self.answers_queued = answers_queued
        self.template = getattr(getattr(checkout, "route", None), "path", None) or CHECKOUT_PATH
        self.answered: dict[str, int] = {}  # sku -> sold-out checkouts answered here
        self.queued: dict[str, int] = {}  # sku -> queued (and rate-limited) checkouts answered here
        self._bodies: dict[str, bytes] = {}
        # each guarded SKU as a JSON string (the room's products are fixed when it is built)
        self._guarded_json = tuple(json.dumps(sku).encode() for sku in room.products)

    def is_arrival(self, data: bytes) -> bool:
        """Whether ``data`` looks like a new arrival at a guarded product: a whole ``POST /v1/checkouts`` without a
        ``Queue-Token`` header whose body names a guarded SKU as a JSON string. A bytes test (nothing is parsed),
        for the order requests are served in (the protocol's arrival line), never for an answer: a wrong guess
        either way only moves a request in or out of the line, and :meth:`answer` decides as before."""
        if not data.startswith(_SOLD_OUT_HEAD):
            return False
        end = data.find(b"\r\n\r\n")
        if end < 0 or b"\nqueue-token:" in data[:end].lower():
            return False
        return any(quoted in data for quoted in self._guarded_json)

    def answer(self, data: bytes, peer: str | None, default_headers: list[tuple[bytes, bytes]]) -> bytes | None:
        """The whole HTTP answer for ``data`` (one request's bytes), or None when it must take the usual way."""
        if not data.startswith(_SOLD_OUT_HEAD):
            return None
        started = time.perf_counter()
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return None
        fields = _header_fields(data[len(_SOLD_OUT_HEAD):end])
        if fields is None:
            return None
        tokens = fields.get(b"queue-token")
        if tokens is not None and (len(tokens) > 1 or len(tokens[0]) > 512):
            return None
        token = None if tokens is None else tokens[0]
        auth, idem, ctype, length = (_last(fields, name) for name in _CHECKOUT_HEADERS)
        xff = fields.get(b"x-forwarded-for", [])
        body = data[end + 4:]
        if (length is None or not length.isdigit() or int(length) != len(body) or len(body) > self.body_limit):
            return None
        accepted = self.checkout.accept(auth, idem, ctype, body)
        if accepted is None:
            return None
        checkout_in, claim, key_id = accepted
        skus = [line.sku for line in checkout_in.lines]
        room = self.room
        sku = room.guarded_sku(skus)
        if sku is None:
            return None
        queue_token = None if token is None else token.decode("latin-1")
        if room.remaining(sku) != 0:
            if self.answers_queued:
                return self._queued(sku, skus, queue_token, claim, key_id, checkout_in, peer, xff,
                                    default_headers, started)
            return None
        if not self.answers_sold_out:
            return None
        if queue_token is None:
            room.sold_out_now(sku)  # counts the decision as the gate's would
        elif room.sold_out_for_token_now(sku, queue_token, claim) is None:
            return None  # the gate decides (a purchase under way with the place, a bad token, a shared queue)
        self._note(self._client(peer, xff), checkout_in.payment.token, skus, False)
        payload = self._bodies.get(sku)
        if payload is None:
            payload = self._bodies[sku] = envelope(409, "sold_out", f"{sku} is sold out",
                                                   [{"sku": sku, "available": 0}]).body
        head = [b"HTTP/1.1 409 Conflict"]
        head += [name + b": " + value for name, value in default_headers]
        head += [b"content-length: " + str(len(payload)).encode(), b"content-type: application/json",
                 b"cache-control: no-store"]
        self.answered[sku] = self.answered.get(sku, 0) + 1
        self._observed(409, started)
        return b"\r\n".join(head) + b"\r\n\r\n" + payload

    def _queued(self, sku: str, skus: list[str], token: str | None, claim: str, key_id: str, checkout_in: Any,
                peer: str | None, xff: list[bytes], default_headers: list[tuple[bytes, bytes]],
                started: float) -> bytes | None:
        """``429 queued`` (or the rate limit's ``429``) when the gate would answer that, else None."""
        limits = self.limits
        if limits is not None and not limits.immediate:
            return None  # the buckets are in Redis: the usual way
        queue = self.room.waiting_now(sku, token, claim)
        if queue is None:
            return None
        client = self._client(peer, xff)
        # the gate's order: the checkout's rate limits, then the room (a refused arrival takes no place)
        refusal = None if limits is None else limits.checkout_now(key_id, client)
        if refusal is not None:
            verdict = Verdict(RATE_LIMITED, refusal=refusal)
        else:
            decision = queue()
            if decision is None:  # cannot happen within one turn; the usual way decides anew
                return None
            verdict = Verdict(QUEUED, decision=decision, sku=sku)
        self._note(client, checkout_in.payment.token, skus, refusal is not None)
        response = refused_answer(verdict)
        head = [_STATUS_LINES[response.status_code]]
        head += [name + b": " + value for name, value in default_headers]
        head += [name + b": " + value for name, value in response.raw_headers]
        head.append(b"cache-control: no-store")
        self.queued[sku] = self.queued.get(sku, 0) + 1
        self._observed(response.status_code, started)
        return b"\r\n".join(head) + b"\r\n\r\n" + response.body

    def _client(self, peer: str | None, xff: list[bytes]) -> str | None:
        return _client(peer, xff, self.trusted_hosts)

    def _note(self, client: str | None, card: str | None, skus: list[str], refused: bool) -> None:
        if self.watch is None:
            return
        now, patterns = self.watch.note(client, card, skus, refused)
        if patterns:
            task = asyncio.get_running_loop().create_task(self.watch.store(now, patterns))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)

    def _observed(self, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        for observe in self.observers:
            observe(self.template, "POST", status, elapsed)


_STATUS_LINES = {200: b"HTTP/1.1 200 OK", 409: b"HTTP/1.1 409 Conflict", 429: b"HTTP/1.1 429 Too Many Requests",
                 503: b"HTTP/1.1 503 Service Unavailable"}
_STATUS_HEAD = b"GET " + QUEUE_PREFIX.encode()
_QUERY_CHARS = re.compile(rb"[!-~]*\Z")  # what a request target's query may hold as sent: printable ASCII


class QueueStatusShortcut:
    """``GET /v1/queue/{token}[?wait=S]`` answered, and held, in the HTTP protocol (the in-process queue only).

    In a flash crowd every waiting shopper holds one of these requests (up to ``waitroom_max_hold_s``), and at the
    sell-out they are all answered within a second, just when the ordinary checkouts and the last purchases need
    the event loop. On the usual path each is an ASGI request cycle and a task awaiting the room; here it is a
    future in the room (:meth:`~shopfloor.waitroom.WaitingRoom.hold_now`) and, when the answer comes, bytes
    written to the connection: the same status, body and headers (``Cache-Control: no-store``, ``Retry-After``
    when the process holds as many as it will), the same per-address read limit from the same buckets, and the
    same request metrics. Only an unambiguous request is taken (one whole HTTP/1.1 GET with no body, nothing
    pipelined behind it, no ``Connection``/``Upgrade``/``Expect``, a token of the right shape, ``wait`` absent or
    within limits, a token the room reads as ours); anything else, and everything when the queue or the buckets
    are in Redis, takes the usual way (:class:`~shopfloor.api.fast_queue.QueueStatusFastPath`).
    """

    def __init__(self, room: Any, observers: list[Callable[[str, str, int, float], None]], max_wait_s: float,
                 read_limits: Any | None = None, trusted_hosts: Any | None = None, template: str | None = None) -> None:
        self.room = room
        self.observers = observers
        self.max_wait_s = max_wait_s
        self.read_limits = read_limits
        self.trusted_hosts = trusted_hosts
        self.template = template or QUEUE_PREFIX + "{token}"
        self.answered = 0  # status requests answered here at once
        self.held = 0  # status requests held here (answered later from a loop callback)

    def answer(self, data: bytes, peer: str | None, default_headers: list[tuple[bytes, bytes]],
               later: Callable[[bytes], None]) -> "bytes | HeldRequest | None":
        """The whole HTTP answer for ``data`` now, a :class:`HeldRequest` (its answer goes to ``later``), or None
        when the request must take the usual way."""
        if not data.startswith(_STATUS_HEAD):
            return None
        started = time.perf_counter()
        end = data.find(b"\r\n\r\n")
        line_end = data.find(b"\r\n")
        if end < 0 or end + 4 != len(data):
            return None
        parts = data[:line_end].split(b" ")
        if len(parts) != 3 or parts[2] != b"HTTP/1.1":
            return None
        path, _, query = parts[1].partition(b"?")
        if query and _QUERY_CHARS.match(query) is None:
            return None  # a control character or a bare LF in the query: the parser's answer (400)
        fields = _header_fields(data[line_end + 2:end]) if end > line_end else {}
        if fields is None or any(length != b"0" for length in fields.get(b"content-length", ())):
            return None
        xff = fields.get(b"x-forwarded-for", [])
        token = path[len(QUEUE_PREFIX):].decode("latin-1")
        if len(token) > 512 or TOKEN_RE.match(token) is None:
            return None
        wait_s = parse_wait(query, self.max_wait_s)
        if wait_s is None:
            return None
        limits = self.read_limits
        if limits is not None and limits.is_read("GET", path.decode("latin-1")):
            if not limits.immediate:
                return None
            refusal = limits.read_now(_client(peer, xff, self.trusted_hosts))
            if refusal is not None:
                self.answered += 1
                return self._render(envelope(429, "too_many_requests",
                                             f"rate limit {refusal.limit}: retry after {refusal.retry_after_s} s",
                                             refusal.details(), headers={"Retry-After": str(refusal.retry_after_s)}),
                                    default_headers, started)
        try:
            held = self.room.hold_now(token, wait_s,
                                      lambda answer: later(self._held_answer(answer, default_headers, started)))
        except DomainError:
            return None  # not our token, or for no guarded product: the usual way answers with its envelope
        if held is None:
            return None
        if isinstance(held, HeldAnswer):
            self.answered += 1
            return self._held_answer(held, default_headers, started)
        self.held += 1
        return HeldRequest(held, started, default_headers, self)

    def _held_answer(self, answer: HeldAnswer | None, default_headers: list[tuple[bytes, bytes]],
                     started: float) -> bytes:
        if answer is None:
            response = envelope(503, "service_unavailable", "the waiting room is unavailable; ask again after "
                                "Retry-After (your place is kept)", [{"field": "token"}], headers={"Retry-After": "2"})
        else:
            response = FastJSONResponse(answer.status, headers=None if answer.retry_after_s is None
                                        else {"Retry-After": str(answer.retry_after_s)})
        return self._render(response, default_headers, started)

    def _render(self, response: Any, default_headers: list[tuple[bytes, bytes]], started: float) -> bytes:
        head = [_STATUS_LINES[response.status_code]]
        head += [name + b": " + value for name, value in default_headers]
        head += [name + b": " + value for name, value in response.raw_headers]
        head.append(b"cache-control: no-store")
        elapsed = time.perf_counter() - started
        for observe in self.observers:
            observe(self.template, "GET", response.status_code, elapsed)
        return b"\r\n".join(head) + b"\r\n\r\n" + response.body


class HeldRequest:
    """A status request :class:`QueueStatusShortcut` holds for a connection: :meth:`cancel` when the client went
    away, :meth:`answer_now` (the bytes) when the client sent more before its answer came."""

    __slots__ = ("hold", "started", "default_headers", "shortcut")

    def __init__(self, hold: Any, started: float, default_headers: list[tuple[bytes, bytes]],
                 shortcut: QueueStatusShortcut) -> None:
        self.hold = hold
        self.started = started
        self.default_headers = default_headers
        self.shortcut = shortcut

    def cancel(self) -> None:
        self.hold.cancel()

    def answer_now(self) -> bytes:
        try:
            answer = self.hold.answer_now()
        except Exception:  # noqa: BLE001 - the stock read failed: 503, the shopper asks again
            answer = None
        return self.shortcut._held_answer(answer, self.default_headers, self.started)


def _client(peer: str | None, xff: list[bytes], trusted_hosts: Any | None) -> str | None:
    """The client's address as the proxy headers' middleware reads it (``X-Forwarded-For`` from trusted peers)."""
    if xff and trusted_hosts is not None and peer in trusted_hosts:
        return trusted_hosts.get_trusted_client_address(b", ".join(xff).decode("latin-1"))[0]
    return peer


_BACKGROUND: set = set()  # alert writes started from a protocol callback, kept until done


class ArrivalLane:
    """A line for a flash crowd's new arrivals: at most ``per_turn`` of them go on per event-loop turn, the rest
    wait in line (first come, first served) while the loop runs everything else that is ready.

    A crowd's new arrivals (checkouts of a guarded product without ``Queue-Token``) are most of its requests, and
    each is answered in one step (``429 queued``, ``409 sold_out``). An admitted checkout, an ordinary shopper's
    checkout or a held status request needs several steps (the buy path's awaits), and each step waited behind
    every arrival that came in meanwhile: a backlog of arrivals multiplied into seconds for them. With the line,
    a step of theirs waits behind at most ``per_turn`` arrivals; the arrivals still get whatever CPU the rest
    leaves, and they are answered in the order they came. Costs an idle server one extra loop turn per arrival
    only when more than ``per_turn`` arrive within one turn.

    Two kinds of arrivals share the line and its count: a request task's (:meth:`enter`, the ASGI path) and a
    request the HTTP protocol answers itself (:meth:`defer`: the protocol's sold-out and queued answers, which would
    otherwise all run inside the loop's I/O pass as their bytes arrive).
    """

    def __init__(self, per_turn: int) -> None:
        if per_turn < 1:
            raise ValueError("per_turn must be >= 1")
        self.per_turn = per_turn
        self._line: deque[asyncio.Future | Callable[[], bool]] = deque()
        self._passed = 0  # arrivals let on in the current turn
        self._scheduled = False
        self.waited = 0  # arrivals that had to wait in line (for tests and metrics)

    @property
    def waiting(self) -> int:
        return len(self._line)

    async def enter(self) -> None:
        """Return when this arrival may go on."""
        if self._room_now():
            return
        future = asyncio.get_running_loop().create_future()
        self._wait(future)
        await future

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._turn)

    def defer(self, serve: Callable[[], bool]) -> None:
        """Run ``serve`` (a protocol's answer to a request it holds) now if this turn has room, else in its turn.
        ``serve`` returns whether it served anything: one whose client left while it waited (False) does not use
        a place in its turn, as a request task that left does not."""
        if self._room_now():
            serve()
        else:
            self._wait(serve)

    def _room_now(self) -> bool:
        """Whether an arrival may go on in this turn (nobody waits and the turn has room); counts it if so."""
        if self._line or self._passed >= self.per_turn:
            return False
        self._passed += 1
        self._schedule()
        return True

    def _wait(self, entry: "asyncio.Future | Callable[[], bool]") -> None:
        self._line.append(entry)
        self.waited += 1
        self._schedule()

    def _turn(self) -> None:
        self._scheduled = False
        self._passed = 0
        line = self._line
        while line and self._passed < self.per_turn:
            entry = line.popleft()
            if isinstance(entry, asyncio.Future):
                if not entry.done():  # the client went away (its task was cancelled): nobody to let on
                    entry.set_result(None)
                    self._passed += 1
                continue
            try:
                served = entry()
            except Exception as exc:  # one request's failure must not stall the line behind it
                served = True
                asyncio.get_running_loop().call_exception_handler(
                    {"message": "arrival line: serving a request failed", "exception": exc})
            if served:
                self._passed += 1
        if line or self._passed:
            self._schedule()
