"""The link that verifies a user's e-mail address, mailed when they change it.

An HMAC-SHA256 (RFC 2104; key derived from the deployment secret, ``ostiary/email-
verification``) over the user id, the address and the time of issue, each length-prefixed.
It proves that whoever opens it read mail sent to that address; it is good for
:data:`LINK_TTL_SECONDS`, only for that user signed in (the page needs their session), and only
while the account still has that address (a later change makes it worthless). Using it twice
is harmless: the address is verified already. Nothing in it is secret but its MAC.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from ostiary.protocol.signed_fields import b64url_decode, b64url_encode, mac_input

__all__ = ["LINK_TTL_SECONDS", "EmailLink", "EmailLinks"]

LINK_TTL_SECONDS = 24 * 3600
_MAX_LEN = 1024


@dataclass(frozen=True, slots=True)
class EmailLink:
    user_id: str
    email: str
    issued: int


class EmailLinks:
    def __init__(self, key: bytes, ttl_seconds: int = LINK_TTL_SECONDS) -> None:
        self._key = key
        self._ttl = ttl_seconds

    def _mac(self, user_id: str, email: str, issued: int) -> bytes:
        data = mac_input("email-verify", user_id, email, str(issued))
        return hmac.new(self._key, data, hashlib.sha256).digest()

    def issue(self, user_id: str, email: str, now: datetime) -> str:
        issued = int(now.timestamp())
        body = b64url_encode(f"{user_id}\n{email}\n{issued}".encode())
        return f"{body}.{b64url_encode(self._mac(user_id, email, issued))}"

    def verify(self, token: str, now: datetime) -> EmailLink | None:
        """The link's user and address, or None: forged, malformed or expired."""
        if not token or len(token) > _MAX_LEN or token.count(".") != 1:
            return None
        body, mac = token.split(".")
        try:
            user_id, email, stamp = b64url_decode(body).decode().split("\n")
            issued = int(stamp)
            given = b64url_decode(mac)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        if not hmac.compare_digest(given, self._mac(user_id, email, issued)):
            return None
        if not issued <= now.timestamp() < issued + self._ttl:
            return None
        return EmailLink(user_id, email, issued)
