"""A disabled user is refused at once on every node although decisions cache who their
subjects are (features/policy/cache.py ``KnownUsers``): the ``user`` revocation written when a
user is disabled reaches the other node by pub/sub (even before the disabling commits) or by
the poll, and that node then reads the user instead of trusting its cache, never caching what
it reads while the revocation is held. A new e-mail address reaches the other node's decisions
(``principal.email``) through the ``user_row`` fan-out. Two runtimes on one database stand for
two replicas."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest

from ostiary.web.runtime import Runtime
from tests.conftest import Backend, make_settings
from tests.web.nodes import PATHS, hear, node_settings, two_nodes
from tests.web.test_policy_nodes import _allowed
from tests.web.test_revocation_nodes import _stop, _until


async def _member(rt: Runtime) -> tuple[str, str, str]:
    email = f"{secrets.token_hex(4)}@example.com"
    async with rt.unit() as unit:
        user = (await unit.accounts.create_user(email, secrets.token_urlsafe(18))).id
        org = (await unit.orgs.create("Standing", actor=None)).id
        await unit.orgs.add_member(org, user, actor=None)
        await unit.rbac.assign(org, ("user", user), "member", actor=None)
    return org, user, email


@pytest.mark.parametrize("path", PATHS)
async def test_a_user_disabled_on_node_a_is_refused_on_node_b(
    backend: Backend, tmp_path: Path, path: str
) -> None:
    settings = node_settings(backend, tmp_path, path)
    background: asyncio.Task[None] | None = None
    async with two_nodes(settings) as (node_a, node_b):
        org, user, email = await _member(node_a)
        background = await hear(path, node_a, node_b)
        try:
            assert await _allowed(node_b, org, user)
            assert node_b.known_users.get(user) is not None  # cached on node B
            async with node_a.unit() as unit:
                await unit.accounts.disable(email, actor=None)
            assert not await _allowed(node_a, org, user)
            if path == "poll":
                background = asyncio.create_task(node_b.sync_revocations_forever(interval=0.01))

            async def refused() -> bool:
                return not await _allowed(node_b, org, user)

            await _until(refused)
            assert node_b.known_users.get(user) is None
        finally:
            await _stop(background)


async def test_a_revocation_arriving_before_the_commit_leaves_nothing_cached(
    backend: Backend, tmp_path: Path
) -> None:
    """Pub/sub may deliver the disabling's revocation before its transaction commits: node B
    then still reads the user as enabled, and must not cache that answer."""
    if backend.redis_url is None:
        pytest.skip("pub/sub needs Redis (the postgres backend with OSTIARY_TEST_REDIS_URL)")
    settings = make_settings(backend, tmp_path)
    async with two_nodes(settings) as (node_a, node_b):
        org, user, email = await _member(node_a)
        background = await hear("pubsub", node_a, node_b)
        try:
            assert await _allowed(node_b, org, user)
            async with node_a.unit() as unit:
                await unit.accounts.disable(email, actor=None)  # published, not committed

                async def told() -> bool:
                    return node_b.revoked.holds("user", user)

                await _until(told)
                assert await _allowed(node_b, org, user)  # the committed row: still enabled
                assert node_b.known_users.get(user) is None  # ...but not cached as such
            assert not await _allowed(node_b, org, user)  # committed: refused at once
        finally:
            await _stop(background)


@pytest.mark.parametrize("path", PATHS)
async def test_a_new_email_address_reaches_decisions_on_node_b(
    backend: Backend, tmp_path: Path, path: str
) -> None:
    """A policy on ``principal.email``: the address changed on node A (the account page's
    path: the current password confirms it) is what node B's next decisions see, although
    node B cached the subject with the old one."""
    settings = node_settings(backend, tmp_path, path)
    background: asyncio.Task[None] | None = None
    async with two_nodes(settings) as (node_a, node_b):
        password = secrets.token_urlsafe(18)
        async with node_a.unit() as unit:
            user = (await unit.accounts.create_user("ada@corp.example", password)).id
            org = (await unit.orgs.create("Mail", actor=None)).id
            await unit.orgs.add_member(org, user, actor=None)
            await unit.rbac.assign(org, ("user", user), "member", actor=None)
            await unit.policies.set(
                org,
                'forbid(principal, action == Action::"models:invoke", resource)\n'
                ' unless { principal has email && principal.email like "*@corp.example" };',
                "",
                actor=None,
            )
        background = await hear(path, node_a, node_b)
        try:
            assert await _allowed(node_b, org, user)  # the subject is cached on node B
            assert await _allowed(node_b, org, user)
            async with node_a.unit() as unit:
                accounts = unit.accounts
                attempt = await accounts.begin_confirmation(
                    user, action="account.email.changed", ip=None
                )
                attempt = await accounts.check_password(attempt, password)
                await accounts.change_email(attempt, "ada@elsewhere.example", ip=None)
            assert not await _allowed(node_a, org, user)
            if path == "poll":
                assert await _allowed(node_b, org, user)  # not told yet: the cached subject
                background = asyncio.create_task(node_b.sync_revocations_forever(interval=0.01))

            async def refused() -> bool:
                return not await _allowed(node_b, org, user)

            await _until(refused)
        finally:
            await _stop(background)
