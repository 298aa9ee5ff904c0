"""Loop CPU per simulator call, paired A/B: the hand-rolled HTTP/1.1 client on asyncio transports + httptools that
the simulator clients' ``*_async`` methods use (``_AsyncTransport`` in src/shopfloor/simulators/client.py,
imported) against the same contract on aiohttp (one ``ClientSession`` per loop, a
keep-alive ``TCPConnector``), both in the same run against one ``shopfloor simulate serve`` process, rate quotes
(POST /v1/rates/quote) at ``--concurrency`` calls in flight. Needs the ``dev`` extra (aiohttp).

CPU is the bench process's own CPU time (``time.process_time``: the loop's work; the simulator runs in another
process) divided by the calls made. Each round runs both clients, in alternating order; the JSON gives the median
over the rounds of each client's CPU-us per call and of the per-round ratio aiohttp / hand-rolled.

    PYTHONPATH=src python bench/sim_client_cost.py [--rounds 7] [--calls 4000] [--concurrency 64] [--port 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

import aiohttp
import httptools
import orjson
import yarl

from shopfloor.runtime import SimulatorProcess
from shopfloor.simulators.client import _AsyncTransport
from shopfloor.store.migrate import upgrade_database

BODY = {"country": "US", "postal_code": "94107", "weight_g": 1000, "timeout_s": 2.0}


# --- baseline: the hand-rolled client the simulator clients use -------------------------------------------
HandRolledTransport = _AsyncTransport


# --- candidate: aiohttp, the same contract --------------------------------------------------------------------
class AiohttpTransport:
    """aiohttp: one :class:`aiohttp.ClientSession` per event loop for one base URL (a keep-alive connection pool
    sized for the checkout's concurrency), for the ``*_async`` calls. A loop's session is closed when the loop
    shuts down (``asyncio.run``, the server's exit: its async generators are finalized) or by :meth:`aclose`."""

    #: Connections per loop at most (a call beyond it waits for one, within its timeout).
    limit = 256

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[aiohttp.ClientSession, Any]] = \
            weakref.WeakKeyDictionary()

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        entry = self._sessions.get(loop)
        if entry is not None and not entry[0].closed:
            return entry[0]
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.limit, limit_per_host=0, keepalive_timeout=30.0),
            # the caller's timeout_s bounds each call (asyncio.timeout below): no second timer per request
            timeout=aiohttp.ClientTimeout(total=None, connect=None, sock_read=None, sock_connect=None),
            cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"))
        closer = _close_at_shutdown(session, self._sessions, loop)
        # Once started, the generator is finalized by the loop's shutdown_asyncgens(), which closes the session.
        loop.create_task(_start(closer))
        self._sessions[loop] = (session, closer)
        return session

    async def request(self, method: str, path: str, body: dict | None, headers: dict[str, str], timeout_s: float
                      ) -> tuple[int, Any]:
        """Same contract as the hand-rolled client's ``request``, awaited on the running loop."""
        session = self._session()
        payload = orjson.dumps(body) if body is not None else None
        hdrs = {"Content-Type": "application/json", **headers} if payload is not None else headers
        url = yarl.URL(self.base + path, encoded=True)  # the path is quoted by the caller
        try:
            async with asyncio.timeout(max(timeout_s, 0.001)):
                for attempt in (0, 1):
                    try:
                        async with session.request(method, url, data=payload, headers=hdrs) as resp:
                            raw = await resp.read()
                            return resp.status, orjson.loads(raw) if raw else None
                    except aiohttp.ClientConnectorError as exc:  # no connection: nothing was sent
                        raise ConnectionRefusedError(str(exc)) from exc
                    except aiohttp.ServerDisconnectedError as exc:
                        # Closed before any answer: a kept connection the server had closed while idle. Sending it
                        # again is safe (every processor call carries its Idempotency-Key; a quote changes nothing).
                        if attempt == 0:
                            continue
                        raise ConnectionError(str(exc)) from exc
                    except aiohttp.ClientError as exc:  # lost mid-answer, a malformed answer: outcome unknown
                        raise ConnectionError(str(exc)) from exc
        except TimeoutError:
            raise TimeoutError(f"no answer within {timeout_s:.3f}s") from None
        raise ConnectionError("connection lost")  # pragma: no cover - the loop returns or raises

    async def aclose(self) -> None:
        """Close the running loop's session (its kept connections)."""
        entry = self._sessions.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[0].close()


async def _close_at_shutdown(session: aiohttp.ClientSession, sessions: weakref.WeakKeyDictionary,
                             loop: asyncio.AbstractEventLoop):
    try:
        yield
    finally:
        entry = sessions.get(loop)
        if entry is not None and entry[0] is session:
            del sessions[loop]
        if not session.closed:
            await session.close()


async def _start(gen) -> None:
    await gen.__anext__()


async def _drive(transport, calls: int, concurrency: int) -> tuple[float, float]:
    """(CPU-us per call, wall-us per call) for ``calls`` quotes, ``concurrency`` in flight."""
    left = 4 * concurrency

    async def one() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            status, doc = await transport.request("POST", "/v1/rates/quote", BODY, {}, 2.0)
            assert status == 200 and doc["amount"] >= 0, (status, doc)

    await asyncio.gather(*(one() for _ in range(concurrency)))  # warm: connections opened
    left = calls
    c0, w0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(concurrency)))
    return (time.process_time() - c0) / calls * 1e6, (time.perf_counter() - w0) / calls * 1e6


async def _bench(url: str, rounds: int, calls: int, concurrency: int) -> dict[str, Any]:
    runs: dict[str, list[float]] = {"aiohttp": [], "hand_rolled": []}
    walls: dict[str, list[float]] = {"aiohttp": [], "hand_rolled": []}
    ratios = []
    hand, aio = HandRolledTransport(url), AiohttpTransport(url)
    for r in range(rounds):
        order = [("hand_rolled", hand), ("aiohttp", aio)]
        if r % 2:
            order.reverse()
        got = {}
        for name, t in order:
            cpu, wall = await _drive(t, calls, concurrency)
            got[name] = cpu
            runs[name].append(round(cpu, 1))
            walls[name].append(round(wall, 1))
        ratios.append(got["aiohttp"] / got["hand_rolled"])
    hand.close()
    await aio.aclose()
    return {
        "cpu_us_per_call": {k: round(statistics.median(v), 1) for k, v in runs.items()},
        "wall_us_per_call": {k: round(statistics.median(v), 1) for k, v in walls.items()},
        "ratio_aiohttp_over_hand_rolled": round(statistics.median(ratios), 2),
        "per_round_ratio": [round(x, 2) for x in ratios],
        "per_round_cpu_us": runs,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=4000, help="timed calls per client per round")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--port", type=int, default=0, help="the simulator's port (0: a free one)")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{Path(tmp) / 'sim.db'}"
        upgrade_database(db)
        sim = SimulatorProcess(db, port=args.port or None, log_path=Path(tmp) / "sim.log")
        sim.start(timeout=60)
        try:
            result = asyncio.run(_bench(sim.url, args.rounds, args.calls, args.concurrency))
        finally:
            sim.stop()
    print(json.dumps({
        "bench": "sim_client_cost", "endpoint": "POST /v1/rates/quote", "concurrency": args.concurrency,
        "calls_per_round": args.calls, "rounds": args.rounds, "aiohttp": aiohttp.__version__,
        "httptools": httptools.__version__, "loadavg_1m_start_end": [round(load0, 2), round(os.getloadavg()[0], 2)], **result,
    }, indent=1))


if __name__ == "__main__":
    main()
