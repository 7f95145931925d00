"""SQL adapters of the MFA feature's ports (features/mfa/ports.py).

The two atomic steps are single statements whose ``WHERE`` holds the condition, so concurrent
requests on any number of replicas serialize on the row: ``use_step`` updates only when the new
step is later than the stored one, ``consume`` only a code not used yet; ``rowcount`` says who
won. ``record_use`` of a passkey is the same: the new signature counter is stored only if
the stored one has not changed since it was read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from ostiary.features.mfa.models import Passkey, TotpFactor
from ostiary.storage.sqla.tables import recovery_codes, totp_factors, webauthn_credentials
from ostiary.storage.sqla.uow import Connection

__all__ = ["SqlPasskeyStore", "SqlRecoveryCodeStore", "SqlTotpStore"]

_TOTP_FIELDS = [c.name for c in totp_factors.columns]
_PASSKEY_FIELDS = [c.name for c in webauthn_credentials.columns]


class SqlTotpStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def get(self, user_id: str) -> TotpFactor | None:
        query = select(totp_factors).where(totp_factors.c.user_id == user_id)
        row = (await self._conn.execute(query)).first()
        if row is None:
            return None
        return TotpFactor(**{name: row._mapping[name] for name in _TOTP_FIELDS})

    async def put_pending(self, factor: TotpFactor) -> None:
        await self._conn.execute(
            delete(totp_factors).where(
                totp_factors.c.user_id == factor.user_id, totp_factors.c.confirmed_at.is_(None)
            )
        )
        values = {name: getattr(factor, name) for name in _TOTP_FIELDS}
        values["confirmed_at"] = None
        await self._conn.execute(insert(totp_factors).values(**values))

    async def confirm(self, user_id: str, confirmed_at: datetime, step: int) -> bool:
        result = await self._conn.execute(
            update(totp_factors)
            .where(totp_factors.c.user_id == user_id, totp_factors.c.confirmed_at.is_(None))
            .values(confirmed_at=confirmed_at, last_used_step=step)
        )
        return bool(result.rowcount == 1)

    async def use_step(self, user_id: str, step: int) -> bool:
        result = await self._conn.execute(
            update(totp_factors)
            .where(
                and_(
                    totp_factors.c.user_id == user_id,
                    totp_factors.c.confirmed_at.is_not(None),
                    or_(
                        totp_factors.c.last_used_step.is_(None),
                        totp_factors.c.last_used_step < step,
                    ),
                )
            )
            .values(last_used_step=step)
        )
        return bool(result.rowcount == 1)

    async def delete(self, user_id: str) -> bool:
        result = await self._conn.execute(
            delete(totp_factors).where(totp_factors.c.user_id == user_id)
        )
        return bool(result.rowcount)

    async def active_among(self, user_ids: list[str]) -> set[str]:
        if not user_ids:
            return set()
        query = select(totp_factors.c.user_id).where(
            totp_factors.c.user_id.in_(user_ids), totp_factors.c.confirmed_at.is_not(None)
        )
        return set((await self._conn.execute(query)).scalars())


class SqlRecoveryCodeStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def replace(self, user_id: str, digests: list[str], created_at: datetime) -> None:
        await self.delete_all(user_id)
        await self._conn.execute(
            insert(recovery_codes),
            [
                {"user_id": user_id, "code_hash": d, "created_at": created_at, "used_at": None}
                for d in digests
            ],
        )

    async def consume(self, user_id: str, digest: str, used_at: datetime) -> bool:
        result = await self._conn.execute(
            update(recovery_codes)
            .where(
                recovery_codes.c.user_id == user_id,
                recovery_codes.c.code_hash == digest,
                recovery_codes.c.used_at.is_(None),
            )
            .values(used_at=used_at)
        )
        return bool(result.rowcount == 1)

    async def remaining(self, user_id: str) -> int:
        query = select(func.count()).where(
            recovery_codes.c.user_id == user_id, recovery_codes.c.used_at.is_(None)
        )
        return int((await self._conn.execute(query)).scalar_one())

    async def delete_all(self, user_id: str) -> int:
        result = await self._conn.execute(
            delete(recovery_codes).where(recovery_codes.c.user_id == user_id)
        )
        return int(result.rowcount)

    async def remaining_among(self, user_ids: list[str]) -> dict[str, int]:
        if not user_ids:
            return {}
        query = (
            select(recovery_codes.c.user_id, func.count().label("left"))
            .where(recovery_codes.c.user_id.in_(user_ids), recovery_codes.c.used_at.is_(None))
            .group_by(recovery_codes.c.user_id)
        )
        rows = (await self._conn.execute(query)).mappings()
        return {row["user_id"]: int(row["left"]) for row in rows}


def _passkey(row: Any) -> Passkey:
    values = {name: row._mapping[name] for name in _PASSKEY_FIELDS}
    values["transports"] = tuple(values["transports"] or ())
    return Passkey(**values)


class SqlPasskeyStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def add(self, passkey: Passkey) -> bool:
        if await self.get(passkey.credential_id) is not None:
            return False
        values = {name: getattr(passkey, name) for name in _PASSKEY_FIELDS}
        values["transports"] = list(passkey.transports)
        try:
            # A savepoint: a concurrent insert of the same id must not end the transaction.
            async with self._conn.begin_nested():
                await self._conn.execute(insert(webauthn_credentials).values(**values))
        except IntegrityError:
            return False
        return True

    async def get(self, credential_id: bytes) -> Passkey | None:
        query = select(webauthn_credentials).where(
            webauthn_credentials.c.credential_id == credential_id
        )
        row = (await self._conn.execute(query)).first()
        return None if row is None else _passkey(row)

    async def list_for_user(self, user_id: str) -> list[Passkey]:
        query = (
            select(webauthn_credentials)
            .where(webauthn_credentials.c.user_id == user_id)
            .order_by(webauthn_credentials.c.created_at, webauthn_credentials.c.credential_id)
        )
        return [_passkey(row) for row in await self._conn.execute(query)]

    async def rename(self, user_id: str, credential_id: bytes, name: str) -> bool:
        result = await self._conn.execute(
            update(webauthn_credentials)
            .where(
                webauthn_credentials.c.user_id == user_id,
                webauthn_credentials.c.credential_id == credential_id,
            )
            .values(name=name)
        )
        return bool(result.rowcount == 1)

    async def delete(self, user_id: str, credential_id: bytes) -> bool:
        result = await self._conn.execute(
            delete(webauthn_credentials).where(
                webauthn_credentials.c.user_id == user_id,
                webauthn_credentials.c.credential_id == credential_id,
            )
        )
        return bool(result.rowcount == 1)

    async def delete_all(self, user_id: str) -> int:
        result = await self._conn.execute(
            delete(webauthn_credentials).where(webauthn_credentials.c.user_id == user_id)
        )
        return int(result.rowcount)

    async def record_use(
        self,
        credential_id: bytes,
        *,
        expected_count: int,
        new_count: int,
        backup_state: bool,
        used_at: datetime,
    ) -> bool:
        result = await self._conn.execute(
            update(webauthn_credentials)
            .where(
                webauthn_credentials.c.credential_id == credential_id,
                webauthn_credentials.c.sign_count == expected_count,
            )
            .values(sign_count=new_count, backup_state=backup_state, last_used_at=used_at)
        )
        return bool(result.rowcount == 1)

    async def count_among(self, user_ids: list[str]) -> dict[str, int]:
        if not user_ids:
            return {}
        query = (
            select(webauthn_credentials.c.user_id, func.count().label("n"))
            .where(webauthn_credentials.c.user_id.in_(user_ids))
            .group_by(webauthn_credentials.c.user_id)
        )
        rows = (await self._conn.execute(query)).mappings()
        return {row["user_id"]: int(row["n"]) for row in rows}
