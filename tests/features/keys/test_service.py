"""Signing keys: sealed at rest, published before use, retired after the last token expires."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from ostiary.features.clock import FrozenClock
from ostiary.features.keys.service import NoSigningKey
from ostiary.protocol.jose import private_key_der
from ostiary.protocol.sealing import SealError
from ostiary.storage.sqla.tables import signing_keys
from ostiary.web.runtime import Runtime
from tests.conftest import Backend, make_settings


async def test_first_key_signs_at_once_and_verifies_against_jwks(runtime: Any) -> None:
    async with runtime.unit() as unit:
        key = await unit.keys.ensure_key("ES256")
        assert key is not None
        assert await unit.keys.ensure_key("ES256") is None  # idempotent
        signer = await unit.keys.signer("ES256")
        jwks = await unit.keys.jwks()
    token = signer.sign({"sub": "u"})
    assert jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["ES256"]).claims == {
        "sub": "u"
    }


async def test_private_key_is_not_in_the_database_in_clear(runtime: Any) -> None:
    async with runtime.unit() as unit:
        await unit.keys.ensure_key("RS256")
        signer = await unit.keys.signer("RS256")
        row = (await unit.conn.execute(select(signing_keys))).one()
    der = private_key_der(signer.key)
    assert der not in bytes(row.sealed_private_key)
    assert der[16:48] not in bytes(row.sealed_private_key)
    assert "d" not in row.public_jwk


async def test_rotation_publishes_first_then_switches(runtime: Any, clock: FrozenClock) -> None:
    lead = runtime.settings.tokens.key_publish_lead
    async with runtime.unit() as unit:
        first = await unit.keys.ensure_key("ES256")
        clock.advance(timedelta(days=1))
        second = await unit.keys.rotate("ES256")
        assert {k["kid"] for k in (await unit.keys.jwks())["keys"]} == {first.kid, second.kid}
        assert (await unit.keys.signer("ES256")).kid == first.kid
        states = {row["kid"]: row["state"] for row in await unit.keys.describe()}
        assert states == {first.kid: "active", second.kid: "next"}
        clock.advance(lead)
        assert (await unit.keys.signer("ES256")).kid == second.kid
        clock.advance(runtime.settings.tokens.max_token_ttl - timedelta(seconds=1))
        assert first.kid in {k["kid"] for k in (await unit.keys.jwks())["keys"]}
        clock.advance(timedelta(seconds=1))
        assert [k["kid"] for k in (await unit.keys.jwks())["keys"]] == [second.kid]
        states = {row["kid"]: row["state"] for row in await unit.keys.describe()}
        assert states == {first.kid: "expired", second.kid: "active"}


async def test_key_unreadable_under_another_secret(
    runtime: Any, backend: Backend, tmp_path: Path
) -> None:
    async with runtime.unit() as unit:
        await unit.keys.ensure_key("ES256")
    other = Runtime(make_settings(backend, tmp_path), clock=runtime.clock)  # new secret key
    try:
        async with other.unit() as unit:
            with pytest.raises(NoSigningKey) as raised:
                await unit.keys.signer("ES256")
            assert isinstance(raised.value.__cause__, SealError)
            assert "does not open" in (await unit.keys.can_sign() or "")
    finally:
        await other.close()


async def _signing_kids(unit: Any) -> dict[str, str]:
    return {alg: (await unit.keys.signer(alg)).kid for alg in ("ES256", "RS256", "EdDSA")}


async def test_start_creates_the_missing_algorithms_and_keeps_the_existing_key(
    runtime: Any,
) -> None:
    """A database of the single-algorithm era holds one ES256 key: the server's start adds an
    RS256 and an EdDSA key, and ES256 tokens keep their key."""
    async with runtime.unit() as unit:
        es = await unit.keys.ensure_key("ES256")
        with pytest.raises(NoSigningKey, match="RS256"):
            await unit.keys.signer("RS256")
    await runtime.ensure_signing_key()
    async with runtime.unit() as unit:
        kids = await _signing_kids(unit)
        jwks = await unit.keys.jwks()
        assert await unit.keys.can_sign() is None
    assert kids["ES256"] == es.kid
    assert len(set(kids.values())) == 3
    assert {(k["kid"], k["alg"]) for k in jwks["keys"]} == {(v, a) for a, v in kids.items()}


async def test_rotating_one_algorithm_never_changes_what_the_others_sign_with(
    runtime: Any, clock: FrozenClock
) -> None:
    lead = runtime.settings.tokens.key_publish_lead
    ttl = runtime.settings.tokens.max_token_ttl
    async with runtime.unit() as unit:
        await unit.keys.ensure_keys()
        before = await _signing_kids(unit)
        clock.advance(timedelta(days=1))
        rs = await unit.keys.rotate("RS256")
        for step in (timedelta(0), lead, ttl):
            clock.advance(step)
            now = await _signing_kids(unit)
            assert now["ES256"] == before["ES256"] and now["EdDSA"] == before["EdDSA"]
        assert now["RS256"] == rs.kid
        # Every algorithm's current key stays published; the old RS256 key left with its
        # last token (lead + ttl after it was rotated out).
        assert {k["kid"] for k in (await unit.keys.jwks())["keys"]} == set(now.values())
        states = {row["kid"]: row["state"] for row in await unit.keys.describe()}
    assert states == {**dict.fromkeys(now.values(), "active"), before["RS256"]: "expired"}


async def test_a_retired_algorithm_gets_a_fresh_key_that_a_single_ring_would_not_pick(
    runtime: Any, clock: FrozenClock
) -> None:
    """Migration 0006 marks the ES256 key that a switch to RS256 retired; start gives ES256 a
    fresh key rather than reviving it. The fresh key signs at once, but is dated just before
    the RS256 key's activation, so a replica of the previous release (one ring over every
    key, latest activation signs) keeps signing with RS256 during a rolling upgrade."""
    from sqlalchemy import update

    async with runtime.unit() as unit:
        old_es = await unit.keys.ensure_key("ES256")
        clock.advance(timedelta(days=1))
        # What the old `keys rotate --alg RS256 --lead-seconds 0` left behind, after 0006.
        switch = clock.now()
        rs = await unit.keys.ensure_key("RS256")
        for kid, values in (
            (rs.kid, {"activates_at": switch}),
            (old_es.kid, {"retired_at": switch}),
        ):
            await unit.conn.execute(
                update(signing_keys).where(signing_keys.c.kid == kid).values(**values)
            )
        rs.activates_at = switch
    clock.advance(timedelta(seconds=10))  # past the key list cache
    async with runtime.unit() as unit:
        with pytest.raises(NoSigningKey):
            await unit.keys.signer("ES256")
        created = {k.alg: k for k in await unit.keys.ensure_keys()}
        assert set(created) == {"ES256", "EdDSA"}
        kids = await _signing_kids(unit)
    assert kids["ES256"] == created["ES256"].kid != old_es.kid
    assert kids["RS256"] == rs.kid
    everything = [old_es, rs, *created.values()]
    single_ring_signer = max(everything, key=lambda k: (k.activates_at, k.kid))
    assert single_ring_signer.kid == rs.kid


async def test_an_algorithm_that_is_not_enabled_signs_nothing(
    backend: Backend, tmp_path: Path, clock: FrozenClock
) -> None:
    rt = Runtime(make_settings(backend, tmp_path, signing_algs="RS256,ES256"), clock=clock)
    try:
        await rt.ensure_signing_key()
        async with rt.unit() as unit:
            assert {k["alg"] for k in (await unit.keys.jwks())["keys"]} == {"ES256", "RS256"}
            with pytest.raises(NoSigningKey, match="not an enabled"):
                await unit.keys.signer("EdDSA")
    finally:
        await rt.close()
