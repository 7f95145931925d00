"""The one error type of the verifier, and its RFC 6750 ``WWW-Authenticate`` rendering.

- RFC 6750 section 3: the ``Bearer`` challenge, its ``realm``, ``error``, ``error_description``
  and ``scope`` attributes; ``error_description`` is limited to %x20-21 / %x23-5B / %x5D-7E.
- RFC 6750 section 3.1: ``invalid_token`` (401) for an expired, revoked, malformed or otherwise
  invalid token; ``insufficient_scope`` (403) when the token lacks a required scope.

A verifier that cannot reach the authorization server (JWKS or introspection endpoint down)
answers 503, not 401: a 401 ``invalid_token`` tells the client to throw its token away and
re-authenticate, which would turn an identity-provider outage into a sign-in storm against it.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["TokenError", "TokenErrorReason", "bearer_challenge"]

TokenErrorReason = Literal[
    "malformed",
    "unknown_kid",
    "bad_signature",
    "alg_not_allowed",
    "wrong_typ",
    "wrong_issuer",
    "wrong_audience",
    "expired",
    "not_yet_valid",
    "insufficient_scope",
    "inactive",
    "jwks_unavailable",
    "introspection_unavailable",
]

_UNAVAILABLE: frozenset[str] = frozenset({"jwks_unavailable", "introspection_unavailable"})
# RFC 6750 section 3: characters allowed inside the quoted attribute values.
_NOT_QCHAR = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


def _quoted(value: str) -> str:
    return '"' + _NOT_QCHAR.sub("?", value) + '"'


def bearer_challenge(realm: str | None = None) -> str:
    """The challenge for a request without a bearer token: no error code (RFC 6750 section 3.1,
    "the resource server SHOULD NOT include an error code")."""
    return "Bearer" if realm is None else f"Bearer realm={_quoted(realm)}"


class TokenError(Exception):
    """A token was refused, or could not be checked.

    ``reason`` is a short machine-readable string (see :data:`TokenErrorReason`), ``description``
    a sentence safe to send to the client (it never contains the token), ``status_code`` the HTTP
    status a resource server should answer with: 401, 403 for ``insufficient_scope``, or 503 when
    the authorization server could not be reached.
    """

    def __init__(
        self,
        reason: TokenErrorReason,
        description: str,
        *,
        required_scopes: tuple[str, ...] = (),
    ) -> None:
        super().__init__(f"{reason}: {description}")
        self.reason: TokenErrorReason = reason
        self.description = description
        self.required_scopes = required_scopes

    @property
    def status_code(self) -> int:
        if self.reason == "insufficient_scope":
            return 403
        if self.reason in _UNAVAILABLE:
            return 503
        return 401

    def www_authenticate(self, realm: str | None = None) -> str:
        """The ``WWW-Authenticate`` header value for this error (RFC 6750 section 3).

        ``Bearer error="invalid_token", error_description="..."`` for a refused token,
        ``Bearer error="insufficient_scope", error_description="...", scope="..."`` for a missing
        scope, and a bare ``Bearer`` challenge when the server could not check the token (503):
        the token may well be valid, so no error code is given.
        """
        params: list[str] = []
        if realm is not None:
            params.append(f"realm={_quoted(realm)}")
        if self.reason == "insufficient_scope":
            params.append('error="insufficient_scope"')
            params.append(f"error_description={_quoted(self.description)}")
            params.append(f"scope={_quoted(' '.join(self.required_scopes))}")
        elif self.reason not in _UNAVAILABLE:
            params.append('error="invalid_token"')
            params.append(f"error_description={_quoted(self.description)}")
        return "Bearer " + ", ".join(params) if params else "Bearer"
