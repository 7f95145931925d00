"""Records of the authorization server (what is stored, never the secrets themselves)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = ["AuthorizationCode", "Consent", "RefreshFamily", "RefreshToken", "RevocationKind"]

# "rbac": not a revocation but a cache invalidation riding the same fan-out (effective
# permissions of one principal, or of a whole organization; features/rbac/cache.py). "policy":
# likewise for the decision caches of an organization (features/policy/cache.py). "org": an
# organization's row changed or is gone (features/orgs/cache.py).
# "api_key": the access tokens exchanged for one API key (``ost_key_id``, RFC 8693 grant).
# "api_key_row": an invalidation of the verified key rows cached per node (a key, an owner or an
# organization; features/apikeys/cache.py). "user_row": a user's e-mail address changed (the
# decision subjects that carry it, features/policy/cache.py).
RevocationKind = Literal[
    "jti",
    "sid",
    "user",
    "client",
    "user_client",
    "family",
    "rbac",
    "policy",
    "api_key",
    "api_key_row",
    "user_row",
    "org",
]


@dataclass(slots=True)
class AuthorizationCode:
    code_hash: str
    client_id: str
    user_id: str
    sid: str
    redirect_uri: str
    scope: str
    code_challenge: str | None  # None: issued without PKCE (the client's mode allowed it)
    auth_time: datetime
    created_at: datetime
    expires_at: datetime
    resources: list[str] = field(default_factory=list)
    nonce: str | None = None
    amr: list[str] = field(default_factory=list)
    acr: str | None = None
    consumed_at: datetime | None = None
    family_id: str | None = None
    access_jti: str | None = None
    # The ``claims`` request parameter (OIDC Core 5.5), ClaimsRequest.to_json(); None: none.
    claims_request: dict[str, Any] | None = None
    # RFC 6749 section 4.1.3: if redirect_uri was in the authorization request, /token needs it.
    redirect_uri_sent: bool = False
    # An org-scoped client's: the user's active organization when the code was issued.
    org_id: str | None = None


@dataclass(slots=True)
class RefreshFamily:
    family_id: str
    client_id: str
    user_id: str
    sid: str | None
    scope: str
    auth_time: datetime
    created_at: datetime
    expires_at: datetime
    resources: list[str] = field(default_factory=list)
    amr: list[str] = field(default_factory=list)
    acr: str | None = None
    revoked_at: datetime | None = None
    revoked_reason: str | None = None
    # As on the code it came from: refreshed ID tokens release the same claims.
    claims_request: dict[str, Any] | None = None
    # As on the code: the organization stays the one of the grant for the family's life.
    org_id: str | None = None


@dataclass(slots=True)
class RefreshToken:
    token_hash: str
    family_id: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


@dataclass(slots=True)
class Consent:
    user_id: str
    client_id: str
    scopes: list[str]
    created_at: datetime
    updated_at: datetime
    # Claims approved one by one through the ``claims`` parameter (OIDC Core 5.5), beyond
    # those of the approved scopes.
    claims: list[str] = field(default_factory=list)
