"""SQL adapters of the model catalog, policy and decision-log ports
(features/models/ports.py, features/policy/ports.py). Every statement names
``organization_id`` ("" for deployment-wide rows), so another organization's rows are never
read or written. Inserts that may clash run in a savepoint (a failed statement would abort
the unit's transaction on PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from ostiary.features.models.models import ModelEntry
from ostiary.features.policy.models import LogEntry, LoggedDecision, PolicyVersion
from ostiary.storage.sqla.driver import Sql
from ostiary.storage.sqla.tables import decision_log, model_catalog, policy_versions
from ostiary.storage.sqla.uow import Connection

__all__ = ["SqlDecisionLogStore", "SqlModelCatalogStore", "SqlPolicyStore"]


async def _insert(conn: Connection, statement: Any) -> bool:
    try:
        async with conn.begin_nested():
            await conn.execute(statement)
    except IntegrityError:
        return False
    return True


def _entry(row: Any) -> ModelEntry:
    return ModelEntry(
        row.organization_id, row.model_id, dict(row.attributes), row.created_at, row.updated_at
    )


class SqlModelCatalogStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def add_model(self, entry: ModelEntry) -> bool:
        return await _insert(
            self._conn,
            insert(model_catalog).values(
                organization_id=entry.organization_id,
                model_id=entry.model_id,
                attributes=entry.attributes,
                created_at=entry.created_at,
                updated_at=entry.updated_at,
            ),
        )

    async def update_model(self, entry: ModelEntry) -> bool:
        result = await self._conn.execute(
            update(model_catalog)
            .where(
                model_catalog.c.organization_id == entry.organization_id,
                model_catalog.c.model_id == entry.model_id,
            )
            .values(attributes=entry.attributes, updated_at=entry.updated_at)
        )
        return bool(result.rowcount)

    async def delete_model(self, org_id: str, model_id: str) -> bool:
        result = await self._conn.execute(
            delete(model_catalog).where(
                model_catalog.c.organization_id == org_id, model_catalog.c.model_id == model_id
            )
        )
        return bool(result.rowcount)

    async def get_model(self, org_id: str, model_id: str) -> ModelEntry | None:
        result = await self._conn.execute(
            select(model_catalog).where(
                model_catalog.c.organization_id == org_id, model_catalog.c.model_id == model_id
            )
        )
        row = result.first()
        return _entry(row) if row is not None else None

    async def list_models(self, org_id: str, limit: int, after: str | None) -> list[ModelEntry]:
        query = select(model_catalog).where(model_catalog.c.organization_id == org_id)
        if after is not None:
            query = query.where(model_catalog.c.model_id > after)
        result = await self._conn.execute(query.order_by(model_catalog.c.model_id).limit(limit))
        return [_entry(row) for row in result]


def _version(row: Any) -> PolicyVersion:
    return PolicyVersion(
        row.organization_id,
        row.version,
        row.policies,
        row.schema,
        row.note,
        row.actor,
        row.created_at,
    )


class SqlPolicyStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def add_version(self, version: PolicyVersion) -> bool:
        return await _insert(
            self._conn,
            insert(policy_versions).values(
                organization_id=version.organization_id,
                version=version.version,
                policies=version.policies,
                schema=version.schema,
                note=version.note,
                actor=version.actor,
                created_at=version.created_at,
            ),
        )

    async def latest_version(self, org_id: str) -> PolicyVersion | None:
        found = await self.list_versions(org_id, 1)
        return found[0] if found else None

    async def get_version(self, org_id: str, version: int) -> PolicyVersion | None:
        result = await self._conn.execute(
            select(policy_versions).where(
                policy_versions.c.organization_id == org_id,
                policy_versions.c.version == version,
            )
        )
        row = result.first()
        return _version(row) if row is not None else None

    async def list_versions(
        self, org_id: str, limit: int, before: int | None = None
    ) -> list[PolicyVersion]:
        query = select(policy_versions).where(policy_versions.c.organization_id == org_id)
        if before is not None:
            query = query.where(policy_versions.c.version < before)
        result = await self._conn.execute(
            query.order_by(policy_versions.c.version.desc()).limit(limit)
        )
        return [_version(row) for row in result]


_LOG_FIELDS = ("organization_id", "at", "expires_at", "request", "decision", "reason")
_INSERT_LOG = Sql(
    insert(decision_log).values({name: bindparam(name) for name in _LOG_FIELDS}), _LOG_FIELDS
)


def _json_text(value: Any) -> str:
    """JSON text as the column stores it (what SQLAlchemy's JSON type reads back)."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # what orjson refuses (a lone surrogate): the stdlib's way
        return json.dumps(value)


class SqlDecisionLogStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def append(self, entry: LogEntry) -> None:
        """One entry in the unit's transaction (a full buffer's overflow, or no buffer): the
        same INSERT as a batch's, not SQLAlchemy's (which cost about ten times as much)."""
        await self.append_many((entry,))

    async def append_many(self, entries: Sequence[LogEntry]) -> None:
        """One prepared INSERT run once per entry on the driver (sqlite3's and asyncpg's
        ``executemany``, in the unit's transaction: storage/sqla/driver.py), the request
        serialized with orjson. Through SQLAlchemy (its parameter processing, the stdlib json
        serializer, the greenlet hop) the same batch cost about 190,000 instructions per
        entry, a sixth of a single decision's (bench/authzen.py ``--callgrind``)."""
        if not entries:
            return
        driver = await self._conn.driver()
        stamp = driver.timestamp
        await driver.executemany(
            _INSERT_LOG,
            [
                (
                    e.organization_id,
                    stamp(e.at),
                    stamp(e.expires_at),
                    _json_text(e.request),
                    e.decision,
                    e.reason[:300],
                )
                for e in entries
            ],
        )

    async def recent(
        self,
        org_id: str,
        limit: int,
        *,
        before: int | None = None,
        decision: bool | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[LoggedDecision]:
        c = decision_log.c
        query = select(decision_log).where(c.organization_id == org_id)
        if before is not None:
            query = query.where(c.id < before)
        if decision is not None:
            query = query.where(c.decision == decision)
        if since is not None:
            query = query.where(c.at >= since)
        if until is not None:
            query = query.where(c.at < until)
        result = await self._conn.execute(query.order_by(c.id.desc()).limit(limit))
        return [
            LoggedDecision(
                row.id, row.organization_id, row.at, dict(row.request), row.decision, row.reason
            )
            for row in result
        ]
