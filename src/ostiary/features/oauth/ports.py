"""Stores of the authorization server (fosite-style: several tiny interfaces)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from ostiary.features.apikeys.models import Verification
from ostiary.features.oauth.models import (
    AuthorizationCode,
    Consent,
    RefreshFamily,
    RefreshToken,
    RevocationKind,
)

__all__ = [
    "ApiKeyVerifier",
    "AuthorizationCodeStore",
    "ConsentStore",
    "RefreshTokenStore",
    "RevocationStore",
]


class AuthorizationCodeStore(Protocol):
    async def add(self, code: AuthorizationCode) -> None: ...

    async def get(self, code_hash: str) -> AuthorizationCode | None: ...

    async def consume(
        self, code_hash: str, now: datetime, family_id: str | None, access_jti: str
    ) -> bool:
        """Mark used if still unused (atomic); False if another request consumed it first."""
        ...


class RefreshTokenStore(Protocol):
    async def add_family(self, family: RefreshFamily) -> None: ...

    async def add_token(self, token: RefreshToken) -> None: ...

    async def get_token(self, token_hash: str) -> tuple[RefreshToken, RefreshFamily] | None: ...

    async def rotate(self, spent_hash: str, now: datetime, successor: RefreshToken) -> bool:
        """Spend the token if unspent and add its successor, as one atomic step (a
        compare-and-set); False, and no successor, if it was spent already."""
        ...

    async def revoke_families(
        self,
        now: datetime,
        reason: str,
        *,
        family_id: str | None = None,
        sid: str | None = None,
        user_id: str | None = None,
        client_id: str | None = None,
    ) -> list[str]:
        """Revoke matching live families (all given filters must match); return their ids."""
        ...


class ConsentStore(Protocol):
    async def get(self, user_id: str, client_id: str) -> Consent | None: ...

    async def put(self, consent: Consent) -> None: ...

    async def delete(self, user_id: str, client_id: str) -> bool: ...

    async def list_for_user(self, user_id: str) -> list[Consent]: ...


class RevocationStore(Protocol):
    async def add(
        self, kind: RevocationKind, value: str, revoked_at: datetime, expires_at: datetime
    ) -> None: ...

    async def since(
        self, after_id: int, now: datetime, also: Sequence[int] = ()
    ) -> list[tuple[int, RevocationKind, str, datetime, datetime]]:
        """Unexpired revocations with id > ``after_id`` or in ``also``, by id."""
        ...


class ApiKeyVerifier(Protocol):
    """Checks a presented API key (features/apikeys ``ApiKeyService.verify``)."""

    async def verify(
        self, raw: str, *, ip: str | None = None, model: str | None = None
    ) -> Verification: ...
