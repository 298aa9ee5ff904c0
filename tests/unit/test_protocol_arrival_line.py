"""The HTTP protocol's arrival line: a crowd's new arrivals that the protocol answers itself wait in the arrival line
(at most ``per_turn`` answered per event-loop turn, first come first served), while every other request on the
loop is served as its bytes arrive; a connection's later bytes stay behind its waiting request."""

from __future__ import annotations

import asyncio

from uvicorn.config import Config
from uvicorn.server import ServerState

from shopfloor.api.crowd_front import ArrivalLane
from shopfloor.api.lean_http import CrowdHttpProtocol


class _Transport:
    def __init__(self, log: list, name: str) -> None:
        self.log, self.name, self.closing = log, name, False

    def get_extra_info(self, key, default=None):
        return {"peername": ("10.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(key, default)

    def write(self, data: bytes) -> None:
        self.log.append((self.name, data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def set_write_buffer_limits(self, *a, **kw) -> None:
        pass

    def pause_reading(self) -> None:
        self.log.append((self.name, "paused"))

    def resume_reading(self) -> None:
        self.log.append((self.name, "resumed"))


class _Shortcut:
    """Answers every request itself; a request naming HOT is a new arrival."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def is_arrival(self, data: bytes) -> bool:
        return b"HOT" in data

    def answer(self, data: bytes, peer, default_headers) -> bytes | None:
        self.seen.append(data)
        return b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\n\r\n" + data.split(b" ")[1]


def _request(what: str) -> bytes:
    return f"POST /{what} HTTP/1.1\r\nhost: shop\r\ncontent-length: 0\r\n\r\n".encode()


def _protocols(loop, n: int, per_turn: int, log: list) -> list[CrowdHttpProtocol]:
    class Front:
        shortcut = _Shortcut()
        status_shortcut = None
        arrivals = ArrivalLane(per_turn)

    class App:
        front = Front()

    config = Config(app=App(), http="shopfloor.api.lean_http:CrowdHttpProtocol")
    config.load()
    state = ServerState()
    out = []
    for i in range(n):
        protocol = CrowdHttpProtocol(config, state, {}, _loop=loop)
        protocol.connection_made(_Transport(log, f"c{i}"))
        out.append(protocol)
    return out


def test_arrivals_wait_their_turn_in_order_while_other_requests_are_answered_as_they_arrive():
    log: list = []

    async def scene():
        loop = asyncio.get_running_loop()
        conns = _protocols(loop, 7, 2, log)
        # one pass over the ready sockets: five arrivals, then an ordinary request
        for i, conn in enumerate(conns[:5]):
            conn.data_received(_request(f"HOT{i}"))
        conns[5].data_received(_request("A1"))
        answered_in_the_pass = [name for name, _ in log]
        turns = []
        for _ in range(4):
            await asyncio.sleep(0)
            turns.append([name for name, _ in log])
        return answered_in_the_pass, turns, conns

    in_pass, turns, conns = asyncio.run(scene())
    assert in_pass == ["c0", "c1", "c5"]  # two arrivals had room in this turn; the ordinary request did not wait
    assert turns[0] == ["c0", "c1", "c5", "c2", "c3"]  # next turn: the next two, first come first served
    assert turns[1] == ["c0", "c1", "c5", "c2", "c3", "c4"]
    assert [data.rsplit(b"\r\n\r\n", 1)[1] for _, data in log] == [b"/HOT0", b"/HOT1", b"/A1", b"/HOT2", b"/HOT3",
                                                                      b"/HOT4"]
    assert conns[0].waiting is None and conns[4].waiting is None


def _second_waits(n: int, log: list) -> list[CrowdHttpProtocol]:
    """``n`` connections on a line of one per turn: the first arrival takes the turn's room, the second waits."""
    conns = _protocols(asyncio.get_running_loop(), n, 1, log)
    conns[0].data_received(_request("HOT0"))
    conns[1].data_received(_request("HOT1"))
    return conns


def test_a_connections_later_bytes_stay_behind_its_waiting_request_and_a_closed_one_gets_no_answer():
    log: list = []

    async def scene():
        conns = _second_waits(3, log)
        conns[1].data_received(b"more")  # the client sent more: kept behind its request
        conns[2].data_received(_request("HOT2"))  # waits
        conns[2].transport.closing = True
        conns[2].connection_lost(None)  # the client went away while it waited
        for _ in range(3):
            await asyncio.sleep(0)
        return conns

    conns = asyncio.run(scene())
    assert [name for name, _ in log] == ["c0", "c1"]
    shortcut = conns[0].shortcut
    assert shortcut.seen == [_request("HOT0"), _request("HOT1") + b"more"]  # served with what came after it


def test_a_client_that_keeps_sending_while_it_waits_is_not_read_until_its_turn():
    from shopfloor.api.lean_http import WAITING_HIGH_WATER

    log: list = []

    async def scene():
        conns = _second_waits(2, log)
        conns[1].data_received(b"x" * (WAITING_HIGH_WATER + 1))
        paused_while_waiting = list(log)
        await asyncio.sleep(0)
        return paused_while_waiting

    paused_while_waiting = asyncio.run(scene())
    assert ("c1", "paused") in paused_while_waiting and ("c1", "resumed") not in paused_while_waiting
    assert log.index(("c1", "resumed")) < next(i for i, (name, data) in enumerate(log)
                                               if name == "c1" and isinstance(data, bytes))
