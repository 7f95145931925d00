"""SQL adapters of the API key ports (features/apikeys/ports.py). Statements on these
org-owned tables are scoped by ``organization_id``, except the lookups by a row's own random
id that the port names (verification, and the operator's CLI)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import ColumnElement

from ostiary.features.apikeys.models import ApiKey, KeyInUse, OwnerType, ServiceAccount
from ostiary.features.orgs.models import Cursor
from ostiary.storage.sqla.tables import api_keys, memberships, service_accounts, users
from ostiary.storage.sqla.uow import Connection

__all__ = ["SqlApiKeyStore", "SqlServiceAccountStore"]


def _after(table: Any, after: Cursor | None) -> ColumnElement[bool]:
    if after is None:
        return and_(True)
    created_at, item_id = after
    return or_(
        table.c.created_at > created_at,
        and_(table.c.created_at == created_at, table.c.id > item_id),
    )


def _account(row: Any) -> ServiceAccount:
    return ServiceAccount(
        id=row.id,
        organization_id=row.organization_id,
        name=row.name,
        description=row.description,
        project_id=row.project_id,
        disabled=bool(row.disabled),
        created_at=row.created_at,
    )


class SqlServiceAccountStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def add(self, account: ServiceAccount) -> bool:
        statement = insert(service_accounts).values(
            id=account.id,
            organization_id=account.organization_id,
            name=account.name,
            description=account.description,
            project_id=account.project_id,
            disabled=account.disabled,
            created_at=account.created_at,
        )
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(statement)
        except IntegrityError:
            return False
        return True

    async def _one(self, *conditions: ColumnElement[bool]) -> ServiceAccount | None:
        row = (await self._conn.execute(select(service_accounts).where(*conditions))).first()
        return _account(row) if row else None

    async def get(self, org_id: str, account_id: str) -> ServiceAccount | None:
        sa = service_accounts.c
        return await self._one(sa.organization_id == org_id, sa.id == account_id)

    async def locate(self, account_id: str) -> ServiceAccount | None:
        return await self._one(service_accounts.c.id == account_id)

    async def list(self, org_id: str, limit: int, after: Cursor | None) -> list[ServiceAccount]:
        sa = service_accounts.c
        query = (
            select(service_accounts)
            .where(sa.organization_id == org_id, _after(service_accounts, after))
            .order_by(sa.created_at, sa.id)
            .limit(limit)
        )
        return [_account(row) for row in await self._conn.execute(query)]

    async def ids_in_project(self, org_id: str, project_id: str) -> Sequence[str]:
        sa = service_accounts.c
        query = select(sa.id).where(sa.organization_id == org_id, sa.project_id == project_id)
        return [row.id for row in await self._conn.execute(query)]

    async def set_disabled(self, org_id: str, account_id: str, disabled: bool) -> bool:
        sa = service_accounts.c
        result = await self._conn.execute(
            update(service_accounts)
            .where(sa.organization_id == org_id, sa.id == account_id)
            .values(disabled=disabled)
        )
        return bool(result.rowcount)

    async def delete(self, org_id: str, account_id: str) -> bool:
        sa = service_accounts.c
        result = await self._conn.execute(
            delete(service_accounts).where(sa.organization_id == org_id, sa.id == account_id)
        )
        return bool(result.rowcount)


def _key(row: Any) -> ApiKey:
    return ApiKey(
        id=row.id,
        organization_id=row.organization_id,
        owner_type=row.owner_type,
        owner_id=row.owner_id,
        name=row.name,
        secret_hash=row.secret_hash,
        previous_hash=row.previous_hash,
        previous_expires_at=row.previous_expires_at,
        permissions=None if row.permissions is None else frozenset(row.permissions),
        models=tuple(row.models),
        allowed_ips=tuple(row.allowed_ips),
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


_k, _sa, _m, _u = api_keys.c, service_accounts.c, memberships.c, users.c
_IN_USE = (
    select(
        api_keys,
        _sa.id.label("sa_id"),
        _sa.disabled.label("sa_disabled"),
        _sa.project_id.label("sa_project_id"),
        _m.user_id.label("member_id"),
        _u.disabled.label("user_disabled"),
    )
    .select_from(
        api_keys.outerjoin(
            service_accounts,
            and_(
                _k.owner_type == "service_account",
                _sa.organization_id == _k.organization_id,
                _sa.id == _k.owner_id,
            ),
        )
        .outerjoin(
            memberships,
            and_(
                _k.owner_type == "user",
                _m.organization_id == _k.organization_id,
                _m.user_id == _k.owner_id,
            ),
        )
        .outerjoin(users, and_(_k.owner_type == "user", _u.id == _k.owner_id))
    )
    .where(_k.id == bindparam("key_id"))
)


class SqlApiKeyStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def add(self, key: ApiKey) -> None:
        await self._conn.execute(
            insert(api_keys).values(
                id=key.id,
                organization_id=key.organization_id,
                owner_type=key.owner_type,
                owner_id=key.owner_id,
                name=key.name,
                secret_hash=key.secret_hash,
                previous_hash=key.previous_hash,
                previous_expires_at=key.previous_expires_at,
                permissions=None if key.permissions is None else sorted(key.permissions),
                models=list(key.models),
                allowed_ips=list(key.allowed_ips),
                created_at=key.created_at,
                expires_at=key.expires_at,
                last_used_at=key.last_used_at,
                revoked_at=key.revoked_at,
            )
        )

    async def _one(self, *conditions: ColumnElement[bool]) -> ApiKey | None:
        row = (await self._conn.execute(select(api_keys).where(*conditions))).first()
        return _key(row) if row else None

    async def find(self, key_id: str) -> ApiKey | None:
        return await self._one(api_keys.c.id == key_id)

    async def get(self, org_id: str, key_id: str) -> ApiKey | None:
        return await self._one(api_keys.c.organization_id == org_id, api_keys.c.id == key_id)

    async def find_in_use(self, key_id: str) -> KeyInUse | None:
        # One statement instead of three (key, membership or service account, user): the
        # verification hot path. The joins stay inside the key's organization.
        row = (await self._conn.execute(_IN_USE, {"key_id": key_id})).first()
        if row is None:
            return None
        key = _key(row)
        if key.owner_type == "service_account":
            active = row.sa_id is not None and not row.sa_disabled
        else:
            active = (
                row.member_id is not None
                and row.user_disabled is not None
                and not row.user_disabled
            )
        return KeyInUse(key, bool(active), row.sa_project_id if active else None)

    async def list(
        self,
        org_id: str,
        limit: int,
        after: Cursor | None,
        owner: tuple[OwnerType, str] | None = None,
    ) -> list[ApiKey]:
        k = api_keys.c
        conditions = [k.organization_id == org_id, _after(api_keys, after)]
        if owner is not None:
            conditions += [k.owner_type == owner[0], k.owner_id == owner[1]]
        query = select(api_keys).where(*conditions).order_by(k.created_at, k.id).limit(limit)
        return [_key(row) for row in await self._conn.execute(query)]

    async def revoke(self, org_id: str, key_id: str, now: datetime) -> bool:
        k = api_keys.c
        result = await self._conn.execute(
            update(api_keys)
            .where(k.organization_id == org_id, k.id == key_id, k.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return bool(result.rowcount)

    async def revoke_owned(
        self, org_id: str, owner: tuple[OwnerType, str], now: datetime
    ) -> Sequence[str]:
        k = api_keys.c
        live = (
            k.organization_id == org_id,
            k.owner_type == owner[0],
            k.owner_id == owner[1],
            k.revoked_at.is_(None),
        )
        ids = [row[0] for row in await self._conn.execute(select(k.id).where(*live))]
        if ids:
            await self._conn.execute(
                update(api_keys).where(*live, k.id.in_(ids)).values(revoked_at=now)
            )
        return ids

    async def ids_owned(self, org_id: str, owner: tuple[OwnerType, str]) -> Sequence[str]:
        k = api_keys.c
        query = select(k.id).where(
            k.organization_id == org_id, k.owner_type == owner[0], k.owner_id == owner[1]
        )
        return [row[0] for row in await self._conn.execute(query)]

    async def rotate(
        self,
        org_id: str,
        key_id: str,
        secret_hash: str,
        previous_hash: str | None,
        previous_expires_at: datetime | None,
    ) -> bool:
        k = api_keys.c
        result = await self._conn.execute(
            update(api_keys)
            .where(k.organization_id == org_id, k.id == key_id, k.revoked_at.is_(None))
            .values(
                secret_hash=secret_hash,
                previous_hash=previous_hash,
                previous_expires_at=previous_expires_at,
            )
        )
        return bool(result.rowcount)

    async def touch(self, key_id: str, now: datetime, older_than: datetime) -> bool:
        k = api_keys.c
        result = await self._conn.execute(
            update(api_keys)
            .where(
                k.id == key_id,
                or_(k.last_used_at.is_(None), k.last_used_at <= older_than),
            )
            .values(last_used_at=now)
        )
        return bool(result.rowcount)
