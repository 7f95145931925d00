"""features/apikeys/verification.py as a unit of work builds it (web/runtime.py
``Unit.api_key_verifier``): it reads permissions through the unit's shared reader, so a
unit that changed roles keeps what it reads out of the node's permission cache, and it gives the
answers ``ApiKeyService`` gives (which delegates to it)."""

from __future__ import annotations

import secrets
from typing import Any

from ostiary.features.apikeys.verification import KeyVerifier


async def _member_key(runtime: Any) -> tuple[str, str, str]:
    async with runtime.unit() as unit:
        user = await unit.accounts.create_user(
            f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
        )
        org = await unit.orgs.create(f"Org {secrets.token_hex(3)}", actor=None)
        await unit.orgs.add_member(org.id, user.id, actor=None)
        await unit.rbac.assign(org.id, ("user", user.id), "owner", actor=None)
        issued = await unit.api_keys.create_key(org.id, ("user", user.id), actor=None)
    return org.id, user.id, issued.secret


async def test_a_unit_that_changed_roles_keeps_its_reads_out_of_the_shared_cache(
    runtime: Any,
) -> None:
    org, user, key = await _member_key(runtime)
    async with runtime.unit() as unit:
        await unit.rbac.assign(org, ("user", user), "member", actor=None)  # uncommitted
        assert unit.rbac._permissions is unit.permissions
        outcome = await unit.api_key_verifier.verify(key)
        assert outcome.valid
        assert runtime.permission_cache.get(org, "user", user, None) is None
    async with runtime.unit() as unit:  # committed: read again, and cached
        assert (await unit.api_key_verifier.verify(key)).valid
    assert runtime.permission_cache.get(org, "user", user, None) is not None


async def test_the_service_and_the_verifier_answer_alike(runtime: Any) -> None:
    org, _user, key = await _member_key(runtime)
    async with runtime.unit() as unit:
        verifier = unit.api_key_verifier
        assert isinstance(verifier, KeyVerifier)
        assert await unit.api_keys.verify(key) == await verifier.verify(key)
        assert await unit.api_keys.verify(key + "x") == await verifier.verify(key + "x")
        by_service = await unit.api_keys.authenticate_api_key(key, "10.0.0.1")
        assert by_service == await verifier.authenticate_api_key(key, "10.0.0.1")
        assert by_service is not None and by_service.organization_id == org
        assert await unit.api_keys.principal_of(org, by_service.key_id) == by_service


async def test_a_key_answered_from_the_caches_gets_one_outcome_until_a_change(
    runtime: Any,
) -> None:
    """The outcome is built once for each row and owner's permissions (compared by identity):
    the same object while both caches hold, a new one after either changed."""
    org, user, key = await _member_key(runtime)
    async with runtime.unit() as unit:
        first = await unit.api_key_verifier.verify(key)
    async with runtime.unit() as unit:
        assert await unit.api_key_verifier.verify(key) is first
        other = await _other_user(unit)
        await unit.orgs.add_member(org, other, actor=None)
        await unit.rbac.assign(org, ("user", other), "owner", actor=None)
    async with runtime.unit() as unit:  # another principal's change: still the same
        assert await unit.api_key_verifier.verify(key) is first
        await unit.rbac.set_roles(org, ("user", user), ["member"], actor=None)
    async with runtime.unit() as unit:
        narrowed = await unit.api_key_verifier.verify(key)
    assert narrowed is not first and narrowed.principal is not None
    assert "members:read" in narrowed.principal.permissions
    assert "org:manage" not in narrowed.principal.permissions
    assert first.principal is not None and "*" in first.principal.permissions


async def _other_user(unit: Any) -> str:
    other = await unit.accounts.create_user(
        f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
    )
    return str(other.id)
