"""What a grant handler gets to work with, and what it returns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from ostiary.features.clients.models import Client
from ostiary.features.clock import Clock
from ostiary.features.oauth.ports import AuthorizationCodeStore, RefreshTokenStore
from ostiary.features.oauth.revocation import RevocationService
from ostiary.features.oauth.tokens import TokenMinter

__all__ = ["GrantContext", "GrantHandler", "OAuthPolicy", "TokenResponse", "UserDirectory"]

TokenResponse = dict[str, Any]


@dataclass(frozen=True, slots=True)
class OAuthPolicy:
    issuer: str
    access_token_ttl: timedelta
    id_token_ttl: timedelta
    refresh_token_ttl: timedelta
    code_ttl: timedelta = timedelta(seconds=60)

    def access_ttl(self, client: Client) -> timedelta:
        return (
            timedelta(seconds=client.access_token_ttl)
            if client.access_token_ttl
            else (self.access_token_ttl)
        )

    def id_ttl(self, client: Client) -> timedelta:
        return timedelta(seconds=client.id_token_ttl) if client.id_token_ttl else self.id_token_ttl

    def refresh_ttl(self, client: Client) -> timedelta:
        return (
            timedelta(seconds=client.refresh_token_ttl)
            if client.refresh_token_ttl
            else (self.refresh_token_ttl)
        )


class UserDirectory(Protocol):
    """What grants need to know of users and sessions (served by other features' services)."""

    async def user_claims(self, user_id: str, scopes: tuple[str, ...]) -> dict[str, Any] | None:
        """Claims for the ID token / userinfo, or None if the user is gone or disabled."""
        ...

    async def session_active(self, sid: str) -> bool: ...


@dataclass(slots=True)
class GrantContext:
    codes: AuthorizationCodeStore
    refresh: RefreshTokenStore
    revocation: RevocationService
    minter: TokenMinter
    users: UserDirectory
    policy: OAuthPolicy
    pepper: bytes
    clock: Clock

    def now(self) -> datetime:
        return self.clock.now()


class GrantHandler(Protocol):
    async def handle(
        self, ctx: GrantContext, client: Client, form: dict[str, str]
    ) -> TokenResponse: ...
