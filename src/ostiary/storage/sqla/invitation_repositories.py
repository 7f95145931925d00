"""SQL adapter of features/invitations/ports.py. Every statement but the lookup by token
digest is scoped by ``organization_id``; spending and revoking are single-statement
compare-and-sets on ``status = 'pending'`` (on PostgreSQL a concurrent UPDATE waits for the
row and re-checks the condition, so exactly one of two accepts changes it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select, update

from ostiary.features.invitations.models import Invitation, MailStatus, Status
from ostiary.features.orgs.models import Cursor
from ostiary.storage.sqla.tables import org_invitations as t
from ostiary.storage.sqla.uow import Connection

__all__ = ["SqlInvitationStore"]

_FIELDS = [c.name for c in t.columns if c.name != "token_hash"]


def _invitation(row: Any) -> Invitation:
    values = {name: row._mapping[name] for name in _FIELDS}
    values["roles"] = tuple(values["roles"] or ())
    return Invitation(**values)


class SqlInvitationStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def add(self, invitation: Invitation, token_hash: str) -> None:
        values = {name: getattr(invitation, name) for name in _FIELDS}
        values["roles"] = list(invitation.roles)
        await self._conn.execute(insert(t).values(token_hash=token_hash, **values))

    async def _one(self, *conditions: Any) -> Invitation | None:
        row = (await self._conn.execute(select(t).where(*conditions))).first()
        return _invitation(row) if row else None

    async def get(self, org_id: str, invitation_id: str) -> Invitation | None:
        return await self._one(t.c.organization_id == org_id, t.c.id == invitation_id)

    async def get_by_token_hash(self, token_hash: str) -> Invitation | None:
        return await self._one(t.c.token_hash == token_hash)

    async def list_invitations(
        self, org_id: str, limit: int, after: Cursor | None, status: Status | None
    ) -> list[Invitation]:
        query = select(t).where(t.c.organization_id == org_id)
        if status is not None:
            query = query.where(t.c.status == status)
        if after is not None:
            created_at, item_id = after
            query = query.where(
                or_(
                    t.c.created_at > created_at,
                    and_(t.c.created_at == created_at, t.c.id > item_id),
                )
            )
        query = query.order_by(t.c.created_at, t.c.id).limit(limit)
        return [_invitation(row) for row in await self._conn.execute(query)]

    async def pending_for(self, org_id: str, email: str) -> list[Invitation]:
        query = select(t).where(
            t.c.organization_id == org_id, t.c.email == email, t.c.status == "pending"
        )
        return [_invitation(row) for row in await self._conn.execute(query)]

    async def end(
        self,
        org_id: str,
        invitation_id: str,
        status: Status,
        now: datetime,
        *,
        accepted_by: str | None = None,
        unexpired_at: datetime | None = None,
    ) -> bool:
        statement = update(t).where(
            t.c.organization_id == org_id, t.c.id == invitation_id, t.c.status == "pending"
        )
        if unexpired_at is not None:
            statement = statement.where(t.c.expires_at > unexpired_at)
        result = await self._conn.execute(
            statement.values(status=status, ended_at=now, accepted_by=accepted_by)
        )
        return bool(result.rowcount)

    async def reissue(
        self, org_id: str, invitation_id: str, token_hash: str, expires_at: datetime
    ) -> bool:
        result = await self._conn.execute(
            update(t)
            .where(t.c.organization_id == org_id, t.c.id == invitation_id, t.c.status == "pending")
            .values(token_hash=token_hash, expires_at=expires_at, mail_status="unsent")
        )
        return bool(result.rowcount)

    async def set_mail_status(self, org_id: str, invitation_id: str, status: MailStatus) -> None:
        await self._conn.execute(
            update(t)
            .where(t.c.organization_id == org_id, t.c.id == invitation_id)
            .values(mail_status=status)
        )
