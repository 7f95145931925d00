"""Statements on the driver (driver.py) beside SQLAlchemy's, in the unit's one transaction."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import bindparam, insert, select, update

from ostiary.features.clients.service import ClientRegistration
from ostiary.features.oauth.models import RefreshFamily, RefreshToken
from ostiary.storage.sqla.driver import Sql, SqliteDriver
from ostiary.storage.sqla.oauth_repositories import SqlRefreshTokenStore, SqlRevocationStore
from ostiary.storage.sqla.tables import refresh_tokens, revocations

_INSERT_REVOCATION = Sql(
    insert(revocations).values(
        kind=bindparam("kind"),
        value=bindparam("value"),
        revoked_at=bindparam("revoked_at"),
        expires_at=bindparam("expires_at"),
    ),
    ("kind", "value", "revoked_at", "expires_at"),
)
# Microseconds and a non-UTC offset: both representations must keep the instant exactly.
WHEN = datetime(2026, 11, 30, 14, 5, 6, 123456, tzinfo=UTC)
LATER = WHEN + timedelta(days=30)


@given(
    st.datetimes(
        min_value=datetime(2, 1, 1),
        max_value=datetime(9998, 12, 31),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-9, minutes=-30))]),
    )
)
def test_sqlite_timestamps_are_sqlalchemys_text_of_the_utc_instant(when: datetime) -> None:
    """The shortcut for datetimes already in UTC writes what the general way writes, which is
    what SQLAlchemy's SQLite DATETIME stores (read back to the same instant)."""
    text = SqliteDriver.timestamp(when)
    utc = when.astimezone(UTC)
    assert text == utc.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f").rjust(26, "0")
    assert SqliteDriver.datetime_of(text) == when


def test_parameters_are_named_in_the_order_the_sql_takes_them() -> None:
    statement = update(refresh_tokens).values(used_at=bindparam("now"))
    statement = statement.where(refresh_tokens.c.token_hash == bindparam("token_hash"))
    sql = Sql(statement, ("now", "token_hash"))
    assert sql.qmark.count("?") == 2
    assert "$1" in sql.numbered and "$2" in sql.numbered and "?" not in sql.numbered
    with pytest.raises(ValueError, match="takes"):
        Sql(statement, ("token_hash", "now"))
    assert Sql.text("SELECT ? + ?", ("a", "b")).numbered == "SELECT $1 + $2"
    with pytest.raises(ValueError, match="placeholders"):
        Sql.text("SELECT ?", ("a", "b"))


async def _stored_values(runtime: Any) -> list[str]:
    async with runtime.unit() as unit:
        rows = await unit.conn.execute(select(revocations.c.value).order_by(revocations.c.value))
        return [row.value for row in rows]


async def _write_both_ways(runtime: Any, *, fail: bool) -> None:
    async with runtime.unit() as unit:
        driver = await unit.conn.driver()
        params = ("jti", "driver-1", driver.timestamp(WHEN), driver.timestamp(LATER))
        assert await driver.execute(_INSERT_REVOCATION, params) == 1
        await SqlRevocationStore(unit.conn).add("jti", "sqlalchemy", WHEN, LATER)
        params = ("jti", "driver-2", driver.timestamp(WHEN), driver.timestamp(LATER))
        assert await driver.execute(_INSERT_REVOCATION, params) == 1
        if fail:
            raise RuntimeError("the request fails after its writes")


async def test_driver_and_sqlalchemy_statements_commit_or_roll_back_together(
    runtime: Any,
) -> None:
    with pytest.raises(RuntimeError):
        await _write_both_ways(runtime, fail=True)
    assert await _stored_values(runtime) == []  # nothing of the failed unit, on either path
    await _write_both_ways(runtime, fail=False)
    assert await _stored_values(runtime) == ["driver-1", "driver-2", "sqlalchemy"]
    async with runtime.unit() as unit:  # the driver's values read back through SQLAlchemy
        found = await SqlRevocationStore(unit.conn).since(0, WHEN)
    assert {(value, at, until) for _id, _kind, value, at, until in found} == {
        (value, WHEN, LATER) for value in ("driver-1", "driver-2", "sqlalchemy")
    }


async def _family(runtime: Any) -> RefreshFamily:
    async with runtime.unit() as unit:
        user = await unit.accounts.create_user("driver@example.com", "correct horse battery 92")
        client, _ = await unit.clients.register(
            ClientRegistration(name="App", redirect_uris=("https://app.example/cb",))
        )
        family = RefreshFamily(
            family_id="fam-1",
            client_id=client.client_id,
            user_id=user.id,
            sid="sid-1",
            scope="openid offline_access",
            resources=["https://api.example"],
            auth_time=WHEN.astimezone(timezone(timedelta(hours=-5))),
            amr=["pwd", "otp"],
            acr=None,
            created_at=WHEN,
            expires_at=LATER,
        )
        await SqlRefreshTokenStore(unit.conn).add_family(family)  # SQLAlchemy's path
    return family


async def test_refresh_rows_read_and_written_by_either_path_are_the_same(runtime: Any) -> None:
    family = await _family(runtime)
    by_driver = RefreshToken("hash-driver", family.family_id, WHEN, LATER, used_at=None)
    async with runtime.unit() as unit:
        store = SqlRefreshTokenStore(unit.conn)
        await store.add_token(by_driver)  # the driver's path
        await unit.conn.execute(  # SQLAlchemy's
            insert(refresh_tokens).values(
                token_hash="hash-sqlalchemy",
                family_id=family.family_id,
                created_at=WHEN,
                expires_at=LATER,
                used_at=WHEN,
            )
        )
    async with runtime.unit() as unit:
        store = SqlRefreshTokenStore(unit.conn)
        found = await store.get_token("hash-driver")
        assert found == (by_driver, family)
        found = await store.get_token("hash-sqlalchemy")
        assert found is not None and found[0].used_at == WHEN
        assert await store.get_token("no-such-hash") is None
        rows = await unit.conn.execute(
            select(refresh_tokens).where(refresh_tokens.c.token_hash == "hash-driver")
        )
        assert [(r.created_at, r.expires_at, r.used_at) for r in rows] == [(WHEN, LATER, None)]


def _successor(family: RefreshFamily, name: str) -> RefreshToken:
    return RefreshToken(name, family.family_id, WHEN, LATER)


async def test_a_token_is_rotated_once(runtime: Any) -> None:
    family = await _family(runtime)
    async with runtime.unit() as unit:
        store = SqlRefreshTokenStore(unit.conn)
        await store.add_token(_successor(family, "hash-1"))
        assert await store.rotate("hash-1", WHEN, _successor(family, "hash-2")) is True
        assert await store.rotate("hash-1", WHEN, _successor(family, "hash-3")) is False
        assert await store.rotate("no-such-hash", WHEN, _successor(family, "hash-4")) is False
    async with runtime.unit() as unit:
        store = SqlRefreshTokenStore(unit.conn)
        spent = await store.get_token("hash-1")
        assert spent is not None and spent[0].used_at == WHEN
        assert await store.get_token("hash-2") == (_successor(family, "hash-2"), family)
        assert await store.get_token("hash-3") is None  # a failed rotation adds nothing
        assert await store.get_token("hash-4") is None


async def test_standalone_statements_skip_the_transaction_only_on_postgresql(
    runtime: Any,
) -> None:
    family = await _family(runtime)
    async with runtime.unit() as unit:
        await SqlRefreshTokenStore(unit.conn).add_token(_successor(family, "hash-1"))
    async with runtime.unit() as unit:
        store = SqlRefreshTokenStore(unit.conn)
        assert await store.get_token("hash-1") is not None
        assert await store.rotate("hash-1", WHEN, _successor(family, "hash-2"))
        driver = await unit.conn.driver(standalone=True)
        # PostgreSQL: no BEGIN was sent; SQLite: BEGIN IMMEDIATE always, for the write lock.
        assert driver.in_transaction is (driver.name == "sqlite")
        await unit.conn.execute(select(revocations.c.id))  # SQLAlchemy's: in a transaction
        assert driver.in_transaction
    async with runtime.unit() as unit:
        assert await SqlRefreshTokenStore(unit.conn).get_token("hash-2") is not None


async def test_a_connection_the_server_ended_is_not_pooled_again(runtime: Any) -> None:
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL: a backend the server terminates (SQLite has no server)")
    import asyncpg
    from sqlalchemy.engine import make_url

    backend_pid = Sql.text("SELECT pg_backend_pid()", ())
    admin_dsn = make_url(runtime.database_url).set(drivername="postgresql")
    admin = await asyncpg.connect(admin_dsn.render_as_string(hide_password=False))

    async def unit_whose_connection_is_ended() -> None:
        async with runtime.unit() as unit:
            driver = await unit.conn.driver(standalone=True)
            row = await driver.fetchone(backend_pid, ())
            assert row is not None
            await admin.execute("SELECT pg_terminate_backend($1)", row[0])
            await asyncio.sleep(0.1)  # the termination notice reaches the client
            await driver.fetchone(backend_pid, ())

    lost = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)
    try:
        with pytest.raises(lost):
            await unit_whose_connection_is_ended()
    finally:
        await admin.close()
    # Every connection the pool hands out afterwards works (the ended one was discarded).
    for _ in range(runtime.engine.pool.size() + 1):
        async with runtime.unit() as unit:
            driver = await unit.conn.driver(standalone=True)
            assert await driver.fetchone(backend_pid, ()) is not None


@given(
    st.lists(
        st.tuples(
            st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)),
            st.integers(0, 999_999),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_sqlite_timestamps_in_the_same_second_keep_their_own_microseconds(
    seconds: list[tuple[datetime, int]],
) -> None:
    """The text of whole seconds is kept and reused: a run of instants in one second and then
    in others (including the one just before) each write their own exact text."""
    instants: list[datetime] = []
    for when, micro in seconds:
        base = when.replace(tzinfo=UTC)
        instants += [base, base.replace(microsecond=micro), base.replace(microsecond=0)]
        instants.append(base.replace(microsecond=0) - timedelta(microseconds=1))
    for when in instants:
        text = SqliteDriver.timestamp(when)
        assert text == when.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f").rjust(26, "0")


def test_sqlite_timestamps_of_the_same_clock_time_on_other_dates_are_not_confused() -> None:
    base = datetime(2026, 12, 3, 19, 45, 30, 250000, tzinfo=UTC)
    for when in (
        base,
        base + timedelta(days=1),
        base.replace(month=11),
        base.replace(year=2025),
        base.replace(hour=18),
        base.replace(minute=44),
        base.replace(second=29),
        base,
    ):
        assert SqliteDriver.timestamp(when) == when.strftime("%Y-%m-%d %H:%M:%S.%f")
