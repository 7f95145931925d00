"""Service accounts and API keys (issue 12, section 3).

- A service account belongs to one organization (optionally one of its projects: its roles
  and permissions are then those of that project, RBAC's project scope) and gets roles through
  :class:`RbacService` as principal ``("service_account", id)``. Disabling or deleting one
  stops its keys at once: every verification reads the account's row (no cache), and deletion
  also drops its role assignments (``RbacService.principal_removed``) and revokes its keys.
- An API key belongs to a member of the organization or to a service account. Its secret is
  shown once and stored as HMAC-SHA256 under a key derived for this purpose (runtime:
  ``ostiary/api-key-hmac``), compared in constant time (protocol/api_keys.py gives the format).
- Permissions: a key's recorded permissions must be held by its owner when it is created
  (refused otherwise, naming what is missing); at each use the key may do the intersection of
  the recorded set with the owner's *current* effective permissions (RBAC, cached per node and
  invalidated on every node by the fan-out), so a demoted owner's keys lose what the owner
  lost. Optional allowlists: models (empty = any) and CIDR ranges (protocol/cidr.py).
- Verification (features/apikeys/verification.py, :class:`KeyVerifier`, to which this service
  delegates): the key's row from the node's :class:`KeyCache` or the database, the secret
  compared in constant time, every invalid key the same answer.
- Rotation gives the same key record a new secret; the old one keeps working until
  ``now + overlap`` (0: at once), then never.
- ``last_used_at`` is written at most once per :data:`TOUCH_INTERVAL` per key (verification.py).
- A service account of a project is deleted with the project (:meth:`project_deleting`).
- A revoked or expired key's row is deleted :data:`KEEP_ENDED_KEYS` later (features/retention).
- Every change is audited with its actor and organization.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from ostiary.features.apikeys.cache import key_mark, owner_mark
from ostiary.features.apikeys.models import (
    OWNER_TYPES,
    ApiKey,
    ApiKeyPrincipal,
    IssuedKey,
    OwnerType,
    ServiceAccount,
    Verification,
)
from ostiary.features.apikeys.ports import (
    ApiKeyStore,
    ExchangedTokens,
    KeyChanges,
    ServiceAccountStore,
    UserStatus,
)
from ostiary.features.apikeys.verification import TOUCH_INTERVAL, KeyVerifier, UsageMarks
from ostiary.features.audit.service import AuditTrail
from ostiary.features.clock import Clock
from ostiary.features.orgs.models import (
    Conflict,
    InvalidInput,
    NotFound,
    decode_cursor,
    encode_cursor,
)
from ostiary.features.orgs.service import MAX_PAGE, OrgService, check_name
from ostiary.features.rbac.models import InvalidPermission
from ostiary.features.rbac.service import RbacService
from ostiary.protocol import permissions as perms
from ostiary.protocol.api_keys import new_api_key, permissions_within
from ostiary.protocol.cidr import CidrError, parse_cidrs
from ostiary.protocol.opaque_secrets import secret_digest

__all__ = [
    "DEFAULT_OVERLAP",
    "KEEP_ENDED_KEYS",
    "MAX_MODELS",
    "MAX_OVERLAP",
    "TOUCH_INTERVAL",
    "ApiKeyService",
    "UsageMarks",
]

DEFAULT_OVERLAP = timedelta(hours=24)
MAX_OVERLAP = timedelta(days=30)
MAX_MODELS = 100
# How long a revoked or expired key's row stays (listed as such) before retention deletes it.
KEEP_ENDED_KEYS = timedelta(days=90)
_MAX_LIFETIME = timedelta(days=3650)


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be 1 to {MAX_PAGE}")
    return limit


def _check_models(models: Sequence[str]) -> tuple[str, ...]:
    """Model names as a caller will send them: 1-200 printable characters, no spaces."""
    found: list[str] = []
    for model in models:
        if (
            not model
            or len(model) > 200
            or any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in model)
        ):
            raise InvalidInput(
                f"invalid model name {model[:80]!r}: 1 to 200 characters, no spaces or control "
                "characters"
            )
        if model not in found:
            found.append(model)
    if len(found) > MAX_MODELS:
        raise InvalidInput(f"at most {MAX_MODELS} models")
    return tuple(found)


def _check_ips(ranges: Sequence[str] | None) -> tuple[str, ...]:
    if ranges is None:
        return ()
    try:
        return tuple(str(net) for net in parse_cidrs(ranges))
    except CidrError as exc:
        raise InvalidInput(str(exc)) from None


class ApiKeyService:
    def __init__(
        self,
        accounts: ServiceAccountStore,
        keys: ApiKeyStore,
        orgs: OrgService,
        rbac: RbacService,
        users: UserStatus,
        audit: AuditTrail,
        clock: Clock,
        *,
        pepper: bytes,
        verifier: KeyVerifier,
        exchanged: ExchangedTokens | None = None,
        changes: KeyChanges | None = None,
    ) -> None:
        self._accounts = accounts
        self._keys = keys
        self._orgs = orgs
        self._rbac = rbac
        self._users = users
        self._audit = audit
        self._clock = clock
        self._pepper = pepper
        self._verifier = verifier
        self._exchanged = exchanged
        self._changes = changes

    async def _stopped(self, key_ids: Sequence[str]) -> None:
        """The tokens exchanged for these keys end too (a revocation of kind ``api_key``)."""
        if key_ids and self._exchanged is not None:
            await self._exchanged.api_keys_stopped(key_ids)

    async def _changed(self, *marks: str) -> None:
        """Every node's cached rows that depend on these marks are stale."""
        if self._changes is not None:
            await self._changes.api_keys_changed(marks)

    # -- service accounts ------------------------------------------------------------------

    async def create_service_account(
        self,
        org_id: str,
        name: str,
        *,
        description: str = "",
        project: str | None = None,
        roles: Sequence[str] = (),
        actor: str | None,
    ) -> ServiceAccount:
        """A service account, with ``roles`` assigned (in ``project`` if it belongs to one)."""
        await self._orgs.get(org_id)
        name = check_name(name, "name", 100)
        if len(description) > 500:
            raise InvalidInput("description must be at most 500 characters")
        project_id = (await self._orgs.get_project(org_id, project)).id if project else None
        account = ServiceAccount(
            str(uuid.uuid4()), org_id, name, description, project_id, False, self._clock.now()
        )
        if not await self._accounts.add(account):
            raise Conflict(f"a service account named {name!r} exists")
        await self._audit.org_change(
            "service_account.create", org_id, actor, account.id, name=name, project_id=project_id
        )
        for role in roles:
            await self._rbac.assign(
                org_id, ("service_account", account.id), role, project_id=project_id, actor=actor
            )
        return account

    async def get_service_account(self, org_id: str, account_id: str) -> ServiceAccount:
        account = await self._accounts.get(org_id, account_id) if len(account_id) <= 36 else None
        if account is None:
            raise NotFound("no such service account")
        return account

    async def locate_service_account(self, account_id: str) -> ServiceAccount:
        """A service account by id alone (the operator's CLI)."""
        account = await self._accounts.locate(account_id) if len(account_id) <= 36 else None
        if account is None:
            raise NotFound("no such service account")
        return account

    async def list_service_accounts(
        self, org_id: str, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[ServiceAccount], str | None]:
        await self._orgs.get(org_id)
        items = await self._accounts.list(org_id, _limit(limit) + 1, decode_cursor(cursor))
        if len(items) <= limit:
            return items, None
        items = items[:limit]
        return items, encode_cursor(items[-1].created_at, items[-1].id)

    async def set_service_account_disabled(
        self, org_id: str, account_id: str, disabled: bool = True, *, actor: str | None
    ) -> ServiceAccount:
        """Disable (its keys stop working at once) or enable a service account."""
        account = await self.get_service_account(org_id, account_id)
        if account.disabled != disabled:
            await self._accounts.set_disabled(org_id, account.id, disabled)
            if disabled:
                owner: tuple[OwnerType, str] = ("service_account", account.id)
                await self._changed(owner_mark(*owner))
                await self._stopped(await self._keys.ids_owned(org_id, owner))
            action = "service_account.disable" if disabled else "service_account.enable"
            await self._audit.org_change(action, org_id, actor, account.id)
        return replace(account, disabled=disabled)

    async def delete_service_account(
        self, org_id: str, account_id: str, *, actor: str | None
    ) -> None:
        """Delete a service account with its role assignments; its keys are revoked."""
        account = await self.get_service_account(org_id, account_id)
        owner: tuple[OwnerType, str] = ("service_account", account.id)
        await self._keys.revoke_owned(org_id, owner, self._clock.now())
        await self._changed(owner_mark(*owner))
        await self._stopped(await self._keys.ids_owned(org_id, owner))
        await self._rbac.principal_removed(org_id, owner, actor=actor)
        await self._accounts.delete(org_id, account.id)
        await self._audit.org_change("service_account.delete", org_id, actor, account.id)

    async def project_deleting(self, org_id: str, project_id: str, *, actor: str | None) -> int:
        """A project is being deleted: its service accounts go with it (their keys revoked,
        their role assignments dropped), as :meth:`delete_service_account` does each."""
        ids = await self._accounts.ids_in_project(org_id, project_id)
        for account_id in ids:
            await self.delete_service_account(org_id, account_id, actor=actor)
        return len(ids)

    # -- keys ------------------------------------------------------------------------------

    async def _owner_permissions(
        self, org_id: str, owner: tuple[OwnerType, str]
    ) -> tuple[frozenset[str], str | None] | None:
        """The owner's current effective permissions and project, or None if the owner can
        hold no key now (not a member, disabled or gone)."""
        kind, owner_id = owner
        project_id = None
        if kind == "user":
            if not await self._orgs.is_member(org_id, owner_id):
                return None
            if not await self._users.user_active(owner_id):
                return None
        else:
            account = await self._accounts.get(org_id, owner_id)
            if account is None or account.disabled:
                return None
            project_id = account.project_id
        held = await self._rbac.effective_permissions(org_id, kind, owner_id, project_id)
        return held, project_id

    async def create_key(
        self,
        org_id: str,
        owner: tuple[OwnerType, str],
        *,
        name: str = "",
        permissions: Sequence[str] | None = None,
        models: Sequence[str] = (),
        allowed_ips: Sequence[str] | None = None,
        expires_at: datetime | None = None,
        expires_in: timedelta | None = None,
        actor: str | None,
    ) -> IssuedKey:
        """A new key for a member (``("user", id)``) or a service account of the
        organization. ``permissions`` None: all of the owner's, now and later; a list must be
        within the owner's current permissions. ``expires_in``: from now (instead of
        ``expires_at``). The key is in :attr:`IssuedKey.secret`, once."""
        await self._orgs.get(org_id)
        kind, owner_id = owner
        if kind not in OWNER_TYPES:
            raise InvalidInput("the owner must be a user or a service account")
        if kind == "user":
            await self._orgs.require_member(org_id, owner_id)
        else:
            await self.get_service_account(org_id, owner_id)
        current = await self._owner_permissions(org_id, owner)
        if current is None:
            raise InvalidInput("this owner cannot hold keys now (disabled)")
        held, _project = current
        recorded: frozenset[str] | None = None
        if permissions is not None:
            try:
                recorded = perms.validate_permissions(permissions)
            except perms.InvalidPermission as exc:
                raise InvalidPermission(str(exc)) from None
            missing = permissions_within(recorded, held)
            if missing:
                raise InvalidPermission(
                    "a key cannot hold permissions its owner lacks: " + ", ".join(missing)
                )
        name = check_name(name, "name", 100) if name.strip() else "API key"
        now = self._clock.now()
        if expires_in is not None:
            if expires_at is not None:
                raise InvalidInput("give expires_at or expires_in, not both")
            expires_at = now + expires_in
        if expires_at is not None and not now < expires_at <= now + _MAX_LIFETIME:
            raise InvalidInput("expires_at must be in the future, within ten years")
        key_id, secret = new_api_key()
        key = ApiKey(
            id=key_id,
            organization_id=org_id,
            owner_type=kind,
            owner_id=owner_id,
            name=name,
            secret_hash=secret_digest(self._pepper, secret),
            previous_hash=None,
            previous_expires_at=None,
            permissions=recorded,
            models=_check_models(models),
            allowed_ips=_check_ips(allowed_ips),
            created_at=now,
            expires_at=expires_at,
            last_used_at=None,
            revoked_at=None,
        )
        await self._keys.add(key)
        await self._audit.org_change(
            "api_key.create",
            org_id,
            actor,
            key_id,
            owner_type=kind,
            owner_id=owner_id,
            permissions=None if recorded is None else sorted(recorded),
            models=list(key.models),
            allowed_ips=list(key.allowed_ips),
            expires_at=expires_at.isoformat() if expires_at else None,
        )
        return IssuedKey(key, secret)

    async def get_key(self, org_id: str, key_id: str) -> ApiKey:
        key = await self._keys.get(org_id, key_id) if len(key_id) <= 64 else None
        if key is None:
            raise NotFound("no such API key")
        return key

    async def locate_key(self, key_id: str) -> ApiKey:
        """A key by id alone (the operator's CLI)."""
        key = await self._keys.find(key_id) if len(key_id) <= 64 else None
        if key is None:
            raise NotFound("no such API key")
        return key

    async def list_keys(
        self,
        org_id: str,
        *,
        owner: tuple[OwnerType, str] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[ApiKey], str | None]:
        """The organization's keys (or one owner's), oldest first, revoked ones included."""
        await self._orgs.get(org_id)
        items = await self._keys.list(org_id, _limit(limit) + 1, decode_cursor(cursor), owner)
        if len(items) <= limit:
            return items, None
        items = items[:limit]
        return items, encode_cursor(items[-1].created_at, items[-1].id)

    async def revoke_key(self, org_id: str, key_id: str, *, actor: str | None) -> None:
        """Revoke a key: refused by every node from the next request on."""
        key = await self.get_key(org_id, key_id)
        if key.revoked_at is not None:
            raise Conflict("the key is revoked already")
        if not await self._keys.revoke(org_id, key.id, self._clock.now()):
            raise Conflict("the key is revoked already")  # by a concurrent request
        await self._changed(key_mark(key.id))
        await self._stopped([key.id])
        await self._audit.org_change("api_key.revoke", org_id, actor, key.id)

    async def rotate_key(
        self,
        org_id: str,
        key_id: str,
        *,
        overlap: timedelta = DEFAULT_OVERLAP,
        actor: str | None,
    ) -> IssuedKey:
        """A new secret for the key; the current one keeps working until now + ``overlap``
        (0: not at all), then never. A secret from before an earlier rotation is dropped."""
        if not timedelta(0) <= overlap <= MAX_OVERLAP:
            raise InvalidInput(f"the overlap must be 0 to {int(MAX_OVERLAP.total_seconds())} s")
        key = await self.get_key(org_id, key_id)
        now = self._clock.now()
        if key.revoked_at is not None:
            raise Conflict("the key is revoked")
        if key.expires_at is not None and key.expires_at <= now:
            raise Conflict("the key has expired")
        _same, secret = new_api_key(key.id)
        new_hash = secret_digest(self._pepper, secret)
        previous = key.secret_hash if overlap else None
        until = now + overlap if overlap else None
        if not await self._keys.rotate(org_id, key.id, new_hash, previous, until):
            raise Conflict("the key is revoked")  # by a concurrent request
        await self._changed(key_mark(key.id))
        await self._audit.org_change(
            "api_key.rotate",
            org_id,
            actor,
            key.id,
            overlap_seconds=int(overlap.total_seconds()),
        )
        rotated = replace(
            key, secret_hash=new_hash, previous_hash=previous, previous_expires_at=until
        )
        return IssuedKey(rotated, secret)

    async def owner_removed(
        self, org_id: str, owner: tuple[OwnerType, str], *, actor: str | None
    ) -> int:
        """Revoke every key of an owner leaving the organization (a member removed), and the
        tokens exchanged for them."""
        revoked = await self._keys.revoke_owned(org_id, owner, self._clock.now())
        if revoked:
            await self._changed(owner_mark(*owner))
        await self._stopped(revoked)
        if revoked:
            await self._audit.org_change(
                "api_key.revoke_owned",
                org_id,
                actor,
                owner[1],
                owner_type=owner[0],
                keys_revoked=len(revoked),
            )
        return len(revoked)

    # -- use -------------------------------------------------------------------------------

    async def verify(
        self, raw: str, *, ip: str | None = None, model: str | None = None
    ) -> Verification:
        """Check a presented key (:meth:`KeyVerifier.verify`)."""
        return await self._verifier.verify(raw, ip=ip, model=model)

    async def principal_of(self, org_id: str, key_id: str) -> ApiKeyPrincipal | None:
        """A live key of ``org_id`` named by its id (:meth:`KeyVerifier.principal_of`)."""
        return await self._verifier.principal_of(org_id, key_id)

    async def service_account_active(self, org_id: str, account_id: str) -> bool:
        """The service account exists in ``org_id`` and is not disabled."""
        account = await self._accounts.get(org_id, account_id) if len(account_id) <= 36 else None
        return account is not None and not account.disabled

    async def authenticate_api_key(self, raw: str, ip: str | None) -> ApiKeyPrincipal | None:
        """The principal of a valid key allowed from ``ip`` (see
        :meth:`KeyVerifier.authenticate_api_key`)."""
        return await self._verifier.authenticate_api_key(raw, ip)
