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
        signer = await unit.keys.signer()
        jwks = await unit.keys.jwks()
    token = signer.sign({"sub": "u"})
    assert jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["ES256"]).claims == {
        "sub": "u"
    }


async def test_private_key_is_not_in_the_database_in_clear(runtime: Any) -> None:
    async with runtime.unit() as unit:
        await unit.keys.ensure_key("RS256")
        signer = await unit.keys.signer()
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
        second = await unit.keys.rotate("EdDSA")
        assert {k["kid"] for k in (await unit.keys.jwks())["keys"]} == {first.kid, second.kid}
        assert (await unit.keys.signer()).kid == first.kid
        states = {row["kid"]: row["state"] for row in await unit.keys.describe()}
        assert states == {first.kid: "active", second.kid: "next"}
        clock.advance(lead)
        assert (await unit.keys.signer()).kid == second.kid
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
                await unit.keys.signer()
            assert isinstance(raised.value.__cause__, SealError)
            assert "does not open" in (await unit.keys.can_sign() or "")
    finally:
        await other.close()
