"""Effective permissions cached on one node are invalidated by a change made on another
(issue 12, section 2), through the revocation fan-out already in place: Redis pub/sub, or the
poll of the ``revocations`` table (PostgreSQL without Redis; the ``PRAGMA data_version``
catch-up on SQLite). Two runtimes on one database stand for two replicas, as in
test_revocation_nodes.py."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from ostiary.features.rbac.models import BUILTIN_ROLES
from ostiary.web.runtime import Runtime
from tests.conftest import Backend, make_settings
from tests.web.nodes import PATHS, hear, node_settings, two_nodes
from tests.web.test_revocation_nodes import _stop, _until

Change = Callable[[Any, str, str, dict[str, str]], Awaitable[Any]]


async def _assignment(unit: Any, org: str, user: str, ids: dict[str, str]) -> None:
    await unit.rbac.assign(org, ("user", user), "admin", actor=None)


async def _group_membership(unit: Any, org: str, user: str, ids: dict[str, str]) -> None:
    await unit.rbac.add_group_member(org, ids["group"], user, actor=None)


async def _role_edit(unit: Any, org: str, user: str, ids: dict[str, str]) -> None:
    await unit.rbac.update_role(org, ids["inner"], permissions=["audit:read"], actor=None)


async def _role_delete(unit: Any, org: str, user: str, ids: dict[str, str]) -> None:
    await unit.rbac.delete_role(org, ids["outer"], actor=None)


CHANGES: dict[str, tuple[Change, Callable[[frozenset[str]], bool]]] = {
    "assignment": (_assignment, lambda p: "members:manage" in p),
    "group_membership": (_group_membership, lambda p: "models:invoke" in p),
    "role_edit": (_role_edit, lambda p: "audit:read" in p),
    "role_delete": (_role_delete, lambda p: "keys:revoke" not in p),
}


async def _perms(rt: Runtime, org: str, user: str) -> frozenset[str]:
    async with rt.unit() as unit:
        return await unit.rbac.effective_permissions(org, "user", user)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("change", list(CHANGES))
async def test_a_change_on_node_a_is_seen_on_node_b(
    backend: Backend, tmp_path: Path, change: str, path: str
) -> None:
    apply, seen = CHANGES[change]
    background: asyncio.Task[None] | None = None
    async with two_nodes(node_settings(backend, tmp_path, path)) as (node_a, node_b):
        async with node_a.unit() as unit:
            user = (
                await unit.accounts.create_user(
                    f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
                )
            ).id
            org = (await unit.orgs.create("Two nodes", actor=None)).id
            await unit.orgs.add_member(org, user, actor=None)
            inner = await unit.rbac.create_role(org, "inner", permissions=["keys:read"], actor=None)
            outer = await unit.rbac.create_role(
                org, "outer", permissions=["keys:revoke"], includes=[inner.id], actor=None
            )
            group = await unit.rbac.create_group(org, "g", roles=["member"], actor=None)
            await unit.rbac.assign(org, ("user", user), outer.id, actor=None)
        ids = {"inner": inner.id, "outer": outer.id, "group": group.id}
        background = await hear(path, node_a, node_b)
        try:
            before = await _perms(node_b, org, user)  # computed and cached on node B
            assert before == {"keys:revoke", "keys:read"}
            assert len(node_b.permission_cache) == 1
            async with node_a.unit() as unit:
                await apply(unit, org, user, ids)
            assert seen(await _perms(node_a, org, user))
            if path == "poll":
                # Nothing told node B yet: it still answers from its cache (so what follows
                # is the invalidation's doing, not a cache miss).
                assert await _perms(node_b, org, user) == before
                background = asyncio.create_task(node_b.sync_revocations_forever(interval=0.01))

            async def arrived() -> bool:
                return seen(await _perms(node_b, org, user))

            await _until(arrived)
        finally:
            await _stop(background)


async def test_an_organization_wide_invalidation_reaches_every_principal(
    backend: Backend, tmp_path: Path
) -> None:
    """Past ``WHOLE_ORG_AFTER`` principals, one key stands for the whole organization."""
    settings = make_settings(backend, tmp_path, redis_url=None)
    async with two_nodes(settings) as (node_a, node_b):
        async with node_a.unit() as unit:
            org = (await unit.orgs.create("Wide", actor=None)).id
            await unit.rbac.assign(org, ("service_account", "sa-1"), "reader", actor=None)
        async with node_b.unit() as unit:
            await unit.revocation.sync()
            assert (
                await unit.rbac.effective_permissions(org, "service_account", "sa-1")
                == (BUILTIN_ROLES["reader"])
            )
        async with node_a.unit() as unit:
            # Written behind the service (no per-principal key), then the org-wide key.
            from ostiary.storage.sqla.tables import role_assignments

            await unit.conn.execute(
                role_assignments.insert().values(
                    organization_id=org,
                    principal_type="service_account",
                    principal_id="sa-1",
                    role="member",
                    project_id="",
                    created_at=node_a.clock.now(),
                )
            )
            await unit.permissions_changed(org, None)
        async with node_b.unit() as unit:
            await unit.revocation.sync()
            held = await unit.rbac.effective_permissions(org, "service_account", "sa-1")
        assert held == BUILTIN_ROLES["reader"] | BUILTIN_ROLES["member"]
