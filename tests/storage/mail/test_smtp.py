"""storage/mail/smtp.py against a real SMTP server (aiosmtpd) on 127.0.0.1: the message as
received (multipart/alternative, headers), AUTH over STARTTLS (RFC 3207, RFC 4954),
refusals and an unreachable server reported as ``MailError`` without the password; and the
dev outbox's bound."""

from __future__ import annotations

import datetime as dt
import email
import socket
import ssl
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from ostiary.features.clock import FrozenClock
from ostiary.features.mail.models import MailError, MailMessage
from ostiary.storage.mail.outbox import DevOutbox
from ostiary.storage.mail.smtp import SmtpMailer, SmtpSettings

MESSAGE = MailMessage(
    to="ada@example.com",
    subject="Invitation to join Acme",
    text="Open https://id.example/invitations/ost_inv_x\n",
    html='<p><a href="https://id.example/invitations/ost_inv_x">Accept</a></p>',
)


class Inbox:
    def __init__(self, refuse: bool = False) -> None:
        self.received: list[tuple[str, list[str], Message]] = []
        self.refuse = refuse

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content)
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _self_signed(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    return server, client


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (
        auth_data.login == b"ostiary" and auth_data.password == b"s3cret-pass"
    )
    return AuthResult(success=ok)


@pytest.fixture
def plain_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


async def test_sends_a_multipart_message_in_clear_to_a_local_relay(
    plain_server: tuple[Inbox, int],
) -> None:
    inbox, port = plain_server
    mailer = SmtpMailer(
        SmtpSettings("127.0.0.1", port, "Ostiary <no-reply@id.example>", security="none")
    )
    await mailer.send(MESSAGE)
    [(sender, rcpts, parsed)] = inbox.received
    assert sender == "no-reply@id.example" and rcpts == ["ada@example.com"]
    assert parsed["Subject"] == MESSAGE.subject and parsed["To"] == MESSAGE.to
    assert parsed["Message-ID"] and parsed["Date"]
    assert parsed.get_content_type() == "multipart/alternative"
    parts = {
        p.get_content_type(): p.get_payload(decode=True).decode()
        for p in parsed.walk()
        if not p.is_multipart()
    }
    assert parts["text/plain"].replace("\r\n", "\n") == MESSAGE.text
    assert 'href="https://id.example/invitations/ost_inv_x"' in parts["text/html"]


async def test_starttls_with_auth(tmp_path: Path) -> None:
    server_ctx, client_ctx = _self_signed(tmp_path)
    inbox = Inbox()
    port = _free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_ctx,
        require_starttls=True,
        authenticator=_authenticator,
        auth_required=True,
    )
    controller.start()
    try:
        base: dict[str, Any] = dict(
            sender="no-reply@id.example", security="starttls", tls_context=client_ctx, timeout=3
        )
        good = SmtpMailer(
            SmtpSettings(
                "127.0.0.1", port, username="ostiary", password=SecretStr("s3cret-pass"), **base
            )
        )
        await good.send(MESSAGE)
        assert len(inbox.received) == 1
        bad = SmtpSettings(
            "127.0.0.1", port, username="ostiary", password=SecretStr("wrong-pass-xyz"), **base
        )
        with pytest.raises(MailError) as refused:
            await SmtpMailer(bad).send(MESSAGE)
        assert "wrong-pass-xyz" not in str(refused.value) and "wrong-pass-xyz" not in repr(bad)
        # A client that does not trust the server's certificate does not send.
        untrusted = SmtpSettings(
            "127.0.0.1",
            port,
            "no-reply@id.example",
            username="ostiary",
            password=SecretStr("s3cret-pass"),
            timeout=3,
        )
        with pytest.raises(MailError):
            await SmtpMailer(untrusted).send(MESSAGE)
        assert len(inbox.received) == 1
    finally:
        controller.stop()


async def test_a_refused_recipient_and_an_unreachable_server_are_mail_errors(
    plain_server: tuple[Inbox, int],
) -> None:
    inbox, port = plain_server
    inbox.refuse = True
    mailer = SmtpMailer(SmtpSettings("127.0.0.1", port, "no-reply@id.example", security="none"))
    with pytest.raises(MailError) as refused:
        await mailer.send(MESSAGE)
    assert "550" in str(refused.value) or "refused" in str(refused.value)
    closed = SmtpMailer(
        SmtpSettings("127.0.0.1", _free_port(), "no-reply@id.example", security="none", timeout=5)
    )
    with pytest.raises(MailError):
        await closed.send(MESSAGE)


async def test_header_injection_is_refused(plain_server: tuple[Inbox, int]) -> None:
    inbox, port = plain_server
    mailer = SmtpMailer(SmtpSettings("127.0.0.1", port, "no-reply@id.example", security="none"))
    for hostile in (
        MailMessage("a@example.com\r\nBcc: evil@example.com", "s", "t", "h"),
        MailMessage("a@example.com", "s\nBcc: evil@example.com", "t", "h"),
    ):
        with pytest.raises(MailError):
            await mailer.send(hostile)
    assert inbox.received == []


async def test_the_dev_outbox_keeps_the_newest_messages() -> None:
    outbox = DevOutbox(FrozenClock(), capacity=3)
    for n in range(5):
        await outbox.send(MailMessage(f"u{n}@example.com", "s", "t", "h"))
    assert [e.message.to for e in outbox.messages()] == [
        "u4@example.com",
        "u3@example.com",
        "u2@example.com",
    ]
    assert [e.number for e in outbox.messages()] == [5, 4, 3]
