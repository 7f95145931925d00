"""The port every feature that sends mail uses; adapters in storage/mail (SMTP, the dev
outbox)."""

from __future__ import annotations

from typing import Protocol

from ostiary.features.mail.models import MailMessage

__all__ = ["Mailer"]


class Mailer(Protocol):
    async def send(self, message: MailMessage) -> None:
        """Hand the message over; ``MailError`` when it was not accepted. Never called inside
        a database transaction (a slow mail server must not hold locks)."""
        ...
