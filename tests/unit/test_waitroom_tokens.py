"""Queue tokens: signed, expiring, bound to one product."""

from __future__ import annotations

import base64

import pytest

from shopfloor.waitroom import (
    AFTER_OPEN,
    PRE_OPEN,
    QueueTokenCodec,
    QueueTokenInvalid,
    QueueTokenWrongProduct,
)

SECRET = b"s" * 32


def _codec(secret: bytes = SECRET, ttl_s: int = 600) -> QueueTokenCodec:
    return QueueTokenCodec(secret, ttl_s)


def test_a_token_reads_back_its_product_place_and_expiry():
    token = _codec().issue("HOT", AFTER_OPEN, 41, now_s=1_000)
    ticket = _codec().read_for(token, "HOT")
    assert (ticket.sku, ticket.phase, ticket.number, ticket.expires_at) == ("HOT", AFTER_OPEN, 41, 1_600)
    assert not ticket.expired(1_599) and ticket.expired(1_600)


def test_a_token_with_an_edited_place_is_refused():
    token = _codec().issue("HOT", AFTER_OPEN, 900, now_s=1_000)
    head, sig = token.split(".")
    payload = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)).replace(b"|q900|", b"|q0|")
    forged = base64.urlsafe_b64encode(payload).rstrip(b"=").decode() + "." + sig
    with pytest.raises(QueueTokenInvalid):
        _codec().read(forged)


def test_a_token_signed_with_another_secret_is_refused():
    token = _codec(b"x" * 32).issue("HOT", PRE_OPEN, 0, now_s=1_000)
    with pytest.raises(QueueTokenInvalid):
        _codec().read(token)


def test_a_token_with_a_later_expiry_written_in_is_refused():
    token = _codec(ttl_s=1).issue("HOT", AFTER_OPEN, 3, now_s=1_000)
    head, sig = token.split(".")
    payload = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)).replace(b"|1001", b"|9999999999")
    with pytest.raises(QueueTokenInvalid):
        _codec().read(base64.urlsafe_b64encode(payload).rstrip(b"=").decode() + "." + sig)


def test_a_token_cannot_be_moved_to_another_product():
    token = _codec().issue("HOT", AFTER_OPEN, 1, now_s=1_000)
    with pytest.raises(QueueTokenWrongProduct) as err:
        _codec().read_for(token, "OTHER")
    assert err.value.details == [{"field": "Queue-Token", "sku": "OTHER"}]


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "!!!.???", "x" * 600, "e30.e30", ".", "aGVsbG8.AAAA"])
def test_malformed_tokens_are_refused_naming_the_header(garbage):
    with pytest.raises(QueueTokenInvalid) as err:
        _codec().read(garbage)
    assert err.value.details == [{"field": "Queue-Token"}]
    assert err.value.status == 403


def test_a_short_secret_is_refused():
    with pytest.raises(ValueError):
        QueueTokenCodec(b"short", 60)
