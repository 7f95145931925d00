"""features/mfa/passkeys.py over the real SQL stores (SQLite; PostgreSQL + Redis when
configured), driven by a software authenticator written in the tests (tests/soft_authenticator):
registration and assertion (WebAuthn Level 3 sections 7.1 and 7.2), and each check a forged or
replayed response must fail: challenge, origin, RP ID hash, signature counter, the user handle,
user verification, another user's credential, malformed JSON.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ostiary.config import Settings
from ostiary.features.accounts.service import LoginThrottled
from ostiary.features.clock import FrozenClock
from ostiary.features.mfa.passkeys import (
    MAX_NAME_LEN,
    PasskeyRefused,
    UnknownPasskey,
    credential_key,
)
from ostiary.features.mfa.service import MfaError
from ostiary.storage.sqla.tables import audit_events, webauthn_credentials
from tests.conftest import Backend, make_settings
from tests.soft_authenticator import SoftAuthenticator, b64u

ORIGIN = "http://localhost:8000"


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    return make_settings(backend, tmp_path, issuer=ORIGIN, login_ip_failures=5)


async def _user(runtime: Any) -> str:
    async with runtime.unit() as unit:
        user = await unit.accounts.create_user(
            f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
        )
    return str(user.id)


async def _register(
    runtime: Any, user_id: str, device: SoftAuthenticator, name: str = "Laptop"
) -> dict[str, Any]:
    challenge = secrets.token_bytes(32)
    async with runtime.unit() as unit:
        options = json.loads(
            await unit.passkeys.registration_options(user_id, "u@example.com", "U", challenge)
        )
    async with runtime.unit() as unit:
        await unit.passkeys.register(
            user_id, name, device.create(options, ORIGIN), challenge, ip="192.0.2.1"
        )
    return options


async def _authenticate(
    runtime: Any,
    device: SoftAuthenticator,
    user_id: str | None = None,
    *,
    ip: str = "192.0.2.1",
    **tamper: Any,
) -> Any:
    """As the routes do: a refusal is caught inside the unit (its audit event commits)."""
    challenge = secrets.token_bytes(32)
    async with runtime.unit() as unit:
        options = json.loads(await unit.passkeys.authentication_options(challenge, user_id))
    failure: Exception | None = None
    async with runtime.unit() as unit:
        try:
            return await unit.passkeys.authenticate(
                device.get(options, ORIGIN, **tamper), challenge, user_id=user_id, ip=ip
            )
        except (MfaError, LoginThrottled) as exc:
            failure = exc
    raise failure


async def _failures(runtime: Any, action: str) -> list[dict[str, Any]]:
    async with runtime.unit() as unit:
        rows = await unit.conn.execute(
            select(audit_events).where(
                audit_events.c.action == action, audit_events.c.outcome == "failure"
            )
        )
        return [dict(r._mapping) for r in rows]


async def _stored(runtime: Any) -> list[Any]:
    async with runtime.unit() as unit:
        return list(await unit.conn.execute(select(webauthn_credentials)))


async def test_registration_options_ask_for_a_discoverable_credential_and_exclude_known_ones(
    runtime: Any,
) -> None:
    user_id = await _user(runtime)
    device = SoftAuthenticator()
    first = await _register(runtime, user_id, device)
    assert first["rp"] == {"name": "Ostiary", "id": "localhost"}
    assert first["user"]["id"] == b64u(user_id.encode())  # the random user id, not PII
    assert first["authenticatorSelection"]["residentKey"] == "required"
    assert first["authenticatorSelection"]["userVerification"] == "preferred"
    assert first["attestation"] == "none"
    assert first["excludeCredentials"] == []
    second = await _register(runtime, user_id, SoftAuthenticator(), "Phone")
    assert [c["id"] for c in second["excludeCredentials"]] == [credential_key(device.credential_id)]
    assert second["excludeCredentials"][0]["transports"] == ["internal", "hybrid"]


async def test_a_registered_passkey_signs_in_passwordless_and_its_use_is_recorded(
    runtime: Any, clock: FrozenClock
) -> None:
    user_id = await _user(runtime)
    device = SoftAuthenticator(backup_eligible=True, backup_state=False)
    await _register(runtime, user_id, device)
    async with runtime.unit() as unit:
        factors = await unit.mfa.factors(user_id)
        [passkey] = await unit.passkeys.list(user_id)
    assert factors.passkeys == 1 and factors.any
    assert passkey.name == "Laptop" and passkey.amr == "swk"
    assert passkey.transports == ("internal", "hybrid")
    assert passkey.user_verified and passkey.last_used_at is None
    device.backup_state = True  # synced since
    used = await _authenticate(runtime, device)
    assert used.user_id == user_id and used.sign_count == 1
    [row] = await _stored(runtime)
    assert row.sign_count == 1 and row.backup_state is True
    assert row.last_used_at == clock.now()


async def test_a_device_bound_passkey_is_hwk(runtime: Any) -> None:
    user_id = await _user(runtime)
    device = SoftAuthenticator(backup_eligible=False, backup_state=False)
    await _register(runtime, user_id, device)
    assert (await _authenticate(runtime, device, user_id)).amr == "hwk"


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ({"challenge": b64u(b"x" * 32)}, "invalid_response"),
        ({"origin": "http://localhost:9999"}, "invalid_response"),
        ({"rp_id": "evil.example"}, "invalid_response"),
    ],
)
async def test_registration_with_a_wrong_challenge_origin_or_rp_id_stores_nothing(
    runtime: Any, tamper: dict[str, str], reason: str
) -> None:
    user_id = await _user(runtime)
    challenge = secrets.token_bytes(32)
    async with runtime.unit() as unit:
        options = json.loads(
            await unit.passkeys.registration_options(user_id, "u@example.com", "U", challenge)
        )
    tamper = dict(tamper)  # the parameter is shared by every backend's run
    origin = tamper.pop("origin", ORIGIN)
    answer = SoftAuthenticator().create(options, origin, **tamper)
    failure: Exception | None = None
    async with runtime.unit() as unit:
        try:
            await unit.passkeys.register(user_id, "Key", answer, challenge, ip=None)
        except PasskeyRefused as exc:
            failure = exc
    assert isinstance(failure, PasskeyRefused)
    assert await _stored(runtime) == []
    [event] = await _failures(runtime, "mfa.passkey.add")
    assert event["details"]["reason"] == reason


@pytest.mark.parametrize(
    "tamper",
    [
        {"challenge": b64u(b"y" * 32)},
        {"origin": "https://localhost.evil.example"},
        {"rp_id": "example.com"},
    ],
    ids=["challenge", "origin", "rp-id-hash"],
)
async def test_an_assertion_with_a_wrong_challenge_origin_or_rp_id_is_refused(
    runtime: Any, tamper: dict[str, str]
) -> None:
    user_id = await _user(runtime)
    device = SoftAuthenticator()
    await _register(runtime, user_id, device)
    tamper = dict(tamper)  # the parameter is shared by every backend's run
    origin = tamper.pop("origin", None)
    if origin:
        challenge = secrets.token_bytes(32)
        async with runtime.unit() as unit:
            options = json.loads(await unit.passkeys.authentication_options(challenge, None))
            with pytest.raises(PasskeyRefused):
                await unit.passkeys.authenticate(
                    device.get(options, origin), challenge, user_id=None, ip=None
                )
    else:
        with pytest.raises(PasskeyRefused):
            await _authenticate(runtime, device, **tamper)
        [event] = await _failures(runtime, "login.passkey")
        assert event["details"]["reason"] == "invalid_assertion"
    [row] = await _stored(runtime)
    assert row.sign_count == 0 and row.last_used_at is None


async def test_a_counter_that_does_not_increase_is_refused_as_a_possible_clone(
    runtime: Any,
) -> None:
    user_id = await _user(runtime)
    device = SoftAuthenticator(counter=0)
    await _register(runtime, user_id, device)
    await _authenticate(runtime, device, count=5)
    with pytest.raises(PasskeyRefused):
        await _authenticate(runtime, device, count=5)  # the clone signs with the same count
    with pytest.raises(PasskeyRefused):
        await _authenticate(runtime, device, count=3)
    [row] = await _stored(runtime)
    assert row.sign_count == 5
    clones = await _failures(runtime, "mfa.passkey.cloned")
    assert [e["details"]["received_count"] for e in clones] == [5, 3]
    assert (await _authenticate(runtime, device, count=6)).sign_count == 6


async def test_an_authenticator_without_a_counter_keeps_zero(runtime: Any) -> None:
    user_id = await _user(runtime)
    device = SoftAuthenticator(counter=None)
    await _register(runtime, user_id, device)
    await _authenticate(runtime, device)
    assert (await _authenticate(runtime, device)).sign_count == 0


async def test_another_users_credential_is_refused_at_the_second_step(runtime: Any) -> None:
    alice, mallory = await _user(runtime), await _user(runtime)
    device = SoftAuthenticator()
    await _register(runtime, mallory, device)
    with pytest.raises(PasskeyRefused):
        await _authenticate(runtime, device, alice)
    [event] = await _failures(runtime, "mfa.passkey.verify")
    assert event["details"]["reason"] == "unknown_credential"
    assert event["target"] == alice


async def test_passwordless_needs_the_user_handle_of_the_credentials_owner(
    runtime: Any,
) -> None:
    user_id, other = await _user(runtime), await _user(runtime)
    device = SoftAuthenticator()
    await _register(runtime, user_id, device)
    with pytest.raises(PasskeyRefused):
        await _authenticate(runtime, device, user_handle=None)
    with pytest.raises(PasskeyRefused):
        await _authenticate(runtime, device, user_handle=other.encode())
    reasons = [e["details"]["reason"] for e in await _failures(runtime, "login.passkey")]
    assert reasons == ["user_handle_mismatch", "user_handle_mismatch"]
    # At a second step the user is known; a missing handle is allowed (section 7.2 step 6).
    assert (await _authenticate(runtime, device, user_id, user_handle=None)).user_id == user_id


async def test_passwordless_needs_user_verification_a_second_step_does_not(
    runtime: Any,
) -> None:
    user_id = await _user(runtime)
    device = SoftAuthenticator(user_verified=False)
    await _register(runtime, user_id, device)
    with pytest.raises(PasskeyRefused):
        await _authenticate(runtime, device)
    assert (await _authenticate(runtime, device, user_id)).user_verified is False


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"id": "AA", "rawId": "AA", "type": "public-key", "response": {}},
        {"id": 1, "rawId": [], "response": "x"},
        {
            "id": "AAAA",
            "rawId": "AAAA",
            "type": "public-key",
            "response": {
                "clientDataJSON": "not base64!",
                "authenticatorData": "%%%",
                "signature": "",
            },
        },
    ],
)
async def test_malformed_responses_are_refused_and_change_nothing(
    runtime: Any, body: dict[str, Any]
) -> None:
    user_id = await _user(runtime)
    await _register(runtime, user_id, SoftAuthenticator())
    before = await _stored(runtime)
    async with runtime.unit() as unit:
        with pytest.raises(PasskeyRefused):
            await unit.passkeys.authenticate(body, b"c" * 32, user_id=None, ip=None)
        with pytest.raises(PasskeyRefused):
            await unit.passkeys.register(user_id, "Key", body, b"c" * 32, ip=None)
    assert await _stored(runtime) == before


async def test_one_credential_id_is_registered_once(runtime: Any) -> None:
    alice, bob = await _user(runtime), await _user(runtime)
    device = SoftAuthenticator()
    await _register(runtime, alice, device)
    with pytest.raises(PasskeyRefused):
        await _register(runtime, bob, device)
    [row] = await _stored(runtime)
    assert row.user_id == alice


async def test_rename_and_remove_only_ones_own_passkeys(runtime: Any) -> None:
    alice, bob = await _user(runtime), await _user(runtime)
    await _register(runtime, alice, SoftAuthenticator())
    [row] = await _stored(runtime)
    key = credential_key(row.credential_id)
    async with runtime.unit() as unit:
        with pytest.raises(UnknownPasskey):
            await unit.passkeys.rename(bob, key, "Mine now", ip=None)
        with pytest.raises(UnknownPasskey):
            await unit.passkeys.remove(bob, key, actor=bob, ip=None)
        with pytest.raises(UnknownPasskey):
            await unit.passkeys.remove(alice, "not!base64", actor=alice, ip=None)
        with pytest.raises(MfaError):
            await unit.passkeys.rename(alice, key, "x" * (MAX_NAME_LEN + 1), ip=None)
        with pytest.raises(MfaError):
            await unit.passkeys.rename(alice, key, "bell\x07", ip=None)
        await unit.passkeys.rename(alice, key, "  Work   laptop ", ip=None)
        [passkey] = await unit.passkeys.list(alice)
        assert passkey.name == "Work laptop"
        await unit.passkeys.remove(alice, key, actor=alice, ip=None)
        assert await unit.passkeys.list(alice) == []


async def test_failed_passwordless_attempts_are_throttled_per_address(runtime: Any) -> None:
    user_id = await _user(runtime)
    device = SoftAuthenticator()
    await _register(runtime, user_id, device)
    for _ in range(5):  # login_ip_failures=5
        with pytest.raises(PasskeyRefused):
            await _authenticate(runtime, device, ip="198.51.100.9", challenge=b64u(b"z" * 32))
    with pytest.raises(LoginThrottled):
        await _authenticate(runtime, device, ip="198.51.100.9")
    assert (await _authenticate(runtime, device, ip="198.51.100.10")).user_id == user_id


async def test_reset_removes_passkeys_and_factors_of_counts_them(runtime: Any) -> None:
    user_id, other = await _user(runtime), await _user(runtime)
    await _register(runtime, user_id, SoftAuthenticator())
    await _register(runtime, user_id, SoftAuthenticator(), "Phone")
    async with runtime.unit() as unit:
        many = await unit.mfa.factors_of([user_id, other])
        assert many[user_id].passkeys == 2 and many[other].passkeys == 0
        before = await unit.mfa.reset(user_id, actor="cli")
        assert before.passkeys == 2
        assert (await unit.mfa.factors(user_id)).passkeys == 0
    assert await _stored(runtime) == []


async def test_the_first_factor_gets_recovery_codes_and_they_go_with_the_last(
    runtime: Any,
) -> None:
    user_id = await _user(runtime)
    await _register(runtime, user_id, SoftAuthenticator())
    async with runtime.unit() as unit:
        codes = await unit.mfa.first_recovery_codes(user_id)
        assert codes is not None and len(codes) == 10
        assert await unit.mfa.first_recovery_codes(user_id) is None  # has some already
        [passkey] = await unit.passkeys.list(user_id)
        await unit.passkeys.remove(
            user_id, credential_key(passkey.credential_id), actor=user_id, ip=None
        )
        await unit.mfa.drop_orphan_recovery_codes(user_id)
        assert (await unit.mfa.factors(user_id)).recovery_codes_left == 0


async def test_one_assertion_counter_raced_on_two_connections_wins_once(runtime: Any) -> None:
    """WebAuthn section 7.2 step 22 under concurrency: the counter is stored by a
    compare-and-set, so of two assertions carrying the same counter one is refused."""
    user_id = await _user(runtime)
    device = SoftAuthenticator()
    await _register(runtime, user_id, device)

    async def attempt() -> bool:
        try:
            await _authenticate(runtime, device, user_id, count=7)
        except PasskeyRefused:
            return False
        return True

    results = await asyncio.gather(attempt(), attempt())
    assert sorted(results) == [False, True]
    [row] = await _stored(runtime)
    assert row.sign_count == 7


async def test_backup_eligibility_must_not_change_and_the_backup_state_may(
    runtime: Any,
) -> None:
    user_id = await _user(runtime)
    device = SoftAuthenticator(backup_eligible=True, backup_state=False)
    await _register(runtime, user_id, device)
    device.backup_state = True
    assert (await _authenticate(runtime, device)).backup_state is True
    device.backup_eligible, device.backup_state = False, False
    with pytest.raises(PasskeyRefused):
        await _authenticate(runtime, device)
    [event] = await _failures(runtime, "login.passkey")
    assert event["details"]["reason"] == "backup_eligibility_changed"
    device.backup_eligible, device.backup_state = False, True  # BS without BE: impossible
    with pytest.raises(PasskeyRefused):
        await _authenticate(runtime, device)


async def test_removing_the_authenticator_app_keeps_the_codes_of_a_user_with_passkeys(
    runtime: Any, clock: FrozenClock
) -> None:
    import pyotp

    user_id = await _user(runtime)
    await _register(runtime, user_id, SoftAuthenticator())
    async with runtime.unit() as unit:
        enrollment = await unit.mfa.start_totp(user_id, "u@example.com")
        await unit.mfa.confirm_totp(user_id, pyotp.TOTP(enrollment.secret).at(clock.now()), ip=None)
        assert await unit.mfa.remove_totp(user_id, actor=user_id)
        factors = await unit.mfa.factors(user_id)
    assert factors.passkeys == 1 and factors.recovery_codes_left == 10
    async with runtime.unit() as unit:
        assert len(await unit.mfa.regenerate_recovery_codes(user_id)) == 10  # a passkey suffices
