"""API keys on two nodes (issue 12, section 3). Node B caches the key rows it verified
(features/apikeys/cache.py); a revocation, a rotation without overlap, a removed member, a
disabled user, a disabled or deleted service account, a deleted project or organization, made
on node A, stop the key on node B as soon as the invalidation arrives: by Redis pub/sub, or by
the poll of the ``revocations`` table (the ``PRAGMA data_version`` catch-up on SQLite), the
fan-out of test_permission_nodes.py. A new secret from a rotation on node A works on node B at
once (a secret matching neither cached hash is checked against a fresh read). A key's
permissions follow its owner's on node B once the RBAC invalidation arrives. Two runtimes on
one database stand for two replicas, as in test_revocation_nodes.py."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ostiary.web.runtime import Runtime
from tests.conftest import Backend, make_settings
from tests.web.nodes import PATHS, hear, node_settings, poll, two_nodes
from tests.web.test_revocation_nodes import _stop, _until


async def _valid(rt: Runtime, key: str) -> bool:
    async with rt.unit() as unit:
        return (await unit.api_keys.verify(key)).valid


Stop = Callable[[Any, dict[str, Any]], Awaitable[Any]]


async def _revoke(unit: Any, s: dict[str, Any]) -> None:
    await unit.api_keys.revoke_key(s["org"], s["key_id"], actor=None)


async def _rotate(unit: Any, s: dict[str, Any]) -> None:
    await unit.api_keys.rotate_key(s["org"], s["key_id"], overlap=timedelta(0), actor=None)


async def _remove_member(unit: Any, s: dict[str, Any]) -> None:
    await unit.orgs.remove_member(s["org"], s["user"], actor=None)


async def _disable_account(unit: Any, s: dict[str, Any]) -> None:
    await unit.api_keys.set_service_account_disabled(s["org"], s["account"], True, actor=None)


async def _delete_account(unit: Any, s: dict[str, Any]) -> None:
    await unit.api_keys.delete_service_account(s["org"], s["account"], actor=None)


async def _disable_user(unit: Any, s: dict[str, Any]) -> None:
    await unit.accounts.disable(s["email"], actor=None)


async def _delete_project(unit: Any, s: dict[str, Any]) -> None:
    await unit.orgs.delete_project(s["org"], s["project"], actor=None)


async def _delete_org(unit: Any, s: dict[str, Any]) -> None:
    await unit.orgs.delete(s["org"], actor=None)


STOPS: dict[str, tuple[str, Stop]] = {
    "revoke": ("user", _revoke),
    "rotate_without_overlap": ("user", _rotate),
    "remove_member": ("user", _remove_member),
    "disable_user": ("user", _disable_user),
    "disable_service_account": ("service_account", _disable_account),
    "delete_service_account": ("service_account", _delete_account),
    "delete_project": ("service_account", _delete_project),
    "delete_organization": ("service_account", _delete_org),
}


async def _setup(node: Runtime, owner_type: str) -> dict[str, Any]:
    async with node.unit() as unit:
        owner = await unit.accounts.create_user(
            f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
        )
        user = await unit.accounts.create_user(
            f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
        )
        org = (await unit.orgs.create("Two nodes", actor=None)).id
        for who, role in ((owner.id, "owner"), (user.id, "member")):
            await unit.orgs.add_member(org, who, actor=None)
            await unit.rbac.assign(org, ("user", who), role, actor=None)
        project = await unit.orgs.create_project(org, "Inference", actor=None)
        account = await unit.api_keys.create_service_account(
            org, "bot", project=project.id, roles=["member"], actor=None
        )
        holder = ("user", user.id) if owner_type == "user" else ("service_account", account.id)
        issued = await unit.api_keys.create_key(org, holder, actor=None)
    return {
        "org": org,
        "project": project.id,
        "user": user.id,
        "email": user.email,
        "account": account.id,
        "key_id": issued.key.id,
        "secret": issued.secret,
        "hash": issued.key.secret_hash,
    }


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("stop", list(STOPS))
async def test_a_change_on_node_a_stops_the_key_cached_on_node_b(
    backend: Backend, tmp_path: Path, stop: str, path: str
) -> None:
    owner_type, apply = STOPS[stop]
    async with two_nodes(node_settings(backend, tmp_path, path)) as (node_a, node_b):
        s = await _setup(node_a, owner_type)
        background = await hear(path, node_a, node_b)
        try:
            assert await _valid(node_b, s["secret"])
            assert node_b.api_key_cache.get(s["key_id"]) is not None  # cached on node B
            async with node_a.unit() as unit:
                await apply(unit, s)
            assert not await _valid(node_a, s["secret"])
            if path == "poll":
                # Nothing told node B yet: it answers from its cache, so what follows is the
                # invalidation's doing, not a miss.
                assert await _valid(node_b, s["secret"])
                await poll(node_b)
                assert not await _valid(node_b, s["secret"])
            else:

                async def stopped() -> bool:
                    return not await _valid(node_b, s["secret"])

                await _until(stopped)
            cached = node_b.api_key_cache.get(s["key_id"])  # gone, or read again (rotated)
            assert cached is None or cached.key.secret_hash != s["hash"]
        finally:
            await _stop(background)


async def test_a_new_secret_from_node_a_works_on_node_b_at_once(
    backend: Backend, tmp_path: Path
) -> None:
    settings = make_settings(backend, tmp_path, redis_url=None)  # no fan-out at all
    async with two_nodes(settings) as (node_a, node_b):
        s = await _setup(node_a, "user")
        await poll(node_b)
        assert await _valid(node_b, s["secret"])  # cached with the old hash
        async with node_a.unit() as unit:
            rotated = await unit.api_keys.rotate_key(
                s["org"], s["key_id"], overlap=timedelta(minutes=5), actor=None
            )
        assert await _valid(node_b, rotated.secret)  # read again: the new hash
        assert await _valid(node_b, s["secret"])  # within the overlap
        assert not await _valid(node_b, s["secret"] + "x")


async def test_permissions_on_node_b_follow_the_owners_after_the_fan_out(
    backend: Backend, tmp_path: Path
) -> None:
    settings = make_settings(backend, tmp_path, redis_url=None)
    async with two_nodes(settings) as (node_a, node_b):
        s = await _setup(node_a, "user")
        async with node_b.unit() as unit:
            before = (await unit.api_keys.verify(s["secret"])).principal
        assert before is not None and "models:invoke" in before.permissions
        async with node_a.unit() as unit:
            await unit.rbac.set_roles(s["org"], ("user", s["user"]), ["reader"], actor=None)

        async def narrowed() -> bool:
            await poll(node_b)
            async with node_b.unit() as unit:
                principal = (await unit.api_keys.verify(s["secret"])).principal
            return principal is not None and "models:invoke" not in principal.permissions

        await _until(narrowed)
