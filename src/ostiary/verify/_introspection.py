"""Token introspection (RFC 7662), for opaque tokens and for calls that must see revocation now.

- RFC 7662 section 2.1: ``POST`` of ``token`` (and the ``token_type_hint`` ``access_token``) as
  ``application/x-www-form-urlencoded``, authenticated as a client of the authorization server.
- RFC 6749 section 2.3.1: HTTP Basic client authentication, where the client id and secret are
  each form-urlencoded (Appendix B) before being joined by ``:`` and base64-encoded.
- RFC 7662 section 2.2: the answer is a JSON object whose ``active`` member is REQUIRED; only the
  JSON ``true`` means the token may be used. Section 4: the protected resource still checks what
  the answer says about ``iss``, ``aud``, ``exp``, ``nbf`` and ``scope``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

import httpx

from ostiary.verify._errors import TokenError
from ostiary.verify._http import FetchError, request_json

__all__ = ["IntrospectionConfig", "basic_authorization", "introspect"]


@dataclass(frozen=True, slots=True, kw_only=True)
class IntrospectionConfig:
    """How to reach the introspection endpoint, as a confidential client.

    ``endpoint`` defaults to the ``introspection_endpoint`` of the issuer's metadata
    (RFC 8414 section 2).
    """

    client_id: str
    client_secret: str = field(repr=False)
    endpoint: str | None = None


def basic_authorization(client_id: str, client_secret: str) -> str:
    """The ``Authorization`` header value of RFC 6749 section 2.3.1 (Basic, form-urlencoded)."""
    pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")


async def introspect(
    http: httpx.AsyncClient, endpoint: str, config: IntrospectionConfig, token: str
) -> dict[str, Any]:
    """The introspection answer for ``token``; ``inactive`` unless ``active`` is ``true``."""
    try:
        answer = await request_json(
            http,
            "POST",
            endpoint,
            data={"token": token, "token_type_hint": "access_token"},
            headers={"Authorization": basic_authorization(config.client_id, config.client_secret)},
        )
    except FetchError as exc:
        raise TokenError(
            "introspection_unavailable", "the token introspection endpoint is unavailable"
        ) from exc
    active = answer.get("active")
    if not isinstance(active, bool):
        raise TokenError(
            "introspection_unavailable", "the introspection answer has no boolean 'active'"
        )
    if active is not True:
        raise TokenError("inactive", "the token is not active")
    return answer
