"""The signed state of a WebAuthn ceremony between its options and its response.

WebAuthn Level 3 section 13.4.3: a challenge is random, made by the server, used once and
checked against the one the server issued, never against one the client sends back. The
server keeps nothing per ceremony: the browser holds a cookie of its own whose value is an
HMAC-SHA256 (RFC 2104; key derived from the deployment secret, ``ostiary/webauthn-ceremony``)
over:

- its time of issue (good for :data:`STATE_TTL_SECONDS`, as the options' ``timeout``);
- its purpose (``register``, ``authenticate`` or ``second-step``): a challenge issued to add a
  passkey cannot sign anyone in, nor the other way round;
- the challenge (32 random bytes; also the single-use key: it is spent in
  ``unit.spent_tickets`` when the ceremony succeeds, on every replica);
- the user id where it is known (the signed-in user, or the second step's ticket);
- the browser (its random pre-session CSRF cookie, :mod:`ostiary.web.csrf`): a state copied to
  another browser does not verify.

Nothing in it is secret; the MAC makes it unforgeable.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from ostiary.protocol.signed_fields import b64url_decode, b64url_encode, issued_fresh, mac_input

__all__ = [
    "STATE_TTL_SECONDS",
    "CeremonyState",
    "CeremonyStates",
    "Purpose",
    "state_cookie_name",
]

STATE_TTL_SECONDS = 300
_MAX_LEN = 512
_PURPOSES = ("register", "authenticate", "second-step")

Purpose = Literal["register", "authenticate", "second-step"]


def state_cookie_name(secure: bool) -> str:
    return "__Host-ostiary_webauthn" if secure else "ostiary_webauthn"


@dataclass(frozen=True, slots=True)
class CeremonyState:
    purpose: Purpose
    challenge: bytes
    user_id: str  # "" for a passwordless sign-in (the credential names the user)
    issued: int  # Unix time

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.issued + STATE_TTL_SECONDS, UTC)

    @property
    def spent_key(self) -> str:
        """The challenge's key in the single-use table (64 hex characters)."""
        return hashlib.sha256(b"webauthn|" + self.challenge).hexdigest()


class CeremonyStates:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, issued: str, purpose: str, challenge: str, user: str, browser: str) -> str:
        msg = b"webauthn-ceremony" + mac_input(issued, purpose, challenge, user, browser)
        return b64url_encode(hmac.new(self._key, msg, hashlib.sha256).digest())

    def issue(
        self, purpose: Purpose, challenge: bytes, user_id: str, *, now: datetime, browser: str
    ) -> str:
        issued = str(int(now.timestamp()))
        challenge_b64 = b64url_encode(challenge)
        user_b64 = b64url_encode(user_id.encode())
        mac = self._mac(issued, purpose, challenge_b64, user_b64, browser)
        return f"{issued}.{purpose}.{challenge_b64}.{user_b64}.{mac}"

    def read(
        self, value: str | None, purpose: Purpose, *, now: datetime, browser: str | None
    ) -> CeremonyState | None:
        """The state if this server made it for this purpose and browser, not expired."""
        if not value or not browser or len(value) > _MAX_LEN or value.count(".") != 4:
            return None
        issued, got_purpose, challenge_b64, user_b64, mac = value.split(".")
        if got_purpose != purpose or purpose not in _PURPOSES:
            return None
        if not issued_fresh(issued, now, STATE_TTL_SECONDS):
            return None
        expected = self._mac(issued, purpose, challenge_b64, user_b64, browser)
        if not hmac.compare_digest(expected.encode(), mac.encode()):
            return None
        try:
            challenge = b64url_decode(challenge_b64)
            user_id = b64url_decode(user_b64).decode()
        except (ValueError, binascii.Error):  # UnicodeDecodeError is a ValueError
            return None
        return CeremonyState(
            purpose=purpose, challenge=challenge, user_id=user_id, issued=int(issued)
        )
