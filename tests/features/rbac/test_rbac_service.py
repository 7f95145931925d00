"""features/rbac/service.py over the real SQL stores: roles and includes, cycle refusal,
groups, project scope, effective permissions, their cache invalidation for each kind of change,
the last-owner rule and ``require``."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from sqlalchemy import func, select

from ostiary.features.orgs.models import Conflict, Forbidden, InvalidInput, LastOwner, NotFound
from ostiary.features.rbac.models import BUILTIN_ROLES, InvalidPermission, RoleCycle
from ostiary.features.rbac.service import allows
from ostiary.protocol.permissions import PERMISSIONS
from ostiary.storage.sqla.tables import revocations, role_includes, roles


async def _user(runtime: Any) -> str:
    async with runtime.unit() as unit:
        user = await unit.accounts.create_user(
            f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
        )
    return str(user.id)


async def _org_with(runtime: Any, *users: str) -> str:
    async with runtime.unit() as unit:
        org = await unit.orgs.create(f"Org {secrets.token_hex(3)}", actor=None)
        for user in users:
            await unit.orgs.add_member(org.id, user, actor=None)
    return str(org.id)


async def _perms(runtime: Any, org: str, user: str, project: str | None = None) -> frozenset[str]:
    async with runtime.unit() as unit:
        result: frozenset[str] = await unit.rbac.effective_permissions(org, "user", user, project)
    return result


def test_builtin_roles_have_the_documented_permissions() -> None:
    assert BUILTIN_ROLES["owner"] == {"*"}
    assert BUILTIN_ROLES["admin"] == set(PERMISSIONS) - {"org:manage"}
    assert BUILTIN_ROLES["member"] == {
        "models:invoke",
        "models:read",
        "keys:create",
        "keys:read",
        "members:read",
    }
    assert BUILTIN_ROLES["reader"] == {"models:read", "members:read", "keys:read"}


async def test_roles_include_roles_transitively_and_groups_add_theirs(runtime: Any) -> None:
    user = await _user(runtime)
    org = await _org_with(runtime, user)
    async with runtime.unit() as unit:
        await unit.rbac.create_role(org, "base", permissions=["audit:read"], actor=None)
        await unit.rbac.create_role(org, "mid", includes=["base", "reader"], actor=None)
        await unit.rbac.create_role(
            org, "top", permissions=["models:fine-tune"], includes=["mid"], actor=None
        )
        await unit.rbac.create_role(org, "empty", actor=None)  # no permission: allowed
        await unit.rbac.assign(org, ("user", user), "empty", actor=None)
        group = await unit.rbac.create_group(org, "tuners", roles=["top"], actor=None)
    assert await _perms(runtime, org, user) == frozenset()
    async with runtime.unit() as unit:
        await unit.rbac.add_group_member(org, group.id, user, actor=None)
    assert await _perms(runtime, org, user) == {
        "models:fine-tune",
        "audit:read",
        "models:read",
        "members:read",
        "keys:read",
    }


async def test_a_cycle_is_refused_naming_it_and_nothing_is_saved(runtime: Any) -> None:
    org = await _org_with(runtime)
    async with runtime.unit() as unit:
        a = await unit.rbac.create_role(org, "a", permissions=["keys:read"], actor=None)
        await unit.rbac.create_role(org, "b", includes=["a"], actor=None)
        await unit.rbac.create_role(org, "c", includes=["b"], actor=None)
    with pytest.raises(RoleCycle) as refused:
        async with runtime.unit() as unit:
            await unit.rbac.update_role(
                org, "a", permissions=["*"], includes=["c"], name="renamed", actor=None
            )
    assert refused.value.code == "role_cycle"
    assert "a -> c -> b -> a" in str(refused.value)
    with pytest.raises(RoleCycle, match="a -> a"):
        async with runtime.unit() as unit:
            await unit.rbac.update_role(org, "a", includes=["a"], actor=None)
    async with runtime.unit() as unit:
        after = await unit.rbac.get_role(org, a.id)
        includes = (
            await unit.conn.execute(select(func.count()).where(role_includes.c.role_id == a.id))
        ).scalar_one()
    assert (after.name, after.permissions, after.includes, includes) == ("a", {"keys:read"}, (), 0)


async def test_role_validation(runtime: Any) -> None:
    org = await _org_with(runtime)
    async with runtime.unit() as unit:
        with pytest.raises(InvalidPermission, match="did you mean models:invoke") as bad:
            await unit.rbac.create_role(org, "x", permissions=["models:invok"], actor=None)
        assert bad.value.code == "invalid_permission"
        with pytest.raises(Conflict):
            await unit.rbac.create_role(org, "Owner", actor=None)
        await unit.rbac.create_role(org, "dup", actor=None)
        with pytest.raises(Conflict):
            await unit.rbac.create_role(org, "dup", actor=None)
        with pytest.raises(NotFound):
            await unit.rbac.create_role(org, "y", includes=["ghost"], actor=None)
        for builtin in BUILTIN_ROLES:
            with pytest.raises(InvalidInput):
                await unit.rbac.update_role(org, builtin, permissions=["*"], actor=None)
            with pytest.raises(InvalidInput):
                await unit.rbac.delete_role(org, builtin, actor=None)


async def test_project_roles_apply_in_their_project_only(runtime: Any) -> None:
    user = await _user(runtime)
    org = await _org_with(runtime, user)
    async with runtime.unit() as unit:
        bot = await unit.orgs.create_project(org, "Bot", actor=None)
        lab = await unit.orgs.create_project(org, "Lab", actor=None)
        tuner = await unit.rbac.create_role(
            org, "tuner", permissions=["models:fine-tune"], project_id=bot.id, actor=None
        )
        with pytest.raises(NotFound):  # by name, a project role is found in its project only
            await unit.rbac.create_role(org, "wide", includes=["tuner"], actor=None)
        with pytest.raises(InvalidInput):  # an org-level role may not include a project role
            await unit.rbac.create_role(org, "wide", includes=[tuner.id], actor=None)
        with pytest.raises(InvalidInput):
            await unit.rbac.assign(org, ("user", user), tuner.id, actor=None)
        with pytest.raises(InvalidInput):
            await unit.rbac.assign(org, ("user", user), tuner.id, project_id=lab.id, actor=None)
        await unit.rbac.assign(org, ("user", user), "reader", actor=None)
        await unit.rbac.assign(org, ("user", user), "tuner", project_id=bot.id, actor=None)
    reader = BUILTIN_ROLES["reader"]
    assert await _perms(runtime, org, user) == reader
    assert await _perms(runtime, org, user, bot.id) == reader | {"models:fine-tune"}
    assert await _perms(runtime, org, user, lab.id) == reader


async def test_set_roles_replaces_and_keeps_an_owner(runtime: Any) -> None:
    alice, bob = await _user(runtime), await _user(runtime)
    org = await _org_with(runtime, alice, bob)
    async with runtime.unit() as unit:
        await unit.rbac.set_roles(org, ("user", alice), ["owner"], actor=None)
        await unit.rbac.set_roles(org, ("user", bob), ["member", "reader"], actor=None)
        held = await unit.rbac.set_roles(org, ("user", bob), ["admin"], actor=None)
        assert [a.role for a in held] == ["admin"]
    with pytest.raises(LastOwner):
        async with runtime.unit() as unit:
            await unit.rbac.set_roles(org, ("user", alice), ["member"], actor=None)
    with pytest.raises(LastOwner):
        async with runtime.unit() as unit:
            await unit.rbac.unassign(org, ("user", alice), "owner", actor=None)
    async with runtime.unit() as unit:
        await unit.rbac.assign(org, ("user", bob), "owner", actor=None)
        await unit.rbac.unassign(org, ("user", alice), "owner", actor=None)
    assert await _perms(runtime, org, alice) == frozenset()
    assert allows(await _perms(runtime, org, bob), "org:manage")


async def test_require_raises_forbidden_without_the_permission(runtime: Any) -> None:
    user = await _user(runtime)
    org = await _org_with(runtime, user)
    async with runtime.unit() as unit:
        await unit.rbac.assign(org, ("user", user), "member", actor=None)
        await unit.rbac.require(org, ("user", user), "models:invoke")
        with pytest.raises(Forbidden) as refused:
            await unit.rbac.require(org, ("user", user), "members:manage")
        assert refused.value.code == "forbidden"
        with pytest.raises(Forbidden):  # a stranger holds nothing
            await unit.rbac.require(org, ("user", "someone-else"), "models:read")


async def test_service_account_assignments_count(runtime: Any) -> None:
    org = await _org_with(runtime)
    async with runtime.unit() as unit:
        await unit.rbac.assign(org, ("service_account", "sa-1"), "reader", actor=None)
        held = await unit.rbac.effective_permissions(org, "service_account", "sa-1")
    assert held == BUILTIN_ROLES["reader"]


# -- the cache: each kind of change invalidates what it touches, and only that -------------


async def _cached(runtime: Any, org: str, users: list[str]) -> dict[str, frozenset[str]]:
    return {u: await _perms(runtime, org, u) for u in users}


async def _rbac_keys(runtime: Any) -> dict[int, str]:
    async with runtime.unit() as unit:
        rows = await unit.conn.execute(
            select(revocations.c.id, revocations.c.value).where(revocations.c.kind == "rbac")
        )
        return {r[0]: r[1] for r in rows}


async def test_each_change_invalidates_exactly_the_principals_it_touches(runtime: Any) -> None:
    a, b, c = await _user(runtime), await _user(runtime), await _user(runtime)
    org = await _org_with(runtime, a, b, c)
    async with runtime.unit() as unit:
        base = await unit.rbac.create_role(org, "base", permissions=["audit:read"], actor=None)
        await unit.rbac.create_role(org, "wrapper", includes=["base"], actor=None)
        await unit.rbac.create_role(org, "other", permissions=["keys:verify"], actor=None)
        group = await unit.rbac.create_group(org, "g", roles=["wrapper"], actor=None)
        await unit.rbac.add_group_member(org, group.id, b, actor=None)
        await unit.rbac.assign(org, ("user", a), "base", actor=None)
        await unit.rbac.assign(org, ("user", c), "other", actor=None)
    await _cached(runtime, org, [a, b, c])

    async def touched_by(change: Any) -> set[str]:
        before = await _rbac_keys(runtime)
        async with runtime.unit() as unit:
            await change(unit)
        after = await _rbac_keys(runtime)
        return {v.rsplit("|", 1)[1] for k, v in after.items() if k not in before}

    # A role edit: the direct holder, and the member of the group holding an including role.
    edited = await touched_by(
        lambda u: u.rbac.update_role(
            org, base.id, permissions=["audit:read", "keys:revoke"], actor=None
        )
    )
    assert {a, b} <= edited and c not in edited
    assert "keys:revoke" in await _perms(runtime, org, a)
    assert "keys:revoke" in await _perms(runtime, org, b)
    # An assignment: that principal.
    assert await touched_by(lambda u: u.rbac.assign(org, ("user", c), "reader", actor=None)) == {c}
    assert "models:read" in await _perms(runtime, org, c)
    # A group membership: that user.
    assert await touched_by(lambda u: u.rbac.add_group_member(org, "g", c, actor=None)) == {c}
    assert "keys:revoke" in await _perms(runtime, org, c)
    # A group's role: the group and its members.
    touched = await touched_by(
        lambda u: u.rbac.assign(org, ("group", group.id), "member", actor=None)
    )
    assert touched == {group.id, b, c}
    assert "models:invoke" in await _perms(runtime, org, b)
    # A deletion: whoever held it.
    touched = await touched_by(lambda u: u.rbac.delete_role(org, "base", actor=None))
    assert {a, b, c} <= touched
    assert "audit:read" not in await _perms(runtime, org, a)
    assert "audit:read" not in await _perms(runtime, org, b)


async def test_a_cached_answer_is_served_until_a_change(runtime: Any) -> None:
    user = await _user(runtime)
    org = await _org_with(runtime, user)
    async with runtime.unit() as unit:
        await unit.rbac.assign(org, ("user", user), "reader", actor=None)
    first = await _perms(runtime, org, user)
    assert len(runtime.permission_cache) == 1
    # A write behind the service's back (no invalidation) is not seen: the answer is cached.
    async with runtime.unit() as unit:
        from ostiary.storage.sqla.tables import role_assignments

        await unit.conn.execute(
            role_assignments.delete().where(role_assignments.c.principal_id == user)
        )
    assert await _perms(runtime, org, user) == first
    async with runtime.unit() as unit:
        await unit.rbac.assign(org, ("user", user), "member", actor=None)
    assert await _perms(runtime, org, user) == BUILTIN_ROLES["member"]


async def test_a_rolled_back_change_leaves_no_cached_trace(runtime: Any) -> None:
    user = await _user(runtime)
    org = await _org_with(runtime, user)

    async def change_then_fail() -> None:
        async with runtime.unit() as unit:
            await unit.rbac.assign(org, ("user", user), "admin", actor=None)
            assert "members:manage" in await unit.rbac.effective_permissions(org, "user", user)
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        await change_then_fail()
    assert await _perms(runtime, org, user) == frozenset()
    async with runtime.unit() as unit:
        count = (await unit.conn.execute(select(func.count()).select_from(roles))).scalar_one()
    assert count == 0
