"""Token endpoint grant handlers, one class per ``grant_type`` (RFC 6749 section 4), in one table.

Adding a grant type means one new module and one line in :data:`GRANT_HANDLERS`.
"""

from __future__ import annotations

from ostiary.features.oauth.grants.authorization_code import AuthorizationCodeGrant
from ostiary.features.oauth.grants.base import GrantContext, GrantHandler, TokenResponse
from ostiary.features.oauth.grants.client_credentials import ClientCredentialsGrant
from ostiary.features.oauth.grants.refresh_token import RefreshTokenGrant

__all__ = ["GRANT_HANDLERS", "GrantContext", "GrantHandler", "TokenResponse"]

GRANT_HANDLERS: dict[str, GrantHandler] = {
    "authorization_code": AuthorizationCodeGrant(),
    "refresh_token": RefreshTokenGrant(),
    "client_credentials": ClientCredentialsGrant(),
}
