"""CSRF protection for HTML forms: signed double-submit cookie bound to the session.

OWASP CSRF Prevention Cheat Sheet, "Signed Double-Submit Cookie" (HMAC, session-bound): the
browser holds a random cookie; every form carries ``HMAC(csrf_key, session cookie, cookie)``.
Before sign-in the session part is empty, so anonymous forms (the sign-in form) are still
protected by the random pre-session cookie. Binding to the session cookie means:

- a token cannot be computed without the server key, and a planted CSRF cookie (e.g. from a
  sibling subdomain) is useless, since the attacker cannot know the victim's session cookie;
- the token changes at sign-in (every sign-in sets a new session cookie), so a token seen or
  planted before sign-in does not work after it (rotation; OWASP ASVS V3.2.1 in spirit);
- a token of one session never validates for another session, even with the same CSRF cookie.

The browser cookie itself is kept across sign-in: it also binds the sign-in markers of
/authorize to the browser (:mod:`ostiary.web.sign_in_proofs`). The ``Origin`` header, when
sent, must be our own (defence in depth). SameSite=Lax on the session cookie is a third layer.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

from ostiary.protocol.signed_fields import mac_input

__all__ = ["CsrfGuard"]


class CsrfGuard:
    def __init__(
        self,
        key: bytes,
        *,
        secure: bool,
        issuer_origin: str | None,
        session_cookie: str,
    ) -> None:
        self._key = key
        self.cookie_name = "__Host-ostiary_csrf" if secure else "ostiary_csrf"
        self._secure = secure
        self._origin = issuer_origin
        self._session_cookie = session_cookie

    def _mac(self, browser: str, session: str) -> str:
        msg = b"csrf-v2" + mac_input(session, browser)
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def browser_id(self, request: Request) -> tuple[str, str | None]:
        """This browser's random CSRF cookie, and a new value to set if it had none."""
        existing = request.cookies.get(self.cookie_name)
        if existing and 16 <= len(existing) <= 128 and existing.isascii():
            return existing, None
        fresh = secrets.token_urlsafe(32)
        return fresh, fresh

    def token_for(self, request: Request) -> tuple[str, str | None]:
        """The form token for this browser and session, and a new cookie value to set."""
        browser, new_cookie = self.browser_id(request)
        session = request.cookies.get(self._session_cookie, "")
        return self._mac(browser, session), new_cookie

    def set_cookie(self, response: Response, value: str | None) -> None:
        if value is not None:
            response.set_cookie(
                self.cookie_name,
                value,
                httponly=True,
                secure=self._secure,
                samesite="lax",
                path="/",
            )

    def is_valid(self, request: Request, submitted: str | None) -> bool:
        origin = request.headers.get("origin")
        if origin and self._origin and origin != self._origin:
            return False
        cookie = request.cookies.get(self.cookie_name)
        if not cookie or not submitted or len(submitted) != 64 or not submitted.isascii():
            return False
        session = request.cookies.get(self._session_cookie, "")
        return hmac.compare_digest(self._mac(cookie, session).encode(), submitted.encode())
