"""The outbound delivery policy: retry schedule with jitter, 410, Retry-After, client errors, payload scrubbing."""

from __future__ import annotations

import random
from datetime import datetime, timezone

from shopfloor.integrations import RETRY_SCHEDULE_S, AttemptResult, judge, public_event

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def _judge(code, attempts, retry_after=None, **kw):
    return judge(AttemptResult(code, retry_after), attempts, NOW, random.Random(1), **kw)


def test_the_schedule_is_immediately_5s_5m_30m_2h_5h_10h_10h():
    assert RETRY_SCHEDULE_S == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


def test_each_retry_waits_its_scheduled_delay_within_ten_percent_jitter():
    for attempts, base in enumerate(RETRY_SCHEDULE_S[1:], start=1):
        v = _judge(500, attempts)
        assert v.kind == "retry" and base * 0.9 <= v.delay_s <= base * 1.1


def test_jitter_spreads_subscribers_that_failed_together():
    delays = {judge(AttemptResult(503), 3, NOW, random.Random(seed)).delay_s for seed in range(20)}
    assert len(delays) > 10


def test_a_delivery_fails_for_good_after_eight_attempts():
    assert _judge(500, 8).kind == "failed"
    assert _judge(None, 8).kind == "failed"


def test_2xx_succeeds_and_410_means_gone():
    assert _judge(204, 1).kind == "succeeded"
    assert _judge(410, 1).kind == "gone"


def test_retry_after_is_honoured_for_429_and_5xx_gateways_but_capped():
    assert _judge(429, 1, "120").delay_s == 120
    assert _judge(503, 1, "Tue, 01 Dec 2026 12:01:00 GMT").delay_s == 60
    assert _judge(502, 1, "999999", max_retry_after_s=3600).delay_s == 3600
    assert 4.5 <= _judge(500, 1, "120").delay_s <= 5.5  # a plain 500's Retry-After is not obeyed


def test_client_errors_stop_after_the_configured_attempts_but_timeouts_and_429_do_not():
    assert _judge(400, 2, max_client_error_attempts=3).kind == "retry"
    assert _judge(404, 3, max_client_error_attempts=3).kind == "failed"
    assert _judge(429, 3, max_client_error_attempts=3).kind == "retry"
    assert _judge(408, 3, max_client_error_attempts=3).kind == "retry"


def test_published_events_carry_no_payment_tokens_keys_or_emails():
    body = public_event("OrderPlaced", {"order_id": "o1", "payment_token": "tok", "api_key_id": "k",
                                        "ship_to": {"country": "DE", "email": "a@b.c"}}, NOW)
    assert body == {"type": "order.placed", "timestamp": NOW.isoformat(),
                    "data": {"order_id": "o1", "ship_to": {"country": "DE"}}}
    assert public_event("PaymentAuthorized", {"order_id": "o1"}, NOW) is None


class FakeResolver:
    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    def addresses(self, host: str, port: int) -> list[str]:
        if host not in self.table:
            raise OSError("no such host")
        return self.table[host]


def test_the_ssrf_guard_looks_at_what_a_name_resolves_to():
    import pytest

    from shopfloor.integrations import TargetGuard, TargetRefused

    dns = FakeResolver({"erp.example.com": ["93.184.216.34"], "sneaky.example.com": ["93.184.216.34", "10.0.0.7"],
                        "metadata.example.com": ["::ffff:169.254.169.254"]})
    guard = TargetGuard(frozenset(), dns)
    guard.check("https://erp.example.com/hooks")
    for url in ("https://sneaky.example.com/", "http://metadata.example.com/", "http://nowhere.example.com/",
                "https://user:pw@erp.example.com/", "http://erp.example.com:99999/"):
        with pytest.raises(TargetRefused):
            guard.check(url)
    TargetGuard(frozenset({"sneaky.example.com"}), dns).check("https://sneaky.example.com/")


def test_the_ssrf_guard_refuses_malformed_urls_and_port_zero_instead_of_failing():
    import pytest

    from shopfloor.integrations import TargetGuard, TargetRefused

    guard = TargetGuard(frozenset())  # the system resolver: the IDNA codec refuses these before any lookup
    for url in ("http://a..b/", "http://./", f"http://{'a' * 64}.example.com/", f"http://{'ü' * 70}/",
                "http://[::1/x", "http://93.184.216.34:0/"):
        with pytest.raises(TargetRefused):
            guard.check(url)


def test_the_ssrf_guard_refuses_every_address_that_is_not_globally_reachable():
    import pytest

    from shopfloor.integrations import TargetGuard, TargetRefused

    guard = TargetGuard(frozenset(), FakeResolver({}))
    for url in ("http://100.100.100.200/latest/meta-data", "http://100.64.0.1/", "http://100.127.255.254/",
                "http://[::ffff:100.100.100.200]/", "http://192.0.2.10/", "http://198.18.0.1/", "http://[2001:db8::1]/",
                "http://[2002:a9fe:a9fe::]/", "http://[2002:0a00:0001::1]/", "http://[2002:7f00:0001::]/",
                "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "http://[64:ff9b::a9fe:a9fe]/",
                "http://224.0.0.1/", "http://[ff02::1]/"):
        with pytest.raises(TargetRefused):
            guard.check(url)
    for url in ("http://93.184.216.34/", "http://[2606:2800:220:1:248:1893:25c8:1946]/", "http://[2002:5db8:d822::]/",
                "http://[64:ff9b::5db8:d822]/"):
        guard.check(url)


def test_an_allow_listed_host_may_resolve_to_a_carrier_grade_nat_address():
    from shopfloor.integrations import TargetGuard

    dns = FakeResolver({"erp.tailnet.example": ["100.101.102.103"]})
    TargetGuard(frozenset({"erp.tailnet.example"}), dns).check("http://erp.tailnet.example/hooks")
