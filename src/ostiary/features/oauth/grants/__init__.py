"""Token endpoint grant handlers, one class per ``grant_type`` (RFC 6749 section 4), in one table.

Adding a grant type means one new module and one line in :data:`GRANT_HANDLERS`.
"""

from __future__ import annotations

from ostiary.features.oauth.grants.authorization_code import AuthorizationCodeGrant
from ostiary.features.oauth.grants.base import GrantContext, GrantHandler, TokenResponse
from ostiary.features.oauth.grants.client_credentials import ClientCredentialsGrant
from ostiary.features.oauth.grants.refresh_token import RefreshTokenGrant
from ostiary.features.oauth.grants.token_exchange import TOKEN_EXCHANGE, TokenExchangeGrant

__all__ = [
    "GRANT_HANDLERS",
    "TOKEN_EXCHANGE_GRANT",
    "GrantContext",
    "GrantHandler",
    "TokenResponse",
]

# RFC 8693 with an API key as the subject token: a client is optional, and the key's IP
# allowlist needs the client's address (OAuthService.token passes it).
TOKEN_EXCHANGE_GRANT = TokenExchangeGrant()

GRANT_HANDLERS: dict[str, GrantHandler] = {
    "authorization_code": AuthorizationCodeGrant(),
    "refresh_token": RefreshTokenGrant(),
    "client_credentials": ClientCredentialsGrant(),
    TOKEN_EXCHANGE: TOKEN_EXCHANGE_GRANT,
}
