"""An outgoing e-mail message (RFC 5322 section 3.6: one To, a Subject; a text body and an
HTML alternative, RFC 2046 section 5.1.4 multipart/alternative) and the errors of sending."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MailError", "MailMessage", "MailNotConfigured"]


@dataclass(frozen=True, slots=True)
class MailMessage:
    to: str
    subject: str
    text: str
    html: str


class MailError(Exception):
    """The message could not be handed to the mail server. The message says why without
    naming credentials or the message's content."""


class MailNotConfigured(MailError):
    """No way to send mail: production without OSTIARY_SMTP_HOST."""
