"""CSRF protection for HTML forms: signed double-submit cookie.

OWASP CSRF Prevention Cheat Sheet, "Signed Double-Submit Cookie": the browser holds a random
cookie; every form carries ``HMAC(csrf_key, cookie)``. A cross-site page can neither read the
cookie nor compute the MAC, and a planted cookie (e.g. from a sibling subdomain) is useless
without the server key. The ``Origin`` header, when sent, must be our own (defence in depth).
SameSite=Lax on the session cookie is a third layer.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

__all__ = ["CsrfGuard"]


class CsrfGuard:
    def __init__(self, key: bytes, *, secure: bool, issuer_origin: str | None) -> None:
        self._key = key
        self.cookie_name = "__Host-ostiary_csrf" if secure else "ostiary_csrf"
        self._secure = secure
        self._origin = issuer_origin

    def _mac(self, cookie_value: str) -> str:
        return hmac.new(self._key, cookie_value.encode(), hashlib.sha256).hexdigest()

    def token_for(self, request: Request) -> tuple[str, str | None]:
        """The form token for this browser, and a new cookie value to set if it had none."""
        existing = request.cookies.get(self.cookie_name)
        if existing and 16 <= len(existing) <= 128 and existing.isascii():
            return self._mac(existing), None
        fresh = secrets.token_urlsafe(32)
        return self._mac(fresh), fresh

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
        return hmac.compare_digest(self._mac(cookie).encode(), submitted.encode())
