"""Webhook subscribers for a game day: two real HTTP receivers in the game-day process, one answering at once and
one answering only after ``slow_s`` (past the sender's 15 s timeout when ``slow_s`` is larger). Both subscribe to
``order.placed`` and ``order.paid``. After the run the fast one must have received ``order.placed`` for every
accepted order, however the slow one behaved: a slow subscriber must hold up neither the others nor checkout."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

EVENTS = ["order.placed", "order.paid"]


class _Receiver:
    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.got: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.closing = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                at = datetime.now(timezone.utc)
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = {}
                with receiver.lock:
                    receiver.got.append({"id": self.headers.get("webhook-id"), "type": payload.get("type"),
                                         "order_id": (payload.get("data") or {}).get("order_id"),
                                         "lag_s": _lag(payload.get("timestamp"), at)})
                if receiver.delay_s:
                    receiver.closing.wait(receiver.delay_s)
                try:
                    self.send_response(204)
                    self.end_headers()
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="gameday-subscriber", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.got)


def _lag(timestamp: str | None, at: datetime) -> float | None:
    if not timestamp:
        return None
    try:
        return (at - datetime.fromisoformat(timestamp)).total_seconds()
    except ValueError:
        return None


class SubscriberPair:
    """The fast and the slow subscriber; ``subscribe(admin, server_url)`` registers both through the admin API."""

    def __init__(self, slow_s: float) -> None:
        self.fast = _Receiver(0.0)
        self.slow = _Receiver(slow_s)
        self.slow_s = slow_s

    def start(self) -> None:
        self.fast.thread.start()
        self.slow.thread.start()

    def stop(self) -> None:
        self.slow.closing.set()
        for r in (self.fast, self.slow):
            r.server.shutdown()
            r.server.server_close()

    def subscribe(self, admin, server_url: str) -> None:
        for r in (self.fast, self.slow):
            resp = admin.post(server_url + "/v1/webhook-endpoints", json={"url": r.url, "events": EVENTS})
            if resp.status_code != 201:
                raise RuntimeError(f"could not subscribe {r.url}: {resp.status_code} {resp.text[:200]}")

    def missing_at_fast(self, order_ids: list[str]) -> int:
        placed = {g["order_id"] for g in self.fast.snapshot() if g["type"] == "order.placed"}
        return sum(1 for o in set(order_ids) if o not in placed)

    def wait_for_fast(self, order_ids: list[str], timeout_s: float) -> float:
        started = time.monotonic()
        while self.missing_at_fast(order_ids) and time.monotonic() - started < timeout_s:
            time.sleep(0.5)
        return time.monotonic() - started

    def summary(self, order_ids: list[str]) -> dict[str, Any]:
        def side(r: _Receiver) -> dict[str, Any]:
            got = r.snapshot()
            lags = sorted(g["lag_s"] for g in got if g["lag_s"] is not None and g["type"] == "order.placed")
            pick = (lambda q: round(lags[min(len(lags) - 1, int(q * len(lags)))], 2)) if lags else (lambda q: None)
            return {"requests": len(got), "unique_messages": len({g["id"] for g in got}),
                    "order_placed_lag_p50_s": pick(0.5), "order_placed_lag_p99_s": pick(0.99)}

        return {"slow_answers_after_s": self.slow_s, "fast": side(self.fast), "slow": side(self.slow),
                "fast_missing_order_placed": self.missing_at_fast(order_ids)}
