"""A FastAPI dependency that requires an Ostiary access token.

- RFC 6750 section 2.1: the token travels as ``Authorization: Bearer <b64token>``; it is not
  read from a form body or the query string (sections 2.2 / 2.3), which leak into logs.
- RFC 6750 section 3: every 401 and 403 carries a ``WWW-Authenticate: Bearer`` challenge with the
  ``realm``; a request without a token gets the bare challenge, a refused token
  ``error="invalid_token"``, a token without a required scope ``error="insufficient_scope"``
  with the ``scope`` needed (section 3.1, HTTP 403).
- When the authorization server cannot be reached the answer is 503 (see ``_errors``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ostiary.verify._errors import TokenError, bearer_challenge
from ostiary.verify._token import VerifiedToken
from ostiary.verify._verifier import TokenVerifier

__all__ = ["require_token"]

# RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
# Declares the bearer scheme in the OpenAPI document; we produce the 401 ourselves.
_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="OstiaryAccessToken",
    bearerFormat="JWT",
    description="An access token issued by Ostiary (RFC 9068 JWT).",
)


def _http_error(error: TokenError, realm: str) -> HTTPException:
    headers: dict[str, str] = {}
    if error.status_code in (401, 403):
        headers["WWW-Authenticate"] = error.www_authenticate(realm)
    return HTTPException(error.status_code, detail=error.description, headers=headers)


def require_token(
    verifier: TokenVerifier,
    *scopes: str,
    introspect: bool = False,
    realm: str | None = None,
) -> Callable[..., Awaitable[VerifiedToken]]:
    """A dependency returning the request's :class:`VerifiedToken`, or answering 401/403/503.

    ``scopes`` must all be granted to the token; ``introspect=True`` also asks the authorization
    server whether the token is still active (RFC 7662). ``realm`` defaults to the verifier's
    first audience. Use it as ``token: Annotated[VerifiedToken, Depends(require_token(v, "x"))]``.
    """
    for scope in scopes:
        if not _SCOPE_TOKEN.fullmatch(scope):
            raise ValueError(f"{scope!r} is not a valid scope-token (RFC 6749 section 3.3)")
    if introspect and verifier.introspection is None:
        raise ValueError("introspect=True needs an IntrospectionConfig on the verifier")
    challenge_realm = realm if realm is not None else verifier.audiences[0]

    async def access_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    ) -> VerifiedToken:
        if credentials is None:
            raise HTTPException(
                401,
                detail="a bearer access token is required",
                headers={"WWW-Authenticate": bearer_challenge(challenge_realm)},
            )
        token = credentials.credentials
        try:
            if not _B64TOKEN.fullmatch(token):
                raise TokenError("malformed", "the Authorization header is not a bearer token")
            return await verifier.verify(token, scopes, introspect=introspect)
        except TokenError as exc:
            raise _http_error(exc, challenge_realm) from exc

    return access_token
