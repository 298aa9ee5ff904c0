"""Confirmation mail (maildir, a real aiosmtpd server, SMTP down) and fraud screening over real databases."""

from __future__ import annotations

import email
import mailbox
import socket
from datetime import datetime, timedelta, timezone

import pytest
from aiosmtpd.controller import Controller

from shopfloor.config import Settings
from shopfloor.domain.clock import FixedClock
from shopfloor.domain.fraud import FraudPolicy
from shopfloor.orders.fraud import FraudScreen
from shopfloor.orders.notify import (
    ConfirmationMailer,
    MailDeliveryError,
    MaildirTransport,
    SmtpTransport,
    build_mailer,
    confirmation_message,
)
from shopfloor.store.engine import make_engine
from shopfloor.store.tables import orders

T0 = datetime(2026, 11, 27, 12, tzinfo=timezone.utc)
CLOCK = FixedClock(T0)
ORDER = {
    "id": "ord_1",
    "total": 4599,
    "currency": "USD",
    "ship_to": {"email": "ada@example.com", "country": "US"},
    "lines": [{"sku": "SKU-1", "qty": 2}],
    "shipping": {"provisional": True, "amount": 899, "currency": "USD", "days": 5},
}


@pytest.fixture
def engine(db_url):
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content)))
        return "250 OK"


def test_without_an_smtp_host_mail_goes_to_a_maildir_once(engine, tmp_path):
    mailer = build_mailer(Settings(data_dir=tmp_path), engine, CLOCK)
    assert isinstance(mailer.transport, MaildirTransport)
    assert mailer.send_confirmation(ORDER) == "sent"
    assert mailer.send_confirmation(ORDER) == "already_sent"
    box = mailbox.Maildir(tmp_path / "maildir", create=False)
    [msg] = list(box)
    assert msg["Message-ID"] == "<order-ord_1.confirmation@shopfloor.local>"
    assert "45.99 USD" in msg.get_payload() and "estimate" in msg.get_payload()


def test_the_default_maildir_is_created_with_its_parent_folders(engine, tmp_path):
    """A fresh machine has no ``<data_dir>`` yet (default ``var/``): the first confirmation creates it instead of
    failing, and being retried, forever."""
    mailer = build_mailer(Settings(data_dir=tmp_path / "not" / "there"), engine, CLOCK)
    assert mailer.send_confirmation(ORDER) == "sent"
    assert len(list(mailbox.Maildir(tmp_path / "not" / "there" / "maildir", create=False))) == 1


def test_maildir_delivery_itself_is_idempotent_by_message_id(tmp_path):
    transport = MaildirTransport(tmp_path / "md")
    mailer_msg = confirmation_message(ORDER, sender="a@b.c", recipient="x@y.z", clock=CLOCK)
    transport.send(mailer_msg)
    transport.send(mailer_msg)
    assert len(list(mailbox.Maildir(tmp_path / "md"))) == 1


def test_smtp_down_raises_then_the_retry_is_delivered_exactly_once(engine):
    port = free_port()
    mailer = ConfirmationMailer(SmtpTransport("127.0.0.1", port, timeout_s=2), engine, CLOCK, sender="shop@x.test")
    with pytest.raises(MailDeliveryError):
        mailer.send_confirmation(ORDER)
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        assert mailer.send_confirmation(ORDER) == "sent"
        assert mailer.send_confirmation(ORDER) == "already_sent"
    finally:
        controller.stop()
    [(rcpts, msg)] = inbox.messages
    assert rcpts == ["ada@example.com"]
    assert msg["Message-ID"] == "<order-ord_1.confirmation@x.test>"
    assert msg["Subject"] == "Your order ord_1 is confirmed"


def test_an_smtp_login_to_another_machine_without_starttls_is_refused_naming_the_setting(monkeypatch):
    from pydantic import ValidationError
    from typer.testing import CliRunner

    from shopfloor.cli.main import app

    for host in ("mail.example.com", "10.0.0.25", "127.0.0.1.example.com"):
        with pytest.raises(ValidationError, match="SHOPFLOOR_SMTP_STARTTLS"):
            Settings(smtp_host=host, smtp_username="shop", smtp_password="pw")
        with pytest.raises(ValueError, match="SHOPFLOOR_SMTP_STARTTLS"):
            SmtpTransport(host, 587, username="shop", password="pw")
    Settings(smtp_host="mail.example.com", smtp_username="shop", smtp_password="pw", smtp_starttls=True)
    Settings(smtp_host="mail.example.com")  # no login, nothing to protect
    monkeypatch.setenv("SHOPFLOOR_SMTP_HOST", "mail.example.com")
    monkeypatch.setenv("SHOPFLOOR_SMTP_USERNAME", "shop")
    r = CliRunner().invoke(app, ["keys", "list"])
    assert r.exit_code == 2 and "SHOPFLOOR_SMTP_STARTTLS" in r.output and "Traceback" not in r.output


def test_a_relay_on_this_machine_may_take_an_smtp_login_without_tls(engine):
    from aiosmtpd.smtp import AuthResult

    for host in ("localhost", "127.0.0.1", "::1", "[::1]"):
        Settings(smtp_host=host, smtp_username="shop", smtp_password="pw")
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=True)

    port = free_port()
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=authenticator,
                            auth_require_tls=False)
    controller.start()
    try:
        transport = SmtpTransport("127.0.0.1", port, timeout_s=2, username="shop", password="pw")
        assert ConfirmationMailer(transport, engine, CLOCK, sender="shop@x.test").send_confirmation(ORDER) == "sent"
    finally:
        controller.stop()
    assert logins == [(b"shop", b"pw")] and len(inbox.messages) == 1


def test_an_order_without_an_email_is_skipped(engine, tmp_path):
    mailer = ConfirmationMailer(MaildirTransport(tmp_path), engine, CLOCK, sender="s@x")
    assert mailer.send_confirmation({**ORDER, "ship_to": {}}) == "no_recipient"


def _insert_order(conn, oid, *, total=5000, minutes_ago=0, email_="c@x", token="tok", country="US", card="US"):
    at = T0 - timedelta(minutes=minutes_ago)
    conn.execute(
        orders.insert().values(
            id=oid, status="authorized", ship_to={"email": email_, "country": country},
            payment={"token": token, "card_country": card}, total=total, currency="USD",
            created_at=at, updated_at=at,
        )
    )


def test_velocity_counts_the_same_customer_however_their_orders_recorded_them(engine):
    """The database counts the window's orders by the same customer and card; a customer is the same whatever the
    case of the address, and is read as customer_of reads it (``payment.customer_id`` first, then the e-mail)."""
    with engine.begin() as conn:
        for i in range(3):
            _insert_order(conn, f"u{i}", minutes_ago=5 + i, email_="Burst@X", token=f"t{i}")
        conn.execute(orders.insert().values(
            id="cid", status="authorized", ship_to={"country": "US"},
            payment={"token": "tz", "customer_id": "BURST@x"}, total=5000, currency="USD",
            created_at=T0 - timedelta(minutes=9), updated_at=T0 - timedelta(minutes=9)))
        conn.execute(orders.insert().values(  # its customer is its customer_id, whatever the e-mail says
            id="not-them", status="authorized", ship_to={"country": "US", "email": "burst@x"},
            payment={"token": "ty", "customer_id": "someone-else"}, total=5000, currency="USD",
            created_at=T0 - timedelta(minutes=3), updated_at=T0 - timedelta(minutes=3)))
        for i in range(30):  # other buyers in the same window: never counted as this customer's
            _insert_order(conn, f"o{i}", minutes_ago=1 + i % 20, email_=f"other{i}@x", token=f"o{i}")
        _insert_order(conn, "target", email_="burst@x", token="fresh")
    screen = FraudScreen(engine, FraudPolicy(max_orders_per_customer=3, max_orders_per_token=3), CLOCK)
    target = screen.assess("target")
    velocity = [r for r in target.reasons if r.rule == "customer_velocity"]
    assert velocity and velocity[0].data["orders"] == 5  # 3 by e-mail + 1 by customer id + the order itself
    assert "card_velocity" not in {r.rule for r in target.reasons}


def test_fraud_screen_reads_history_from_the_orders_table(engine):
    with engine.begin() as conn:
        for i in range(20):
            _insert_order(conn, f"h{i}", minutes_ago=600 + i, email_=f"h{i}@x", token=f"t{i}")
        for i in range(4):
            _insert_order(conn, f"v{i}", minutes_ago=10 + i, email_="burst@x", token="hot")
        _insert_order(conn, "target", total=90_000, email_="burst@x", token="hot", card="NG")
        _insert_order(conn, "calm", email_="calm@x", token="calm")
    screen = FraudScreen(engine, FraudPolicy(max_orders_per_customer=3, max_orders_per_token=3), CLOCK)
    target = screen.assess("target")
    assert {r.rule for r in target.reasons} == {
        "customer_velocity", "card_velocity", "amount_outlier", "card_country_mismatch"
    }
    assert target.hold
    calm = screen.assess("calm")
    assert calm.score == 0 and not calm.hold
    with pytest.raises(LookupError):
        screen.assess("nope")
