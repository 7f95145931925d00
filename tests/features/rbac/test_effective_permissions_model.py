"""Hypothesis: random role graphs (DAGs of includes over custom and built-in roles), groups,
assignments and random edits give the same effective permissions from the service, with its
cache warm between edits, as a plain recomputation here (issue 12, section 5)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ostiary.config import Settings
from ostiary.features.orgs.models import LastOwner
from ostiary.features.rbac.models import BUILTIN_ROLES
from ostiary.web.runtime import Runtime

POOL = ["models:invoke", "models:read", "keys:create", "keys:revoke", "audit:read", "*"]
BUILTINS = sorted(BUILTIN_ROLES)
USERS = 4


@dataclass
class Model:
    """The plain recomputation: what a reader of the issue would compute by hand."""

    own: dict[str, set[str]] = field(default_factory=dict)  # custom role -> permissions
    includes: dict[str, set[str]] = field(default_factory=dict)
    direct: dict[int, set[str]] = field(default_factory=dict)  # user -> roles
    group_roles: dict[int, set[str]] = field(default_factory=dict)
    group_members: dict[int, set[int]] = field(default_factory=dict)

    def closure(self, role: str, seen: set[str]) -> set[str]:
        if role in seen:
            return set()
        seen.add(role)
        result = set(BUILTIN_ROLES.get(role, self.own.get(role, set())))
        for included in self.includes.get(role, set()):
            result |= self.closure(included, seen)
        return result

    def effective(self, user: int) -> set[str]:
        roles = set(self.direct.get(user, set()))
        for group, members in self.group_members.items():
            if user in members:
                roles |= self.group_roles.get(group, set())
        result: set[str] = set()
        for role in roles:
            result |= self.closure(role, set())
        return result


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    n_roles = draw(st.integers(1, 6))
    names = [f"r{i}" for i in range(n_roles)]
    roles = []
    for i, name in enumerate(names):
        perms = draw(st.sets(st.sampled_from(POOL[:-1]), max_size=3))
        # A DAG: a role includes only earlier custom roles (or built-in ones).
        includes = draw(st.sets(st.sampled_from(names[:i] + BUILTINS), max_size=2)) if i else set()
        roles.append((name, perms, includes))
    every_role = names + BUILTINS
    n_groups = draw(st.integers(0, 3))
    groups = [draw(st.sets(st.sampled_from(every_role), max_size=2)) for _ in range(n_groups)]
    members = [draw(st.sets(st.integers(0, USERS - 1), max_size=USERS)) for _ in range(n_groups)]
    direct = {u: draw(st.sets(st.sampled_from(every_role), max_size=2)) for u in range(USERS)}
    edit = st.one_of(
        st.tuples(st.just("perms"), st.sampled_from(names), st.sets(st.sampled_from(POOL))),
        st.tuples(st.just("includes"), st.integers(0, n_roles - 1), st.data()),
        st.tuples(st.just("assign"), st.integers(0, USERS - 1), st.sampled_from(every_role)),
        st.tuples(st.just("unassign"), st.integers(0, USERS - 1), st.sampled_from(every_role)),
        st.tuples(st.just("join"), st.integers(0, max(0, n_groups - 1)), st.integers(0, USERS - 1)),
        st.tuples(
            st.just("leave"), st.integers(0, max(0, n_groups - 1)), st.integers(0, USERS - 1)
        ),
        st.tuples(st.just("delete"), st.sampled_from(names), st.none()),
    )
    edits = draw(st.lists(edit, max_size=6))
    resolved = []
    for kind, a, b in edits:
        if kind == "includes":
            earlier = names[:a] + BUILTINS
            b = b.draw(st.sets(st.sampled_from(earlier), max_size=2))
            a = names[a]
        resolved.append((kind, a, b))
    return {
        "roles": roles,
        "groups": groups,
        "members": members,
        "direct": direct,
        "edits": resolved,
    }


@pytest.fixture
def node(settings: Settings) -> Iterator[tuple[asyncio.AbstractEventLoop, Runtime, list[str]]]:
    """One runtime for every example (each example gets an organization of its own), on an
    event loop of this test's own: hypothesis calls the test body synchronously."""
    loop = asyncio.new_event_loop()
    runtime = Runtime(settings)

    async def users() -> list[str]:
        ids = []
        for _ in range(USERS):
            async with runtime.unit() as unit:
                user = await unit.accounts.create_user(
                    f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
                )
                ids.append(user.id)
        return ids

    try:
        yield loop, runtime, loop.run_until_complete(users())
    finally:
        loop.run_until_complete(runtime.close())
        loop.close()


async def _check(rt: Runtime, users: list[str], scenario: dict[str, Any]) -> None:
    model = Model()
    ids: dict[str, str] = {b: b for b in BUILTINS}
    async with rt.unit() as unit:
        org = (await unit.orgs.create("Model org", actor=None)).id
        for user in users:
            await unit.orgs.add_member(org, user, actor=None)
        for name, perms, includes in scenario["roles"]:
            role = await unit.rbac.create_role(
                org, name, permissions=perms, includes=[ids[i] for i in includes], actor=None
            )
            ids[name] = role.id
            model.own[name], model.includes[name] = set(perms), set(includes)
        group_ids = []
        for g, roles in enumerate(scenario["groups"]):
            group = await unit.rbac.create_group(
                org, f"g{g}", roles=[ids[r] for r in roles], actor=None
            )
            group_ids.append(group.id)
            model.group_roles[g] = set(roles)
            model.group_members[g] = set()
            for u in scenario["members"][g]:
                await unit.rbac.add_group_member(org, group.id, users[u], actor=None)
                model.group_members[g].add(u)
        for u, roles in scenario["direct"].items():
            await unit.rbac.set_roles(org, ("user", users[u]), [ids[r] for r in roles], actor=None)
            model.direct[u] = set(roles)

    async def compare(step: str) -> None:
        async with rt.unit() as unit:
            for u, user in enumerate(users):
                got = await unit.rbac.effective_permissions(org, "user", user)
                assert got == model.effective(u), (step, u)

    await compare("initial")
    await compare("cached")
    for kind, a, b in scenario["edits"]:
        owners = [u for u, held in model.direct.items() if "owner" in held]
        if kind == "unassign" and b == "owner" and owners == [a]:
            with pytest.raises(LastOwner):
                async with rt.unit() as unit:
                    await unit.rbac.unassign(org, ("user", users[a]), "owner", actor=None)
            await compare("last owner kept")
            continue
        async with rt.unit() as unit:
            rbac = unit.rbac
            if kind == "perms" and a in model.own:
                await rbac.update_role(org, ids[a], permissions=b, actor=None)
                model.own[a] = set(b)
            elif kind == "includes" and a in model.own:
                live = {r for r in b if r in model.own or r in BUILTIN_ROLES}
                await rbac.update_role(org, ids[a], includes=[ids[r] for r in live], actor=None)
                model.includes[a] = live
            elif kind == "assign" and (b in model.own or b in BUILTIN_ROLES):
                if b not in model.direct[a]:
                    await rbac.assign(org, ("user", users[a]), ids[b], actor=None)
                    model.direct[a].add(b)
            elif kind == "unassign" and b in model.direct[a]:
                await rbac.unassign(org, ("user", users[a]), ids[b], actor=None)
                model.direct[a].discard(b)
            elif kind == "join" and group_ids and b not in model.group_members[a]:
                await rbac.add_group_member(org, group_ids[a], users[b], actor=None)
                model.group_members[a].add(b)
            elif kind == "leave" and group_ids and b in model.group_members[a]:
                await rbac.remove_group_member(org, group_ids[a], users[b], actor=None)
                model.group_members[a].discard(b)
            elif kind == "delete" and a in model.own:
                await rbac.delete_role(org, ids[a], actor=None)
                del model.own[a], model.includes[a]
                for included in model.includes.values():
                    included.discard(a)
                for held in [*model.direct.values(), *model.group_roles.values()]:
                    held.discard(a)
        await compare(f"after {kind} {a} {b}")


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_service_with_its_cache_matches_a_plain_recomputation(
    node: tuple[asyncio.AbstractEventLoop, Runtime, list[str]], scenario: dict[str, Any]
) -> None:
    loop, runtime, users = node
    loop.run_until_complete(_check(runtime, users, scenario))
