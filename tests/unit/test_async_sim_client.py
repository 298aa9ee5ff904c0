"""The simulator clients' event-loop calls (``HttpProcessor.*_async``, ``HttpRateQuoter.quote_async``) against a
scripted HTTP server on the same loop: kept connections, a kept connection the server dropped, a stall cut off at
the caller's timeout, nothing listening, and the gateway's error answers mapped to the protocol's errors."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from shopfloor.orders.shipping import RateServiceError
from shopfloor.payments import (
    AttemptKeyCancelled,
    ConnectionRefused,
    ProcessorTimeout,
    ProcessorUnavailable,
)
from shopfloor.runtime import free_port
from shopfloor.simulators import HttpProcessor, HttpRateQuoter

APPROVED = {"approved": True, "reference": "ch_1", "decline_reason": None}


class Gateway:
    """Answers each request with the next scripted (status, body, action); action ``close`` drops the connection
    after answering, ``stall`` never answers."""

    def __init__(self, script):
        self.script = list(script)
        self.connections = 0
        self.requests: list[tuple[str, dict[str, str], bytes]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                headers = dict(line.split(": ", 1) for line in lines[1:] if line)
                body = await reader.readexactly(int(headers.get("Content-Length", 0)))
                self.requests.append((lines[0], headers, body))
                status, doc, action = self.script.pop(0) if self.script else (200, APPROVED, None)
                if action == "stall":
                    await asyncio.sleep(10)
                    return
                payload = orjson.dumps(doc)
                writer.write(b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                             % (status, len(payload), payload))
                await writer.drain()
                if action == "close":
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return


async def _serve(gateway: Gateway):
    port = free_port()
    server = await asyncio.start_server(gateway.handle, "127.0.0.1", port)
    return server, f"http://127.0.0.1:{port}"


def run(coro):
    return asyncio.run(coro)


def test_async_calls_reuse_one_kept_connection_and_send_the_idempotency_key():
    async def go():
        gw = Gateway([])
        server, url = await _serve(gw)
        async with server:
            p = HttpProcessor("primary", url)
            a = await p.authorize_async("k1", 100, "USD", "tok", "o1", timeout_s=1)
            b = await p.authorize_async("k1", 100, "USD", "tok", "o1", timeout_s=1)
        return gw, a, b

    gw, a, b = run(go())
    assert a.approved and b.reference == "ch_1"
    assert gw.connections == 1
    assert [r[1]["Idempotency-Key"] for r in gw.requests] == ["k1", "k1"]
    assert orjson.loads(gw.requests[0][2])["amount"] == 100


def test_a_kept_connection_the_server_dropped_while_idle_is_replaced_and_the_call_answered():
    async def go():
        gw = Gateway([(200, APPROVED, "close"), (200, APPROVED, None)])
        server, url = await _serve(gw)
        async with server:
            p = HttpProcessor("primary", url)
            await p.authorize_async("k1", 100, "USD", "tok", "o1", timeout_s=1)
            await asyncio.sleep(0.05)  # the server's close reaches the client while the connection is idle
            second = await p.authorize_async("k2", 100, "USD", "tok", "o2", timeout_s=1)
        return gw, second

    gw, second = run(go())
    assert second.approved and gw.connections == 2


def test_a_stalled_answer_ends_at_the_callers_timeout_as_an_unknown_outcome():
    async def go():
        gw = Gateway([(200, APPROVED, "stall")])
        server, url = await _serve(gw)
        async with server:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            with pytest.raises(ProcessorTimeout):
                await HttpProcessor("primary", url).authorize_async("k1", 100, "USD", "tok", "o1", timeout_s=0.2)
            return loop.time() - t0

    assert run(go()) < 1.0


def test_nothing_listening_is_certainly_not_charged_on_the_loop_too():
    async def go():
        with pytest.raises(ConnectionRefused):
            await HttpProcessor("primary", f"http://127.0.0.1:{free_port()}").authorize_async(
                "k1", 100, "USD", "tok", "o1", timeout_s=1)
        with pytest.raises(RateServiceError) as err:
            await HttpRateQuoter(f"http://127.0.0.1:{free_port()}").quote_async("US", "94107", 1000, timeout_s=1)
        assert err.value.reason == "unavailable"

    run(go())


def test_the_gateways_error_answers_map_to_the_protocols_errors_and_status_and_void_work():
    async def go():
        gw = Gateway([
            (503, {"error": "unavailable", "message": "down"}, None),
            (409, {"error": "key_cancelled", "message": "cancelled"}, None),
            (200, {"processor": "primary", "idempotency_key": "k/1", "found": False}, None),
            (200, {"approved": True, "reference": None, "decline_reason": None}, None),
            (200, {"amount": 500, "currency": "USD", "days": 3, "carrier": "ups", "service": "ground"}, None),
        ])
        server, url = await _serve(gw)
        async with server:
            p = HttpProcessor("primary", url)
            with pytest.raises(ProcessorUnavailable):
                await p.authorize_async("k1", 100, "USD", "tok", "o1", timeout_s=1)
            with pytest.raises(AttemptKeyCancelled):
                await p.authorize_async("k1", 100, "USD", "tok", "o1", timeout_s=1)
            status = await p.status_async("k/1", timeout_s=1)
            voided = await p.void_async("k/1", timeout_s=1)
            quote = await HttpRateQuoter(url).quote_async("US", "94107", 1000, timeout_s=1)
        return gw, status, voided, quote

    gw, status, voided, quote = run(go())
    assert status.found is False and voided.approved and quote.amount == 500
    assert gw.requests[2][0].startswith("GET /v1/processors/primary/charges/k%2F1?timeout_s=1 ")
