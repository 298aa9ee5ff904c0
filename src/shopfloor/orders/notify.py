"""Order confirmation mail, sent by the outbox worker over SMTP, or into a maildir folder when no SMTP host is
configured. Each order's mail has a stable Message-ID, which is how redeliveries are recognised."""

from __future__ import annotations

import hashlib
import os
import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import format_datetime
from mailbox import Maildir
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from ..config import Settings, smtp_login_in_clear
from ..domain.clock import Clock
from ..store.payments_tables import sent_mail


class MailDeliveryError(Exception):
    """The mail could not be handed over (server down, refused...). Retrying later is the right move."""


def message_id_for(order_id: str, domain: str) -> str:
    return f"<order-{order_id}.confirmation@{domain}>"


def _money(amount: int, currency: str) -> str:
    return f"{amount / 100:.2f} {currency}"


def confirmation_message(order: Mapping[str, Any], *, sender: str, recipient: str, clock: Clock) -> EmailMessage:
    """The confirmation mail for ``order`` (an orders row or the same shape). Same order -> same Message-ID."""
    domain = sender.rsplit("@", 1)[-1] or "shopfloor.local"
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = f"Your order {order['id']} is confirmed"
    msg["Message-ID"] = message_id_for(str(order["id"]), domain)
    msg["Date"] = format_datetime(clock.now())
    lines = [f"Thank you for your order {order['id']}.", ""]
    for line in order.get("lines") or []:
        lines.append(f"  {line.get('qty')} x {line.get('sku')}")
    lines.append("")
    lines.append(f"Total: {_money(int(order['total']), str(order['currency']))}")
    shipping = order.get("shipping") or {}
    if shipping:
        note = " (estimate, final rate to follow)" if shipping.get("provisional") else ""
        lines.append(
            f"Shipping: {_money(int(shipping.get('amount', 0)), str(shipping.get('currency', '')))}"
            f", about {shipping.get('days', '?')} days{note}"
        )
    msg.set_content("\n".join(lines) + "\n")
    return msg


class MailTransport(Protocol):
    name: str

    def send(self, msg: EmailMessage) -> None:
        """Hand ``msg`` over; raise :class:`MailDeliveryError` when that failed."""


class SmtpTransport:
    """Plain SMTP (optionally STARTTLS and login) with a timeout. Credentials are never logged or repr'd, and never
    sent without STARTTLS except to a server on this machine (:func:`shopfloor.config.smtp_login_in_clear`)."""

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        timeout_s: float = 5.0,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        if smtp_login_in_clear(host, starttls, username):
            raise ValueError(f"SMTP {host}:{port}: a login needs STARTTLS (SHOPFLOOR_SMTP_STARTTLS) unless the server "
                             "is on this machine; the password would cross the network in clear")
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._starttls, self._username, self._password = starttls, username, password

    def __repr__(self) -> str:
        return f"SmtpTransport(host={self.host!r}, port={self.port})"

    def send(self, msg: EmailMessage) -> None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self._starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self._username:
                    smtp.login(self._username, self._password or "")
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailDeliveryError(f"SMTP {self.host}:{self.port}: {type(exc).__name__}: {exc}") from exc


class MaildirTransport:
    """Delivers into a maildir. The file name derives from the Message-ID, so a redelivery is a no-op."""

    name = "maildir"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _name(self, msg: EmailMessage) -> str:
        return hashlib.sha256(str(msg["Message-ID"]).encode()).hexdigest()[:32] + ".shopfloor"

    def delivered(self, msg: EmailMessage) -> bool:
        name = self._name(msg)
        if (self.path / "new" / name).exists():
            return True
        cur = self.path / "cur"
        return cur.exists() and any(p.name.split(":", 1)[0] == name for p in cur.iterdir())

    def send(self, msg: EmailMessage) -> None:
        try:
            # Maildir(create=True) makes the folder itself but not its parents: on a fresh machine the default
            # <data_dir>/maildir has none, and every confirmation was retried forever.
            self.path.parent.mkdir(parents=True, exist_ok=True)
            Maildir(self.path, create=True)  # creates tmp/new/cur
            if self.delivered(msg):
                return
            name = self._name(msg)
            tmp = self.path / "tmp" / f"{name}.{os.getpid()}"
            with open(tmp, "wb") as fh:
                fh.write(msg.as_bytes())
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, self.path / "new" / name)  # atomic; fails if already delivered
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as exc:
            raise MailDeliveryError(f"maildir {self.path}: {exc}") from exc


class ConfirmationMailer:
    """Sends each order's confirmation once: a ``sent_mail`` row (keyed by Message-ID) is written after a
    successful hand-over and checked before sending. A crash between the two can send a second copy with the
    same Message-ID (SMTP has no idempotency); mail clients and our maildir transport collapse those."""

    def __init__(self, transport: MailTransport, engine: Engine, clock: Clock, *, sender: str) -> None:
        self.transport = transport
        self._engine = engine
        self._clock = clock
        self.sender = sender

    def send_confirmation(self, order: Mapping[str, Any], recipient: str | None = None) -> str:
        """Returns ``"sent"``, ``"already_sent"`` or ``"no_recipient"``; raises :class:`MailDeliveryError`."""
        recipient = recipient or (order.get("ship_to") or {}).get("email")
        if not recipient:
            return "no_recipient"
        msg = confirmation_message(order, sender=self.sender, recipient=recipient, clock=self._clock)
        message_id = str(msg["Message-ID"])
        with self._engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
            seen = conn.execute(
                select(sent_mail.c.message_id).where(sent_mail.c.message_id == message_id)
            ).first()
            conn.rollback()
        if seen:
            return "already_sent"
        self.transport.send(msg)
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    sent_mail.insert().values(
                        message_id=message_id,
                        order_id=str(order["id"]),
                        transport=self.transport.name,
                        recipient=recipient,
                        sent_at=self._clock.now(),
                    )
                )
        except IntegrityError:  # a concurrent worker recorded it first
            return "already_sent"
        return "sent"


def build_mailer(settings: Settings, engine: Engine, clock: Clock) -> ConfirmationMailer:
    """SMTP when ``smtp_host`` is set, otherwise a maildir at ``maildir_path`` (default ``<data_dir>/maildir``)."""
    return ConfirmationMailer(build_transport(settings), engine, clock, sender=settings.smtp_from)


def build_transport(settings: Settings) -> MailTransport:
    """The store's mail transport: SMTP when ``smtp_host`` is set, otherwise the maildir at ``maildir_path``
    (default ``<data_dir>/maildir``). The control tower's mail alerts use it too unless ``tower_smtp_host`` is set."""
    transport: MailTransport
    if settings.smtp_host:
        transport = SmtpTransport(
            settings.smtp_host,
            settings.smtp_port,
            timeout_s=settings.smtp_timeout_s,
            starttls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        )
    else:
        transport = MaildirTransport(settings.maildir_path or (settings.data_dir / "maildir"))
    return transport
