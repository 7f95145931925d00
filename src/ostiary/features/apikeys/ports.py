"""The stores the API key feature needs (SQL adapter: storage/sqla/apikey_repositories.py).

Every method on these org-owned rows takes the organization id and is scoped by it, with two
exceptions that look a row up by its own random id: :meth:`ApiKeyStore.find` (a presented key
names its row, and the row names its organization) and the ``locate`` methods the operator's
CLI uses to go from an id to its organization.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from ostiary.features.apikeys.models import ApiKey, KeyInUse, OwnerType, ServiceAccount
from ostiary.features.orgs.models import Cursor

__all__ = [
    "ApiKeyStore",
    "ExchangedTokens",
    "KeyChanges",
    "KeyRows",
    "OwnerPermissions",
    "ServiceAccountStore",
    "UserStatus",
]


class ServiceAccountStore(Protocol):
    async def add(self, account: ServiceAccount) -> bool:
        """Insert; False if the organization has one of that name."""
        ...

    async def get(self, org_id: str, account_id: str) -> ServiceAccount | None: ...

    async def locate(self, account_id: str) -> ServiceAccount | None: ...

    async def list(self, org_id: str, limit: int, after: Cursor | None) -> list[ServiceAccount]: ...

    async def ids_in_project(self, org_id: str, project_id: str) -> Sequence[str]:
        """The ids of the project's service accounts."""
        ...

    async def set_disabled(self, org_id: str, account_id: str, disabled: bool) -> bool: ...

    async def delete(self, org_id: str, account_id: str) -> bool: ...


class ApiKeyStore(Protocol):
    async def add(self, key: ApiKey) -> None: ...

    async def find(self, key_id: str) -> ApiKey | None:
        """The key by its id alone (one primary-key lookup)."""
        ...

    async def find_in_use(self, key_id: str) -> KeyInUse | None:
        """Verification's one round trip: the key by its id, with whether its owner may use
        it now (a user: a member of the key's organization and not disabled; a service
        account: of that organization and not disabled) and the service account's project."""
        ...

    async def get(self, org_id: str, key_id: str) -> ApiKey | None: ...

    async def list(
        self,
        org_id: str,
        limit: int,
        after: Cursor | None,
        owner: tuple[OwnerType, str] | None = None,
    ) -> list[ApiKey]: ...

    async def revoke(self, org_id: str, key_id: str, now: datetime) -> bool:
        """Mark revoked; False if absent or revoked already."""
        ...

    async def revoke_owned(
        self, org_id: str, owner: tuple[OwnerType, str], now: datetime
    ) -> Sequence[str]:
        """Revoke every live key of ``owner`` in the organization; their ids."""
        ...

    async def ids_owned(self, org_id: str, owner: tuple[OwnerType, str]) -> Sequence[str]:
        """The ids of every key of ``owner`` in the organization, revoked ones included."""
        ...

    async def rotate(
        self,
        org_id: str,
        key_id: str,
        secret_hash: str,
        previous_hash: str | None,
        previous_expires_at: datetime | None,
    ) -> bool:
        """Replace the secret; False if the key is absent or revoked."""
        ...

    async def touch(self, key_id: str, now: datetime, older_than: datetime) -> bool:
        """Set ``last_used_at = now`` if it is unset or at or before ``older_than`` (so that nodes
        together write at most about once per interval); whether it was written."""
        ...


class KeyRows(Protocol):
    """What verification (features/apikeys/verification.py) reads and writes of the keys: a
    part of :class:`ApiKeyStore`."""

    async def find_in_use(self, key_id: str) -> KeyInUse | None: ...

    async def touch(self, key_id: str, now: datetime, older_than: datetime) -> bool: ...


class OwnerPermissions(Protocol):
    """A key owner's current effective permissions in an organization, or in one of its
    projects (served by RBAC, cached per node)."""

    async def effective_permissions(
        self,
        org_id: str,
        principal_type: OwnerType,
        principal_id: str,
        project_id: str | None = None,
    ) -> frozenset[str]: ...

    def stamp(self, org_id: str, principal_type: OwnerType, principal_id: str) -> object:
        """What the owner's effective permissions in the organization rest on now: while it
        compares equal, so do they (on every node: the revocation fan-out moves it). Read it
        before the permissions; None when it cannot be told (never equal to a stamp)."""
        ...


class UserStatus(Protocol):
    """Whether a user exists and is not disabled (served by the accounts feature)."""

    async def user_active(self, user_id: str) -> bool: ...


class ExchangedTokens(Protocol):
    """Ends the access tokens exchanged so far for these keys (RFC 8693 grant), on every node
    (served by the OAuth feature's revocation set)."""

    async def api_keys_stopped(self, key_ids: Sequence[str]) -> None: ...


class KeyChanges(Protocol):
    """Tells every node's key cache (features/apikeys/cache.py) that rows depending on these
    marks changed: at once on this node, on the others once the change has committed (served by
    the revocation fan-out, web/runtime.py)."""

    async def api_keys_changed(self, marks: Sequence[str]) -> None: ...
