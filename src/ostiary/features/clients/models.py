"""OAuth client registrations (RFC 6749 section 2, RFC 7591 section 2 metadata names)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ostiary.protocol.jose import Alg
from ostiary.protocol.pkce import PKCE_MODES, PkceMode

__all__ = [
    "AUTH_METHODS",
    "GRANT_TYPES",
    "PKCE_MODES",
    "SECRET_METHODS",
    "AuthMethod",
    "Client",
    "ClientType",
    "GrantType",
    "PkceMode",
]

ClientType = Literal["confidential", "public"]
AuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
GrantType = Literal["authorization_code", "refresh_token", "client_credentials"]
AUTH_METHODS: tuple[AuthMethod, ...] = (
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "none",
)
# RFC 6749 section 2.3.1: a client that holds a secret may send it either way.
SECRET_METHODS: frozenset[AuthMethod] = frozenset({"client_secret_basic", "client_secret_post"})
GRANT_TYPES: tuple[GrantType, ...] = ("authorization_code", "refresh_token", "client_credentials")


@dataclass(slots=True)
class Client:
    client_id: str
    name: str
    client_type: ClientType
    token_endpoint_auth_method: AuthMethod
    created_at: datetime
    updated_at: datetime
    redirect_uris: list[str] = field(default_factory=list)
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    grant_types: list[GrantType] = field(default_factory=list)
    scopes: list[str] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
    # A resource server's registration (RFC 7662 section 4): it may introspect tokens whose
    # ``aud`` includes one of these (besides the tokens issued to itself).
    introspection_audiences: list[str] = field(default_factory=list)
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    access_token_ttl: int | None = None
    id_token_ttl: int | None = None
    refresh_token_ttl: int | None = None
    # The JWS algorithm of the client's ID tokens (OpenID Connect Dynamic Client Registration
    # 1.0 section 2) and access tokens (RFC 9068 section 2.1: any asymmetric algorithm); None:
    # the deployment default (OSTIARY_ID_TOKEN_SIGNING_ALG, OSTIARY_ACCESS_TOKEN_SIGNING_ALG).
    id_token_signed_response_alg: Alg | None = None
    access_token_signed_response_alg: Alg | None = None
    first_party: bool = False
    # When the client may go without PKCE (protocol/pkce.py); see ``effective_pkce``.
    pkce: PkceMode = "required"
    # Its tokens carry the user's active organization (``org_id``) and, with the ``roles``
    # scope, ``org_roles`` and ``permissions`` there (issue 12; README "Org-scoped clients").
    org_scoped: bool = False
    disabled: bool = False
    secret_hash: str | None = None
    previous_secret_hash: str | None = None
    previous_secret_expires_at: datetime | None = None

    @property
    def is_public(self) -> bool:
        return self.client_type == "public"

    @property
    def effective_pkce(self) -> PkceMode:
        """Public clients always need PKCE (RFC 9700 section 2.1.1), whatever is stored."""
        return "required" if self.is_public else self.pkce
