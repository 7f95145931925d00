"""SMTP adapter of the ``Mailer`` port (RFC 5321), through aiosmtplib.

- ``starttls`` (default): plain connection upgraded with STARTTLS (RFC 3207), refused if the
  server does not offer it; ``tls``: TLS from the first byte (RFC 8314 section 3.3, port
  465); ``none``: clear text, for a relay on the same host or tests.
- AUTH (RFC 4954) only when a username is set. The password is a ``SecretStr``, read only when
  connecting, and never logged: a failure is reported by its kind and the server's reply code.
- The message is multipart/alternative (RFC 2046 section 5.1.4): text first, HTML second.
- A timeout bounds every send, so a mail server that hangs cannot hold a request forever.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Literal

import aiosmtplib
from pydantic import SecretStr

from ostiary.features.mail.models import MailError, MailMessage

__all__ = ["SmtpMailer", "SmtpSettings"]

Security = Literal["starttls", "tls", "none"]


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    security: Security = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    timeout: float = 20.0
    tls_context: ssl.SSLContext | None = None  # default: the system's trust store

    def __repr__(self) -> str:  # keep the password out of any repr that reaches a log
        return f"SmtpSettings(host={self.host!r}, port={self.port}, security={self.security!r})"


def build_message(sender: str, message: MailMessage) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = message.to
    mail["Subject"] = message.subject
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip(">") or None)
    mail.set_content(message.text)
    mail.add_alternative(message.html, subtype="html")
    return mail


class SmtpMailer:
    def __init__(self, settings: SmtpSettings) -> None:
        self._settings = settings

    async def send(self, message: MailMessage) -> None:
        s = self._settings
        if any(ch in message.to for ch in "\r\n") or any(ch in message.subject for ch in "\r\n"):
            raise MailError("refused a header with a line break")
        context = s.tls_context or ssl.create_default_context()
        try:
            await aiosmtplib.send(
                build_message(s.sender, message),
                hostname=s.host,
                port=s.port,
                username=s.username,
                password=s.password.get_secret_value() if s.password else None,
                use_tls=s.security == "tls",
                start_tls=s.security == "starttls",
                tls_context=context if s.security != "none" else None,
                timeout=s.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = sorted({r.code for r in exc.recipients})
            raise MailError(f"the mail server refused the recipient (code {codes})") from None
        except aiosmtplib.SMTPResponseException as exc:
            raise MailError(f"the mail server refused the message (code {exc.code})") from None
        except aiosmtplib.SMTPException as exc:
            raise MailError(f"could not send mail ({type(exc).__name__})") from None
        except OSError as exc:
            raise MailError(f"could not reach the mail server ({type(exc).__name__})") from None
