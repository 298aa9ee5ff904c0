"""A real HTTP webhook receiver on 127.0.0.1, in a thread: each path answers its own way (succeeds, fails, hangs,
answers 410 or 429 with Retry-After) and every request is recorded with its headers and raw body."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)


class Receiver:
    """``url(path)``: ``/ok`` 200, ``/fail`` 500, ``/bad`` 400, ``/slow`` sleeps ``slow_s`` then 200,
    ``/gone`` 410, ``/busy`` 429 with ``Retry-After: 7``, ``/flaky`` 503 once then 200."""

    def __init__(self, slow_s: float = 3.0) -> None:
        self.slow_s = slow_s
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._flaky_seen = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._lock:
                    receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                      body))
                status, headers = 200, {}
                if self.path == "/fail":
                    status = 500
                elif self.path == "/bad":
                    status = 400
                elif self.path == "/gone":
                    status = 410
                elif self.path == "/busy":
                    status, headers = 429, {"Retry-After": "7"}
                elif self.path == "/flaky":
                    with receiver._lock:
                        receiver._flaky_seen += 1
                        first = receiver._flaky_seen == 1
                    status, headers = (503, {"Retry-After": "2"}) if first else (200, {})
                elif self.path == "/slow":
                    time.sleep(receiver.slow_s)
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up (timeout) before we answered

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Receiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def on(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]
