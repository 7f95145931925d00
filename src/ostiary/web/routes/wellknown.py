"""Published metadata: the JWK Set (RFC 7517 section 5) and the discovery documents (OpenID
Connect Discovery 1.0 section 3, RFC 8414 section 2; each ``*_auth_signing_alg_values_supported``
is present where its ``*_auth_methods_supported`` lists ``private_key_jwt``, as RFC 8414
requires).

The set changes only on rotation, so it is cached in process for a few seconds and served
with ``Cache-Control: public, max-age`` no longer than the key publish lead time, so a
verifier that honours it always sees a new key before it signs (OIDC Core section 10.1.1).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from ostiary.features.clients.assertions import ASSERTION_ALGS
from ostiary.features.oauth.grants.token_exchange import TOKEN_EXCHANGE
from ostiary.protocol.claims import RELEASABLE_CLAIMS
from ostiary.protocol.jose import SUPPORTED_ALGS
from ostiary.protocol.oidc import ACR_PHISHING_RESISTANT, ACR_VALUES_SUPPORTED, acr_meets
from ostiary.protocol.scopes import MANAGE_SCOPE
from ostiary.web.deps import runtime_of

router = APIRouter(tags=["discovery"])

_LOCAL_TTL = 5.0


@router.get(
    "/.well-known/jwks.json",
    summary="JSON Web Key Set of the token signing keys (public members only)",
    response_class=Response,
    responses={200: {"content": {"application/jwk-set+json": {}, "application/json": {}}}},
)
async def jwks(request: Request) -> Response:
    rt = runtime_of(request)
    cached: tuple[float, object, bytes] | None = getattr(request.app.state, "jwks_cache", None)
    now = time.monotonic()
    # Also rebuilt when the signers' key list was reloaded since: a key that signs (even one
    # rotated in with no publish lead) is in the set this process serves from then on.
    if cached is None or now - cached[0] > _LOCAL_TTL or cached[1] is not rt.signers.keys:
        async with rt.unit() as unit:
            body = orjson.dumps(await unit.keys.jwks())
        cached = (now, rt.signers.keys, body)
        request.app.state.jwks_cache = cached
    tokens = rt.settings.tokens
    max_age = min(tokens.jwks_max_age, int(tokens.key_publish_lead.total_seconds()) or 0)
    return Response(
        cached[2],
        media_type="application/json",
        headers={"Cache-Control": f"public, max-age={max_age}"},
    )


def discovery_document(
    issuer: str,
    *,
    openid: bool,
    signing_algs: Sequence[str] = SUPPORTED_ALGS,
    passkeys: bool = True,
) -> dict[str, Any]:
    """What is implemented, exactly (OIDC Discovery 1.0 section 3, RFC 8414 section 2);
    ``signing_algs``: the enabled token signing algorithms (OSTIARY_SIGNING_ALGS);
    ``passkeys``: whether this deployment can use them (the phishing-resistant ``acr``
    classes are reachable only then)."""
    doc: dict[str, Any] = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "introspection_endpoint": f"{issuer}/introspect",
        "revocation_endpoint": f"{issuer}/revoke",
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            TOKEN_EXCHANGE,
        ],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none",
        ],
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ],
        "introspection_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none",
        ],
        "revocation_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "scopes_supported": [
            "openid",
            "profile",
            "email",
            "address",
            "phone",
            "offline_access",
            "roles",
            MANAGE_SCOPE,
        ],
        "authorization_response_iss_parameter_supported": True,
    }
    if openid:
        doc.update(
            {
                "userinfo_endpoint": f"{issuer}/userinfo",
                "end_session_endpoint": f"{issuer}/end_session",
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": list(signing_algs),
                "claims_supported": [
                    "sub",
                    "iss",
                    "aud",
                    "exp",
                    "iat",
                    "auth_time",
                    "nonce",
                    "acr",
                    "amr",
                    "azp",
                    "at_hash",
                    "sid",
                    *sorted(RELEASABLE_CLAIMS),
                ],
                "prompt_values_supported": ["none", "login", "consent", "select_account"],
                "acr_values_supported": [
                    acr
                    for acr in ACR_VALUES_SUPPORTED
                    if passkeys or not acr_meets(acr, ACR_PHISHING_RESISTANT)
                ],
                "claims_parameter_supported": True,
                "request_parameter_supported": False,
                "request_uri_parameter_supported": False,
            }
        )
    return doc


@router.get(
    "/.well-known/openid-configuration",
    summary="OpenID Provider metadata (OpenID Connect Discovery 1.0)",
)
async def openid_configuration(request: Request) -> Response:
    return _metadata(request)


@router.get(
    "/.well-known/oauth-authorization-server",
    summary="Authorization server metadata (RFC 8414)",
)
async def oauth_metadata(request: Request) -> Response:
    return _metadata(request)


def _metadata(request: Request) -> Response:
    """One document for both addresses (an OpenID provider's RFC 8414 metadata is the same)."""
    rt = runtime_of(request)
    doc = discovery_document(
        rt.oauth_policy.issuer,
        openid=True,
        signing_algs=rt.settings.tokens.signing_algs,
        passkeys=rt.relying_party is not None,
    )
    return Response(
        orjson.dumps(doc),
        media_type="application/json",
        headers={"Cache-Control": "public, max-age=300"},
    )
