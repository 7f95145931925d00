"""Alembic migrations: up, down, up again on every backend, and the models match them."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, make_url

from ostiary.storage.sqla.migrate import downgrade, head_revision, upgrade
from ostiary.storage.sqla.tables import metadata
from tests.conftest import TEST_DATABASE_URL, pg_exec

BACKENDS = ["sqlite", *(["postgres"] if TEST_DATABASE_URL else [])]


@pytest.fixture(params=BACKENDS)
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own (migrations must not share one with other tests)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
        return
    assert TEST_DATABASE_URL
    name = f"ostiary_mig_{secrets.token_hex(4)}"
    pg_exec(TEST_DATABASE_URL, f'CREATE DATABASE "{name}"')
    url = make_url(TEST_DATABASE_URL).set(drivername="postgresql+asyncpg", database=name)
    yield url.render_as_string(hide_password=False)
    pg_exec(TEST_DATABASE_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _inspect(url: str, fn: object) -> object:
    import asyncio

    from ostiary.storage.sqla.engine import create_engine as create_async

    async def run() -> object:
        engine = create_async(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(fn)  # type: ignore[arg-type]
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names()) - {"alembic_version"}


def _diff(conn: Connection) -> list[object]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def _revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def test_upgrade_downgrade_upgrade(empty_database: str) -> None:
    upgrade(empty_database)
    assert _inspect(empty_database, _tables) == set(metadata.tables)
    assert _inspect(empty_database, _revision) == head_revision()
    downgrade(empty_database, "base")
    assert _inspect(empty_database, _tables) == set()
    upgrade(empty_database)
    assert _inspect(empty_database, _tables) == set(metadata.tables)


def test_models_match_migrations(empty_database: str) -> None:
    upgrade(empty_database)
    assert _inspect(empty_database, _diff) == []


def test_head_revision_constant_matches_the_migration_files() -> None:
    from ostiary.storage.sqla.revision import HEAD_REVISION

    assert head_revision() == HEAD_REVISION


async def test_current_revision_without_alembic(empty_database: str) -> None:
    from ostiary.storage.sqla.engine import create_engine
    from ostiary.storage.sqla.revision import HEAD_REVISION, current_revision

    engine = create_engine(empty_database)
    try:
        assert await current_revision(engine) is None
        await asyncio.to_thread(upgrade, empty_database)
        assert await current_revision(engine) == HEAD_REVISION
    finally:
        await engine.dispose()


def test_0005_keeps_existing_clients_at_pkce_required(empty_database: str) -> None:
    """Upgrading changes no client's behaviour; the previous release can still insert clients
    and codes (server defaults), and a downgrade keeps codes issued without PKCE unusable."""
    from sqlalchemy import text

    client_columns = (
        "client_id, name, client_type, token_endpoint_auth_method, redirect_uris, "
        "post_logout_redirect_uris, grant_types, scopes, resources, first_party, disabled, "
        "created_at, updated_at"
    )
    client_values = (
        "'{id}', 'App', 'confidential', 'client_secret_basic', '[]', '[]', '[]', '[]', '[]', "
        "false, false, '2026-01-01 00:00:00', '2026-01-01 00:00:00'"
    )

    def insert_client(client_id: str) -> object:
        def run(conn: Connection) -> None:
            values = client_values.format(id=client_id)
            conn.execute(text(f"INSERT INTO clients ({client_columns}) VALUES ({values})"))
            conn.commit()

        return run

    def pkce_of(conn: Connection) -> dict[str, str]:
        rows = conn.execute(text("SELECT client_id, pkce FROM clients")).all()
        return {row[0]: row[1] for row in rows}

    def insert_code(challenge: str | None) -> object:
        def run(conn: Connection) -> None:
            conn.execute(
                text(
                    "INSERT INTO users (id, email, email_verified, name, disabled, created_at, "
                    "updated_at) VALUES ('u1', 'a@example.com', true, '', false, "
                    "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO authorization_codes (code_hash, client_id, user_id, sid, "
                    "redirect_uri, scope, resources, code_challenge, auth_time, amr, created_at, "
                    "expires_at) VALUES ('h1', 'old', 'u1', 's1', 'https://a.example/cb', "
                    "'openid', '[]', :challenge, '2026-01-01 00:00:00', '[]', "
                    "'2026-01-01 00:00:00', '2026-01-01 00:01:00')"
                ),
                {"challenge": challenge},
            )
            conn.commit()

        return run

    def code_row(conn: Connection) -> tuple[object, ...]:
        return tuple(conn.execute(text("SELECT * FROM authorization_codes")).one()._mapping.items())

    upgrade(empty_database, "0004")
    _inspect(empty_database, insert_client("old"))
    upgrade(empty_database)
    _inspect(empty_database, insert_client("inserted_by_0004_code"))
    assert _inspect(empty_database, pkce_of) == {
        "old": "required",
        "inserted_by_0004_code": "required",
    }
    _inspect(empty_database, insert_code(None))  # a code issued without PKCE
    row = dict(_inspect(empty_database, code_row))  # type: ignore[call-overload]
    assert row["code_challenge"] is None and not row["redirect_uri_sent"]
    downgrade(empty_database, "0004")
    row = dict(_inspect(empty_database, code_row))  # type: ignore[call-overload]
    assert row["code_challenge"] == "" and "redirect_uri_sent" not in row
    assert "pkce" not in _inspect(
        empty_database,
        lambda conn: {c["name"] for c in inspect(conn).get_columns("clients")},
    )  # type: ignore[operator]


def _old_rows(conn: Connection, keys: list[tuple[str, str, int]]) -> None:
    """Rows as the release before 0006 wrote them: keys (kid, alg, activation day), a client."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import JSON, Boolean, LargeBinary, column, insert, table

    from ostiary.storage.sqla.tables import UtcDateTime

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    old_keys = table(
        "signing_keys",
        column("kid"),
        column("alg"),
        column("public_jwk", JSON()),
        column("sealed_private_key", LargeBinary()),
        column("created_at", UtcDateTime()),
        column("activates_at", UtcDateTime()),
    )
    for kid, alg, day in keys:
        when = t0 + timedelta(days=day)
        conn.execute(
            insert(old_keys).values(
                kid=kid,
                alg=alg,
                public_jwk={},
                sealed_private_key=b"x",
                created_at=when,
                activates_at=when,
            )
        )
    old_clients = table(
        "clients",
        *(column(n) for n in ("client_id", "name", "client_type", "token_endpoint_auth_method")),
        *(column(n, JSON()) for n in ("redirect_uris", "post_logout_redirect_uris")),
        *(column(n, JSON()) for n in ("grant_types", "scopes", "resources")),
        *(column(n, Boolean()) for n in ("first_party", "disabled")),
        column("created_at", UtcDateTime()),
        column("updated_at", UtcDateTime()),
    )
    conn.execute(
        insert(old_clients).values(
            client_id="old",
            name="Old",
            client_type="confidential",
            token_endpoint_auth_method="client_secret_basic",
            redirect_uris=[],
            post_logout_redirect_uris=[],
            grant_types=[],
            scopes=[],
            resources=[],
            first_party=False,
            disabled=False,
            created_at=t0,
            updated_at=t0,
        )
    )
    conn.commit()


def _after(conn: Connection) -> tuple[dict[str, object], tuple[object, object]]:
    from sqlalchemy import select

    from ostiary.storage.sqla.tables import clients, signing_keys

    retired = dict(conn.execute(select(signing_keys.c.kid, signing_keys.c.retired_at)).all())
    algs = conn.execute(
        select(clients.c.id_token_signed_response_alg, clients.c.access_token_signed_response_alg)
    ).one()
    return retired, tuple(algs)


@pytest.mark.parametrize(
    ("keys", "client_algs"),
    [
        # Rotated ES256 -> RS256 -> ES256 -> RS256: clients got RS256; each key keeps the
        # window the single ring gave it, so no ES256 key signs again.
        ([("a", "ES256", 0), ("b", "RS256", 1), ("c", "ES256", 2), ("d", "RS256", 3)], "RS256"),
        ([("a", "ES256", 0), ("b", "ES256", 1)], "ES256"),  # never switched: ES256, as before
        ([], None),  # no key, no token yet: the new defaults
    ],
)
def test_0006_keeps_what_existing_clients_receive_and_each_key_its_window(
    empty_database: str, keys: list[tuple[str, str, int]], client_algs: str | None
) -> None:
    from datetime import UTC, datetime, timedelta

    upgrade(empty_database, "0004")
    _inspect(empty_database, lambda conn: _old_rows(conn, keys))
    upgrade(empty_database, "0006")
    retired, algs = _inspect(empty_database, _after)  # type: ignore[misc]
    assert algs == (client_algs, client_algs)
    day = datetime(2026, 1, 1, tzinfo=UTC)
    if len(keys) == 4:
        assert retired == {
            "a": day + timedelta(days=1),
            "b": day + timedelta(days=2),
            "c": day + timedelta(days=3),
            "d": None,
        }
    else:
        assert set(retired.values()) <= {None}
    downgrade(empty_database, "0004")
    upgrade(empty_database, "0006")
