"""SQL adapters of the clients and oauth features' ports."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from ostiary.features.clients.models import Client
from ostiary.features.oauth.models import (
    AuthorizationCode,
    Consent,
    RefreshFamily,
    RefreshToken,
    RevocationKind,
)
from ostiary.storage.sqla.driver import Sql, row_reader, row_writer
from ostiary.storage.sqla.tables import (
    authorization_codes,
    client_assertions,
    clients,
    consents,
    refresh_families,
    refresh_tokens,
    revocations,
)
from ostiary.storage.sqla.uow import Connection

__all__ = [
    "SqlAssertionReplayStore",
    "SqlAuthorizationCodeStore",
    "SqlClientStore",
    "SqlConsentStore",
    "SqlRefreshTokenStore",
    "SqlRevocationStore",
]

_CLIENT_FIELDS = [c.name for c in clients.columns]


def _client(row: Any) -> Client:
    values = {name: row._mapping[name] for name in _CLIENT_FIELDS}
    for name in (
        "redirect_uris",
        "post_logout_redirect_uris",
        "grant_types",
        "scopes",
        "resources",
        "introspection_audiences",
    ):
        values[name] = list(values[name] or [])
    return Client(**values)


def _client_values(client: Client) -> dict[str, Any]:
    return {name: getattr(client, name) for name in _CLIENT_FIELDS}


class SqlClientStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def get(self, client_id: str) -> Client | None:
        query = select(clients).where(clients.c.client_id == client_id)
        row = (await self._conn.execute(query)).first()
        return _client(row) if row else None

    async def add(self, client: Client) -> None:
        await self._conn.execute(insert(clients).values(**_client_values(client)))

    async def update(self, client: Client) -> None:
        values = _client_values(client)
        del values["client_id"]
        await self._conn.execute(
            update(clients).where(clients.c.client_id == client.client_id).values(**values)
        )

    async def delete(self, client_id: str) -> bool:
        result = await self._conn.execute(delete(clients).where(clients.c.client_id == client_id))
        return bool(result.rowcount)

    async def list(self) -> list[Client]:
        query = select(clients).order_by(clients.c.created_at, clients.c.client_id)
        return [_client(r) for r in await self._conn.execute(query)]


_CODE_FIELDS = [c.name for c in authorization_codes.columns]


class SqlAuthorizationCodeStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def add(self, code: AuthorizationCode) -> None:
        values = {name: getattr(code, name) for name in _CODE_FIELDS}
        await self._conn.execute(insert(authorization_codes).values(**values))

    async def get(self, code_hash: str) -> AuthorizationCode | None:
        query = select(authorization_codes).where(authorization_codes.c.code_hash == code_hash)
        row = (await self._conn.execute(query)).first()
        if row is None:
            return None
        values = {name: row._mapping[name] for name in _CODE_FIELDS}
        values["resources"] = list(values["resources"] or [])
        values["amr"] = list(values["amr"] or [])
        return AuthorizationCode(**values)

    async def consume(
        self, code_hash: str, now: datetime, family_id: str | None, access_jti: str
    ) -> bool:
        result = await self._conn.execute(
            update(authorization_codes)
            .where(
                and_(
                    authorization_codes.c.code_hash == code_hash,
                    authorization_codes.c.consumed_at.is_(None),
                )
            )
            .values(consumed_at=now, family_id=family_id, access_jti=access_jti)
        )
        return result.rowcount == 1


_FAMILY_FIELDS = [c.name for c in refresh_families.columns]
_TOKEN_FIELDS = [c.name for c in refresh_tokens.columns]
_INSERT_FAMILY = insert(refresh_families)

# The refresh grant's statements run on the driver (driver.py): per grant they are the whole
# of its database work, and SQLAlchemy's execution path cost more CPU than everything else.
_TOKEN_WITH_FAMILY = Sql(
    select(*refresh_tokens.columns, *refresh_families.columns)
    .join_from(
        refresh_tokens,
        refresh_families,
        refresh_families.c.family_id == refresh_tokens.c.family_id,
    )
    .where(refresh_tokens.c.token_hash == bindparam("token_hash")),
    ("token_hash",),
)
_MARK_USED = Sql(
    update(refresh_tokens)
    .where(
        refresh_tokens.c.token_hash == bindparam("token_hash"),
        refresh_tokens.c.used_at.is_(None),
    )
    .values(used_at=bindparam("now")),
    ("now", "token_hash"),
)
_INSERT_TOKEN = Sql(insert(refresh_tokens), tuple(_TOKEN_FIELDS))
# PostgreSQL: the spend and the successor in one statement, atomic on its own; the successor
# is inserted only if the UPDATE spent the token, so the compare-and-set holds.
_ROTATE_POSTGRES = Sql.text(
    "WITH spent AS ("
    " UPDATE refresh_tokens SET used_at = ?"
    " WHERE token_hash = ? AND family_id = ? AND used_at IS NULL"
    " RETURNING family_id)"
    " INSERT INTO refresh_tokens (token_hash, family_id, created_at, expires_at, used_at)"
    " SELECT CAST(? AS VARCHAR), family_id, CAST(? AS TIMESTAMP WITH TIME ZONE),"
    " CAST(? AS TIMESTAMP WITH TIME ZONE), NULL FROM spent",
    ("now", "spent_hash", "family_id", "token_hash", "created_at", "expires_at"),
)


class SqlRefreshTokenStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def add_family(self, family: RefreshFamily) -> None:
        values = {name: getattr(family, name) for name in _FAMILY_FIELDS}
        await self._conn.execute(_INSERT_FAMILY, values)

    async def add_token(self, token: RefreshToken) -> None:
        driver = await self._conn.driver()
        await driver.execute(_INSERT_TOKEN, row_writer(refresh_tokens, driver)(token))

    async def get_token(self, token_hash: str) -> tuple[RefreshToken, RefreshFamily] | None:
        driver = await self._conn.driver(standalone=True)
        row = await driver.fetchone(_TOKEN_WITH_FAMILY, (token_hash,))
        if row is None:
            return None
        split = len(_TOKEN_FIELDS)
        token = RefreshToken(**row_reader(refresh_tokens, driver)(row[:split]))
        family = row_reader(refresh_families, driver)(row[split:])
        family["resources"] = list(family["resources"] or [])
        family["amr"] = list(family["amr"] or [])
        return token, RefreshFamily(**family)

    async def rotate(self, spent_hash: str, now: datetime, successor: RefreshToken) -> bool:
        if self._conn.dialect.name == "postgresql":
            # One statement, atomic alone: no transaction needed around it (a refresh grant is
            # then two round trips, the read and this, instead of five).
            driver = await self._conn.driver(standalone=True)
            params = (
                driver.timestamp(now),
                spent_hash,
                successor.family_id,
                successor.token_hash,
                driver.timestamp(successor.created_at),
                driver.timestamp(successor.expires_at),
            )
            return await driver.execute(_ROTATE_POSTGRES, params) == 1
        # SQLite: two statements in the unit's transaction (no round trips to save).
        driver = await self._conn.driver()
        if await driver.execute(_MARK_USED, (driver.timestamp(now), spent_hash)) != 1:
            return False
        await driver.execute(_INSERT_TOKEN, row_writer(refresh_tokens, driver)(successor))
        return True

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
        conditions: list[ColumnElement[bool]] = [refresh_families.c.revoked_at.is_(None)]
        if family_id is not None:
            conditions.append(refresh_families.c.family_id == family_id)
        if sid is not None:
            conditions.append(refresh_families.c.sid == sid)
        if user_id is not None:
            conditions.append(refresh_families.c.user_id == user_id)
        if client_id is not None:
            conditions.append(refresh_families.c.client_id == client_id)
        if len(conditions) == 1:
            raise ValueError("refusing to revoke every family: give a filter")
        ids = list(
            (
                await self._conn.execute(select(refresh_families.c.family_id).where(*conditions))
            ).scalars()
        )
        if ids:
            await self._conn.execute(
                update(refresh_families)
                .where(refresh_families.c.family_id.in_(ids))
                .values(revoked_at=now, revoked_reason=reason)
            )
        return ids


class SqlConsentStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def get(self, user_id: str, client_id: str) -> Consent | None:
        query = select(consents).where(
            consents.c.user_id == user_id, consents.c.client_id == client_id
        )
        row = (await self._conn.execute(query)).first()
        return _consent(row) if row else None

    async def put(self, consent: Consent) -> None:
        await self.delete(consent.user_id, consent.client_id)
        await self._conn.execute(
            insert(consents).values(
                user_id=consent.user_id,
                client_id=consent.client_id,
                scopes=list(consent.scopes),
                claims=list(consent.claims),
                created_at=consent.created_at,
                updated_at=consent.updated_at,
            )
        )

    async def delete(self, user_id: str, client_id: str) -> bool:
        result = await self._conn.execute(
            delete(consents).where(consents.c.user_id == user_id, consents.c.client_id == client_id)
        )
        return bool(result.rowcount)

    async def list_for_user(self, user_id: str) -> list[Consent]:
        query = (
            select(consents).where(consents.c.user_id == user_id).order_by(consents.c.created_at)
        )
        return [_consent(r) for r in await self._conn.execute(query)]


def _consent(row: Any) -> Consent:
    return Consent(
        row.user_id,
        row.client_id,
        list(row.scopes or []),
        row.created_at,
        row.updated_at,
        list(row.claims or []),
    )


class SqlRevocationStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def add(
        self, kind: RevocationKind, value: str, revoked_at: datetime, expires_at: datetime
    ) -> None:
        await self._conn.execute(
            insert(revocations).values(
                kind=kind, value=value[:300], revoked_at=revoked_at, expires_at=expires_at
            )
        )

    async def since(
        self, after_id: int, now: datetime, also: Sequence[int] = ()
    ) -> list[tuple[int, RevocationKind, str, datetime, datetime]]:
        newer = revocations.c.id > after_id
        query = (
            select(revocations)
            .where(
                or_(newer, revocations.c.id.in_(also)) if also else newer,
                revocations.c.expires_at > now,
            )
            .order_by(revocations.c.id)
            .limit(10_000)
        )
        return [
            (r.id, r.kind, r.value, r.revoked_at, r.expires_at)
            for r in await self._conn.execute(query)
        ]


class SqlAssertionReplayStore:
    """Seen client-assertion ids until they expire (RFC 7523 section 3, item 7)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def remember(self, key: str, expires_at: datetime) -> bool:
        await self._conn.execute(
            delete(client_assertions).where(
                client_assertions.c.expires_at < expires_at - timedelta(hours=1)
            )
        )
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(
                    insert(client_assertions).values(key=key, expires_at=expires_at)
                )
        except IntegrityError:
            return False
        return True
