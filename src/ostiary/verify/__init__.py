"""Verify Ostiary access tokens in a resource server, offline.

A small, standalone module (it imports nothing else of Ostiary) for services that receive
Ostiary access tokens::

    from ostiary.verify import TokenVerifier, TokenError, require_token

    verifier = TokenVerifier("https://id.example.com", audience="https://api.example.com")
    token = await verifier.verify(bearer, required_scopes=["models:read"])

    ReadModels = Annotated[VerifiedToken, Depends(require_token(verifier, "models:read"))]

    @app.get("/models")
    async def models(token: ReadModels) -> list[str]: ...

Specifications: RFC 9068 (JWT profile for access tokens), RFC 7519 section 4.1 (registered
claims), RFC 7515 (JWS), RFC 7517 (JWK Set), RFC 8725 (JWT best current practice: section 3.1
algorithm verification, section 3.11 explicit typing), OpenID Connect Discovery 1.0 / RFC 8414
(metadata), RFC 6750 (bearer tokens, ``WWW-Authenticate``), RFC 7662 (introspection).
"""

from ostiary.verify._errors import TokenError, TokenErrorReason
from ostiary.verify._fastapi import require_token
from ostiary.verify._introspection import IntrospectionConfig
from ostiary.verify._token import VerifiedToken
from ostiary.verify._verifier import DEFAULT_ALGORITHMS, TokenVerifier

__all__ = [
    "DEFAULT_ALGORITHMS",
    "IntrospectionConfig",
    "TokenError",
    "TokenErrorReason",
    "TokenVerifier",
    "VerifiedToken",
    "require_token",
]
