"""The dev outbox: messages kept in memory, newest last, bounded (the oldest are dropped), read
by ``GET /dev/mail`` under ``ostiary dev`` only. Nothing leaves the process."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime

from ostiary.features.clock import Clock
from ostiary.features.mail.models import MailMessage

__all__ = ["DevOutbox", "OutboxEntry"]


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    number: int
    sent_at: datetime
    message: MailMessage


class DevOutbox:
    def __init__(self, clock: Clock, capacity: int = 200) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._clock = clock
        self._entries: deque[OutboxEntry] = deque(maxlen=capacity)
        self._count = 0

    async def send(self, message: MailMessage) -> None:
        self._count += 1
        self._entries.append(OutboxEntry(self._count, self._clock.now(), message))

    def messages(self) -> list[OutboxEntry]:
        """Newest first."""
        return list(reversed(self._entries))
