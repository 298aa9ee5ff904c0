"""Actions that leave the process: cache warming and webhooks through a real httpx client, mail through SMTP."""

from __future__ import annotations

import socket
from datetime import datetime, timezone

import httpx

from shopfloor.domain.clock import FixedClock
from shopfloor.tower.actions import (
    AlertAction,
    InMemoryActionLog,
    RuleEngine,
    SmtpMailer,
    StaticSignals,
    WarmCachesAction,
)
from shopfloor.tower.rules import parse_rules

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)


def test_warming_and_webhooks_go_through_httpx_and_partial_failures_are_recorded():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, str(request.url)))
        if request.url.path == "/broken":
            return httpx.Response(500)
        return httpx.Response(200, json={"ok": True})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    doc = {"rules": [{"name": "surge", "when": "traffic_rpm > 100", "actions": [
        {"type": "warm_caches", "urls": ["http://shop/a", "http://shop/broken"]},
        {"type": "alert", "channel": "webhook", "url": "http://ops/hook"}]}]}
    log = InMemoryActionLog()
    engine = RuleEngine(parse_rules(doc), StaticSignals({"traffic_rpm": 150}),
                        {"warm_caches": WarmCachesAction(http), "alert": AlertAction(None, http=http)},
                        log, FixedClock(T0))
    engine.run_once()
    assert seen == [("GET", "http://shop/a"), ("GET", "http://shop/broken"), ("POST", "http://ops/hook")]
    warm = log.entries[0]
    assert warm.status == "applied" and warm.after == {"requested": {"http://shop/a": 200,
                                                                     "http://shop/broken": 500}, "ok": 1}


def test_mail_alerts_are_delivered_over_smtp():
    from aiosmtpd.controller import Controller

    class Sink:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append((envelope.rcpt_tos, envelope.content.decode()))
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        doc = {"rules": [{"name": "feed_stale", "when": "feed_age_s_wh_1 > 600", "actions": [
            {"type": "alert", "channel": "mail", "to": "ops@example.com", "subject": "feed stale"}]}]}
        log = InMemoryActionLog()
        mailer = SmtpMailer("127.0.0.1", port, "tower@example.com")
        engine = RuleEngine(parse_rules(doc), StaticSignals({"feed_age_s_wh_1": 900}),
                            {"alert": AlertAction(None, mailer=mailer)}, log, FixedClock(T0))
        [result] = engine.run_once()
        assert result.actions[0]["status"] == "applied", result.actions
    finally:
        controller.stop()
    [(rcpts, body)] = sink.messages
    assert rcpts == ["ops@example.com"]
    assert "Subject: feed stale" in body and "feed_age_s_wh_1=900" in body
