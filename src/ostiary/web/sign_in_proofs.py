"""Signed proofs that an authorization request's sign-in demands were met.

OpenID Connect Core 1.0 section 3.1.2.1: ``prompt=login`` and ``max_age`` demand a sign-in
after the request; ``prompt=select_account`` demands that the user chose the account. To
stop a sign-in loop, /authorize sends the browser to /login and back with a marker in the
return URL; since the URL is the client's to edit, the marker proves nothing unless the
server can tell it made it, for this request and this browser. Each marker is therefore an
HMAC-SHA256 (RFC 2104, key derived from the deployment secret, ``ostiary/authorize-proof``)
over:

- ``_ost_auth_after`` (sign-in demanded): its time ``T``; the exact authorization request
  (every parameter but the markers, repeated ``resource`` values included, RFC 8707); the
  browser (the random pre-session CSRF cookie, :mod:`ostiary.web.csrf`), and a keyed tag of
  the session cookie the browser held when asked (sent in clear, it reveals nothing). It is
  met by a session whose cookie differs from that one (a new sign-in: each one gets a new
  cookie) and whose ``auth_time`` is at or after ``T``.
- ``_ost_account_chosen`` (the account was chosen on the select_account page): its time, the
  exact request and the session cookie it was shown to. Another session cannot use it.

A marker is good for :data:`PROOF_TTL_SECONDS`; copied to another request, another client,
another browser or another session, or replayed later, it does not verify, and the sign-in
is asked again (never a code without it).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from datetime import datetime
from urllib.parse import urlencode

from ostiary.protocol.signed_fields import b64url_encode, issued_fresh, mac_input

__all__ = ["PROOF_TTL_SECONDS", "SignInProofs"]

# How long a sign-in page or a choice page may stay open before the answer is asked again.
PROOF_TTL_SECONDS = 1800
_NO_SESSION = "-"


class SignInProofs:
    def __init__(self, key: bytes, ttl_seconds: int = PROOF_TTL_SECONDS) -> None:
        self._key = key
        self._ttl = ttl_seconds

    def _mac(self, *fields: str) -> str:
        return b64url_encode(hmac.new(self._key, mac_input(*fields), hashlib.sha256).digest())

    def _session_tag(self, session_cookie: str | None) -> str:
        if not session_cookie:
            return _NO_SESSION
        return self._mac("session", session_cookie)[:22]  # 128 bits

    @staticmethod
    def _request(pairs: Iterable[tuple[str, str]]) -> str:
        """The request in one canonical form (order-free: a round trip may reorder it)."""
        return urlencode(sorted(pairs))

    # -- prompt=login, max_age, a sign-in that is the account choice ----------------------

    def demand_sign_in(
        self,
        request: Iterable[tuple[str, str]],
        *,
        now: datetime,
        browser: str,
        session_cookie: str | None,
    ) -> str:
        issued = str(int(now.timestamp()))
        prior = self._session_tag(session_cookie)
        mac = self._mac("sign-in", issued, prior, browser, self._request(request))
        return f"{issued}.{prior}.{mac}"

    def signed_in_since(
        self,
        marker: str | None,
        request: Iterable[tuple[str, str]],
        *,
        now: datetime,
        browser: str | None,
        session_cookie: str | None,
        auth_time: datetime,
    ) -> bool:
        """The browser signed in anew after we asked it to, for this very request."""
        if not marker or not browser or len(marker) > 128 or marker.count(".") != 2:
            return False
        issued, prior, mac = marker.split(".")
        if not issued_fresh(issued, now, self._ttl):
            return False
        expected = self._mac("sign-in", issued, prior, browser, self._request(request))
        if not hmac.compare_digest(expected.encode(), mac.encode()):
            return False
        if self._session_tag(session_cookie) == prior:
            return False  # the session we asked to sign in again, not a new sign-in
        return auth_time.timestamp() >= int(issued)

    # -- prompt=select_account: "continue as this account" --------------------------------

    def account_choice(
        self, request: Iterable[tuple[str, str]], *, now: datetime, session_cookie: str
    ) -> str:
        issued = str(int(now.timestamp()))
        tag = self._session_tag(session_cookie)
        return f"{issued}.{self._mac('chosen', issued, tag, self._request(request))}"

    def account_chosen(
        self,
        marker: str | None,
        request: Iterable[tuple[str, str]],
        *,
        now: datetime,
        session_cookie: str | None,
    ) -> bool:
        if not marker or not session_cookie or len(marker) > 128 or marker.count(".") != 1:
            return False
        issued, mac = marker.split(".")
        if not issued_fresh(issued, now, self._ttl):
            return False
        tag = self._session_tag(session_cookie)
        expected = self._mac("chosen", issued, tag, self._request(request))
        return hmac.compare_digest(expected.encode(), mac.encode())
