"""features/apikeys/service.py over the real SQL stores (SQLite, and PostgreSQL + Redis when
configured): service accounts, key creation and narrowing, verification of every kind of
invalid key, expiry and rotation overlap on a fixed clock, removed members, disabled and
deleted service accounts, the throttled ``last_used_at`` write, and tenancy scoping."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from ostiary.features.apikeys.service import TOUCH_INTERVAL, UsageMarks
from ostiary.features.orgs.models import Conflict, InvalidInput, NotFound
from ostiary.features.rbac.models import InvalidPermission
from ostiary.protocol.api_keys import parse_api_key
from ostiary.storage.sqla.tables import api_keys, audit_events, role_assignments


async def _user(runtime: Any) -> str:
    async with runtime.unit() as unit:
        user = await unit.accounts.create_user(
            f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
        )
    return str(user.id)


async def _org(runtime: Any, *members: tuple[str, str]) -> str:
    async with runtime.unit() as unit:
        org = await unit.orgs.create(f"Org {secrets.token_hex(3)}", actor=None)
        for user, role in members:
            await unit.orgs.add_member(org.id, user, actor=None)
            await unit.rbac.assign(org.id, ("user", user), role, actor=None)
    return str(org.id)


async def _verify(runtime: Any, key: str, **kwargs: Any) -> Any:
    async with runtime.unit() as unit:
        return await unit.api_keys.verify(key, **kwargs)


async def _sa_key(runtime: Any, org: str, roles: tuple[str, ...] = ("member",), **kw: Any) -> Any:
    async with runtime.unit() as unit:
        account = await unit.api_keys.create_service_account(
            org, f"bot-{secrets.token_hex(3)}", roles=roles, actor=None
        )
        issued = await unit.api_keys.create_key(
            org, ("service_account", account.id), actor=None, **kw
        )
    return account, issued


async def test_a_key_is_shown_once_stored_as_hmac_and_verifies(runtime: Any) -> None:
    owner = await _user(runtime)
    org = await _org(runtime, (owner, "owner"))
    async with runtime.unit() as unit:
        issued = await unit.api_keys.create_key(
            org, ("user", owner), name="ci", permissions=["models:invoke"], actor=owner
        )
    assert issued.secret.startswith("ost_sk_")
    assert parse_api_key(issued.secret) == issued.key.id
    async with runtime.unit() as unit:
        stored = (await unit.conn.execute(select(api_keys))).one()
        events = {
            row.action: row
            for row in await unit.conn.execute(
                select(
                    audit_events.c.action,
                    audit_events.c.actor,
                    audit_events.c.organization_id,
                    audit_events.c.details,
                )
            )
        }
    assert issued.secret not in str(tuple(stored))
    assert secrets.compare_digest(stored.secret_hash, issued.key.secret_hash)
    assert len(stored.secret_hash) == 64 and stored.id == issued.key.id
    created = events["api_key.create"]
    assert created.actor == owner
    assert created.details["organization_id"] == org
    assert created.details["permissions"] == ["models:invoke"]
    assert issued.secret not in str(created.details) and issued.secret[31:] not in str(events)
    outcome = await _verify(runtime, issued.secret)
    assert outcome.valid
    principal = outcome.principal
    assert principal.owner == ("user", owner)
    assert principal.organization_id == org
    assert principal.permissions == {"models:invoke"}


async def test_every_kind_of_invalid_key_gets_the_same_answer(runtime: Any, clock: Any) -> None:
    owner = await _user(runtime)
    org = await _org(runtime, (owner, "owner"))
    async with runtime.unit() as unit:
        good = await unit.api_keys.create_key(org, ("user", owner), actor=None)
        revoked = await unit.api_keys.create_key(org, ("user", owner), actor=None)
        expiring = await unit.api_keys.create_key(
            org, ("user", owner), expires_at=clock.now() + timedelta(hours=1), actor=None
        )
        await unit.api_keys.revoke_key(org, revoked.key.id, actor=None)
    clock.advance(timedelta(hours=1))
    key_id = good.key.id
    wrong_secret = good.secret[:-4] + ("AAAA" if not good.secret.endswith("AAAA") else "BBBB")
    unknown_id = "ost_sk_" + secrets.token_hex(12) + good.secret[31:]
    candidates = [
        "",
        "garbage",
        "ost_sk_" + "x" * 70,
        wrong_secret,
        unknown_id,
        revoked.secret,
        expiring.secret,
        good.secret + "A",
        good.secret.upper(),
    ]
    for candidate in candidates:
        outcome = await _verify(runtime, candidate, ip="10.0.0.1", model="gpt")
        assert outcome.principal is None and outcome.reason is None, candidate
    assert (await _verify(runtime, good.secret)).valid
    assert key_id in good.secret


async def test_permissions_must_be_held_and_narrow_with_the_owner(runtime: Any) -> None:
    member = await _user(runtime)
    owner = await _user(runtime)
    org = await _org(runtime, (owner, "owner"), (member, "member"))
    async with runtime.unit() as unit:
        with pytest.raises(InvalidPermission, match="roles:manage"):
            await unit.api_keys.create_key(
                org, ("user", member), permissions=["models:invoke", "roles:manage"], actor=None
            )
        with pytest.raises(InvalidPermission, match="did you mean"):
            await unit.api_keys.create_key(
                org, ("user", member), permissions=["models:invok"], actor=None
            )
        narrow = await unit.api_keys.create_key(
            org, ("user", member), permissions=["models:invoke", "keys:read"], actor=None
        )
        inherit = await unit.api_keys.create_key(org, ("user", member), actor=None)
    assert (await _verify(runtime, narrow.secret)).principal.permissions == {
        "models:invoke",
        "keys:read",
    }
    # The owner loses "member" and gains only "reader": the key keeps what is left of its set.
    async with runtime.unit() as unit:
        await unit.rbac.set_roles(org, ("user", member), ["reader"], actor=None)
    assert (await _verify(runtime, narrow.secret)).principal.permissions == {"keys:read"}
    assert (await _verify(runtime, inherit.secret)).principal.permissions == {
        "models:read",
        "members:read",
        "keys:read",
    }
    # An owner's "*" stays "*" on a key that inherits, and a named set stays named.
    async with runtime.unit() as unit:
        owner_key = await unit.api_keys.create_key(org, ("user", owner), actor=None)
        star = await unit.api_keys.create_key(org, ("user", owner), permissions=["*"], actor=None)
        named = await unit.api_keys.create_key(
            org, ("user", owner), permissions=["audit:read"], actor=None
        )
    assert (await _verify(runtime, owner_key.secret)).principal.permissions == {"*"}
    assert (await _verify(runtime, star.secret)).principal.permissions == {"*"}
    assert (await _verify(runtime, named.secret)).principal.permissions == {"audit:read"}
    # A member without "*" cannot create a "*" key.
    async with runtime.unit() as unit:
        with pytest.raises(InvalidPermission):
            await unit.api_keys.create_key(org, ("user", member), permissions=["*"], actor=None)


async def test_only_members_and_own_service_accounts_hold_keys(runtime: Any) -> None:
    outsider = await _user(runtime)
    owner = await _user(runtime)
    org = await _org(runtime, (owner, "owner"))
    other = await _org(runtime, (outsider, "owner"))
    account, _issued = await _sa_key(runtime, other)
    async with runtime.unit() as unit:
        with pytest.raises(NotFound):
            await unit.api_keys.create_key(org, ("service_account", account.id), actor=None)
        with pytest.raises(Exception, match="not a member"):
            await unit.api_keys.create_key(org, ("user", outsider), actor=None)
        with pytest.raises(NotFound):
            await unit.api_keys.get_service_account(org, account.id)
        with pytest.raises(NotFound):
            await unit.api_keys.revoke_key(org, _issued.key.id, actor=None)
        listed, _ = await unit.api_keys.list_keys(org)
    assert listed == []


async def test_expiry_is_exact_on_a_fixed_clock(runtime: Any, clock: Any) -> None:
    owner = await _user(runtime)
    org = await _org(runtime, (owner, "owner"))
    async with runtime.unit() as unit:
        issued = await unit.api_keys.create_key(
            org, ("user", owner), expires_at=clock.now() + timedelta(days=1), actor=None
        )
        with pytest.raises(InvalidInput):
            await unit.api_keys.create_key(org, ("user", owner), expires_at=clock.now(), actor=None)
    clock.advance(timedelta(days=1) - timedelta(microseconds=1))
    assert (await _verify(runtime, issued.secret)).valid
    clock.advance(timedelta(microseconds=1))
    assert (await _verify(runtime, issued.secret)).principal is None


async def test_rotation_overlap_keeps_the_old_secret_until_its_end(
    runtime: Any, clock: Any
) -> None:
    owner = await _user(runtime)
    org = await _org(runtime, (owner, "owner"))
    async with runtime.unit() as unit:
        first = await unit.api_keys.create_key(org, ("user", owner), actor=None)
        second = await unit.api_keys.rotate_key(
            org, first.key.id, overlap=timedelta(hours=1), actor=None
        )
    assert second.key.id == first.key.id and second.secret != first.secret
    assert (await _verify(runtime, first.secret)).valid
    assert (await _verify(runtime, second.secret)).valid
    clock.advance(timedelta(minutes=59, seconds=59))
    assert (await _verify(runtime, first.secret)).valid
    clock.advance(timedelta(seconds=1))
    assert (await _verify(runtime, first.secret)).principal is None
    assert (await _verify(runtime, second.secret)).valid
    # A second rotation with no overlap: the previous secret stops at once, and the first one
    # (from two rotations back) never comes back.
    async with runtime.unit() as unit:
        third = await unit.api_keys.rotate_key(org, first.key.id, overlap=timedelta(0), actor=None)
        with pytest.raises(InvalidInput):
            await unit.api_keys.rotate_key(org, first.key.id, overlap=timedelta(-1), actor=None)
    assert (await _verify(runtime, second.secret)).principal is None
    assert (await _verify(runtime, first.secret)).principal is None
    assert (await _verify(runtime, third.secret)).valid
    async with runtime.unit() as unit:
        await unit.api_keys.revoke_key(org, first.key.id, actor=None)
        with pytest.raises(Conflict):
            await unit.api_keys.rotate_key(org, first.key.id, actor=None)
    assert (await _verify(runtime, third.secret)).principal is None


async def test_a_removed_members_keys_die(runtime: Any) -> None:
    owner = await _user(runtime)
    member = await _user(runtime)
    org = await _org(runtime, (owner, "owner"), (member, "member"))
    async with runtime.unit() as unit:
        issued = await unit.api_keys.create_key(org, ("user", member), actor=None)
    assert (await _verify(runtime, issued.secret)).valid
    async with runtime.unit() as unit:
        await unit.orgs.remove_member(org, member, actor=owner)
    assert (await _verify(runtime, issued.secret)).principal is None
    # Even added back, the revoked key stays dead.
    async with runtime.unit() as unit:
        await unit.orgs.add_member(org, member, actor=None)
    assert (await _verify(runtime, issued.secret)).principal is None


async def test_a_disabled_users_key_stops(runtime: Any) -> None:
    owner = await _user(runtime)
    org = await _org(runtime, (owner, "owner"))
    async with runtime.unit() as unit:
        issued = await unit.api_keys.create_key(org, ("user", owner), actor=None)
        email = (await unit.accounts.get(owner)).email
    assert (await _verify(runtime, issued.secret)).valid
    async with runtime.unit() as unit:
        await unit.accounts.disable(email)
    assert (await _verify(runtime, issued.secret)).principal is None


async def test_disabled_and_deleted_service_accounts_stop_their_keys(runtime: Any) -> None:
    owner = await _user(runtime)
    org = await _org(runtime, (owner, "owner"))
    account, issued = await _sa_key(runtime, org, ("admin",))
    principal = (await _verify(runtime, issued.secret)).principal
    assert principal.owner == ("service_account", account.id)
    assert "members:manage" in principal.permissions
    async with runtime.unit() as unit:
        await unit.api_keys.set_service_account_disabled(org, account.id, True, actor=owner)
    assert (await _verify(runtime, issued.secret)).principal is None
    async with runtime.unit() as unit:
        await unit.api_keys.set_service_account_disabled(org, account.id, False, actor=owner)
    assert (await _verify(runtime, issued.secret)).valid
    async with runtime.unit() as unit:  # cached on this node before the deletion
        held = await unit.rbac.effective_permissions(org, "service_account", account.id)
    assert "members:manage" in held
    async with runtime.unit() as unit:
        with pytest.raises(InvalidInput):
            await unit.rbac.principal_removed(org, ("user", owner), actor=None)
        await unit.api_keys.delete_service_account(org, account.id, actor=owner)
        left = (
            await unit.conn.execute(
                select(role_assignments).where(role_assignments.c.principal_id == account.id)
            )
        ).all()
        with pytest.raises(NotFound):
            await unit.api_keys.get_service_account(org, account.id)
    assert left == []
    async with runtime.unit() as unit:
        assert await unit.rbac.effective_permissions(org, "service_account", account.id) == set()
    assert (await _verify(runtime, issued.secret)).principal is None


async def test_a_project_service_account_gets_its_project_permissions(runtime: Any) -> None:
    org = await _org(runtime)
    async with runtime.unit() as unit:
        project = await unit.orgs.create_project(org, "Alpha", actor=None)
        account = await unit.api_keys.create_service_account(
            org, "alpha-bot", project=project.slug, roles=["reader"], actor=None
        )
        with pytest.raises(Conflict):
            await unit.api_keys.create_service_account(org, "alpha-bot", actor=None)
        issued = await unit.api_keys.create_key(org, ("service_account", account.id), actor=None)
    principal = (await _verify(runtime, issued.secret)).principal
    assert principal.project_id == project.id
    assert principal.permissions == {"models:read", "members:read", "keys:read"}


async def test_allowlists_answer_with_a_reason(runtime: Any) -> None:
    owner = await _user(runtime)
    org = await _org(runtime, (owner, "owner"))
    async with runtime.unit() as unit:
        issued = await unit.api_keys.create_key(
            org,
            ("user", owner),
            models=["gpt-x", "gpt-y"],
            allowed_ips=["10.0.0.0/8", "2001:db8::/32"],
            actor=None,
        )
        for bad in (["10.0.0.1/24"], [], ["nonsense"], ["10.0.0.0/33"]):
            with pytest.raises(InvalidInput):
                await unit.api_keys.create_key(org, ("user", owner), allowed_ips=bad, actor=None)
        with pytest.raises(InvalidInput):
            await unit.api_keys.create_key(org, ("user", owner), models=["a b"], actor=None)
    key = issued.secret
    assert (await _verify(runtime, key, ip="10.1.2.3", model="gpt-x")).valid
    assert (await _verify(runtime, key, ip="::ffff:10.9.9.9")).valid
    assert (await _verify(runtime, key, ip="2001:db8::5")).valid
    assert (await _verify(runtime, key, ip="11.0.0.1")).reason == "ip_not_allowed"
    assert (await _verify(runtime, key, ip="not an ip")).reason == "ip_not_allowed"
    assert (await _verify(runtime, key, model="gpt-z")).reason == "model_not_allowed"
    async with runtime.unit() as unit:
        assert await unit.api_keys.authenticate_api_key(key, "10.0.0.9") is not None
        assert await unit.api_keys.authenticate_api_key(key, "192.168.0.1") is None
        assert await unit.api_keys.authenticate_api_key(key, None) is None


async def test_last_used_is_written_at_most_once_a_minute(runtime: Any, clock: Any) -> None:
    owner = await _user(runtime)
    org = await _org(runtime, (owner, "owner"))
    async with runtime.unit() as unit:
        issued = await unit.api_keys.create_key(org, ("user", owner), actor=None)

    async def last_used() -> Any:
        async with runtime.unit() as unit:
            return (await unit.api_keys.get_key(org, issued.key.id)).last_used_at

    start = clock.now()
    results = await asyncio.gather(*(_verify(runtime, issued.secret) for _ in range(20)))
    assert all(r.valid for r in results)
    assert await last_used() == start
    clock.advance(TOUCH_INTERVAL - timedelta(seconds=1))
    await _verify(runtime, issued.secret)
    assert await last_used() == start
    clock.advance(timedelta(seconds=1))
    await _verify(runtime, issued.secret)
    assert await last_used() == clock.now()


def test_usage_marks_are_bounded_and_due_once_per_interval() -> None:
    from datetime import UTC, datetime

    marks = UsageMarks(max_entries=3)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert marks.due("a", now) and not marks.due("a", now + timedelta(seconds=59))
    assert marks.due("a", now + TOUCH_INTERVAL)
    for name in "bcdef":
        assert marks.due(name, now)
    assert len(marks) == 3


async def test_listing_pages_and_scopes_by_owner(runtime: Any) -> None:
    owner = await _user(runtime)
    org = await _org(runtime, (owner, "owner"))
    account, sa_key = await _sa_key(runtime, org)
    async with runtime.unit() as unit:
        for _ in range(3):
            await unit.api_keys.create_key(org, ("user", owner), actor=None)
        page, cursor = await unit.api_keys.list_keys(org, limit=2)
        rest, end = await unit.api_keys.list_keys(org, limit=2, cursor=cursor)
        mine, _ = await unit.api_keys.list_keys(org, owner=("service_account", account.id))
        accounts, _ = await unit.api_keys.list_service_accounts(org)
    assert len(page) == 2 and len(rest) == 2 and end is None
    assert {k.id for k in page} | {k.id for k in rest} >= {sa_key.key.id}
    assert [k.id for k in mine] == [sa_key.key.id]
    assert [a.id for a in accounts] == [account.id]


async def test_concurrent_changes_each_happen_once(runtime: Any) -> None:
    owner = await _user(runtime)
    org = await _org(runtime, (owner, "owner"))
    async with runtime.unit() as unit:
        issued = await unit.api_keys.create_key(org, ("user", owner), actor=None)

    async def create_account() -> Any:
        async with runtime.unit() as unit:
            return await unit.api_keys.create_service_account(org, "twin", actor=None)

    async def revoke() -> None:
        async with runtime.unit() as unit:
            await unit.api_keys.revoke_key(org, issued.key.id, actor=None)

    created = await asyncio.gather(*(create_account() for _ in range(6)), return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in created) == 1
    assert all(isinstance(r, Conflict) for r in created if isinstance(r, BaseException))
    revoked = await asyncio.gather(*(revoke() for _ in range(6)), return_exceptions=True)
    assert sum(r is None for r in revoked) == 1
    assert all(isinstance(r, Conflict) for r in revoked if r is not None)
    async with runtime.unit() as unit:
        events = [
            row.action
            for row in await unit.conn.execute(
                select(audit_events.c.action).where(audit_events.c.target == issued.key.id)
            )
        ]
    assert events.count("api_key.revoke") == 1
