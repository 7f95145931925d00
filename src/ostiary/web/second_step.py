"""The signed ticket between a sign-in's password step and its second factor.

OWASP ASVS 4.0 V2.8 / 5.0 V6.3 (multi-factor authentication): a correct password alone is not a
session when the user holds a second factor. The browser gets a short-lived ticket instead, in
a cookie of its own, that the code page needs. It is an HMAC-SHA256 (RFC 2104; key derived from
the deployment secret, ``ostiary/second-step``) over:

- its time of issue (good for :data:`TICKET_TTL_SECONDS`: five minutes to type a code);
- a random nonce, spent when the second step succeeds (single use, on every replica: the nonce
  is remembered in the database until the ticket would have expired);
- the user id the password proved (the ticket cannot sign in anyone else);
- for a step-up (OIDC ``acr`` a signed-in session does not meet, web/routes/authorize.py), the
  ``sid`` of that session: the factor is then added to it, and the ticket is worth nothing
  without that session's cookie; empty for a sign-in's second step;
- the browser (its random pre-session CSRF cookie, :mod:`ostiary.web.csrf`): a ticket copied
  to another browser does not verify.

Nothing in it is secret; the MAC makes it unforgeable, and it carries no password.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from ostiary.protocol.signed_fields import b64url_decode, b64url_encode, issued_fresh, mac_input

__all__ = ["TICKET_TTL_SECONDS", "SecondStepTicket", "SecondStepTickets", "ticket_cookie_name"]

TICKET_TTL_SECONDS = 300
_MAX_LEN = 512


def ticket_cookie_name(secure: bool) -> str:
    return "__Host-ostiary_second_step" if secure else "ostiary_second_step"


@dataclass(frozen=True, slots=True)
class SecondStepTicket:
    user_id: str
    nonce: str  # spent once, when the second factor is accepted
    issued: int  # Unix time
    sid: str = ""  # a step-up: the session that gains the factor; "" for a sign-in

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.issued + TICKET_TTL_SECONDS, UTC)

    @property
    def spent_key(self) -> str:
        """The nonce's key in the single-use table (64 hex characters)."""
        return hashlib.sha256(f"second-step|{self.nonce}".encode()).hexdigest()


class SecondStepTickets:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, issued: str, nonce: str, user_id: str, sid: str, browser: str) -> str:
        msg = b"second-step" + mac_input(issued, nonce, user_id, sid, browser)
        return b64url_encode(hmac.new(self._key, msg, hashlib.sha256).digest())

    def issue(self, user_id: str, *, now: datetime, browser: str, sid: str = "") -> str:
        issued = str(int(now.timestamp()))
        nonce = secrets.token_urlsafe(16)
        mac = self._mac(issued, nonce, user_id, sid, browser)
        return f"{issued}.{nonce}.{b64url_encode(user_id.encode())}.{sid}.{mac}"

    def read(
        self, value: str | None, *, now: datetime, browser: str | None
    ) -> SecondStepTicket | None:
        """The ticket if this server made it for this browser and it has not expired."""
        if not value or not browser or len(value) > _MAX_LEN or value.count(".") != 4:
            return None
        issued, nonce, user_b64, sid, mac = value.split(".")
        if not issued_fresh(issued, now, TICKET_TTL_SECONDS):
            return None
        try:
            user_id = b64url_decode(user_b64).decode()
        except (ValueError, binascii.Error):  # UnicodeDecodeError is a ValueError
            return None
        expected = self._mac(issued, nonce, user_id, sid, browser)
        if not hmac.compare_digest(expected.encode(), mac.encode()):
            return None
        return SecondStepTicket(user_id=user_id, nonce=nonce, issued=int(issued), sid=sid)
