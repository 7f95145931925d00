"""OAuth client registrations (RFC 6749 section 2, RFC 7591 section 2 metadata names)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from ostiary.protocol.jose import Alg

__all__ = ["AUTH_METHODS", "GRANT_TYPES", "AuthMethod", "Client", "ClientType", "GrantType"]

ClientType = Literal["confidential", "public"]
AuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
GrantType = Literal["authorization_code", "refresh_token", "client_credentials"]
AUTH_METHODS: tuple[AuthMethod, ...] = (
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "none",
)
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
    disabled: bool = False
    secret_hash: str | None = None
    previous_secret_hash: str | None = None
    previous_secret_expires_at: datetime | None = None

    @property
    def is_public(self) -> bool:
        return self.client_type == "public"
