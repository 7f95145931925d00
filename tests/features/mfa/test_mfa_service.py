"""features/mfa/service.py over the real SQL stores (SQLite; PostgreSQL + Redis when
configured): TOTP enrollment, verification with drift and replay, recovery codes, throttling,
the admin reset. Codes are computed independently with pyotp from the secret the user is shown.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from typing import Any

import pyotp
import pytest
from sqlalchemy import select

from ostiary.features.accounts.service import AccountError, LoginThrottled
from ostiary.features.clock import FrozenClock
from ostiary.features.mfa.service import (
    RECOVERY_CODE_COUNT,
    AlreadyEnrolled,
    EnrollmentExpired,
    NotEnrolled,
    WrongCode,
)
from ostiary.storage.sqla.tables import audit_events, recovery_codes, totp_factors

STEP = timedelta(seconds=30)


async def _user(runtime: Any) -> str:
    async with runtime.unit() as unit:
        user = await unit.accounts.create_user(
            f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
        )
    return str(user.id)


async def _enrolled(runtime: Any, clock: FrozenClock) -> tuple[str, pyotp.TOTP, list[str]]:
    user_id = await _user(runtime)
    async with runtime.unit() as unit:
        enrollment = await unit.mfa.start_totp(user_id, "carol@example.com")
    app = pyotp.TOTP(enrollment.secret)  # the user's authenticator app
    async with runtime.unit() as unit:
        codes = await unit.mfa.confirm_totp(user_id, app.at(clock.now()), ip="192.0.2.1")
    clock.advance(STEP)  # the confirming code's step is used: the next sign-in is a step on
    return user_id, app, codes


async def _verify(runtime: Any, user_id: str, code: str) -> None:
    """As the sign-in route will: a refusal is caught inside the unit, so what the service
    recorded of it (the audit event) commits, then reported."""
    failure: AccountError | None = None
    async with runtime.unit() as unit:
        try:
            await unit.mfa.verify_totp(user_id, code, ip="192.0.2.1")
        except AccountError as exc:
            failure = exc
    if failure is not None:
        raise failure


async def test_an_enrollment_left_unconfirmed_past_its_time_cannot_be_confirmed(
    runtime: Any, clock: FrozenClock
) -> None:
    user_id = await _user(runtime)
    async with runtime.unit() as unit:
        enrollment = await unit.mfa.start_totp(user_id, "carol@example.com")
    clock.advance(timedelta(seconds=runtime.settings.mfa_enrollment_seconds))
    app = pyotp.TOTP(enrollment.secret)
    failure: AccountError | None = None
    async with runtime.unit() as unit:
        assert await unit.mfa.pending_totp(user_id, "carol@example.com") is None
        try:
            await unit.mfa.confirm_totp(user_id, app.at(clock.now()), ip="192.0.2.1")
        except AccountError as exc:
            failure = exc
    assert isinstance(failure, EnrollmentExpired) and "Start again" in str(failure)
    async with runtime.unit() as unit:
        assert (await unit.mfa.factors(user_id)).totp is False
        events = await unit.conn.execute(
            select(audit_events.c.outcome, audit_events.c.details).where(
                audit_events.c.action == "mfa.totp.confirm"
            )
        )
        assert [(e.outcome, e.details) for e in events] == [("failure", {"reason": "expired"})]
        again = await unit.mfa.start_totp(user_id, "carol@example.com")  # starting over works
    assert again.secret != enrollment.secret
    async with runtime.unit() as unit:
        codes = await unit.mfa.confirm_totp(
            user_id, pyotp.TOTP(again.secret).at(clock.now()), ip=None
        )
    assert len(codes) == 10


async def test_enrollment_is_pending_until_a_code_proves_the_app_has_the_secret(
    runtime: Any, clock: FrozenClock
) -> None:
    user_id = await _user(runtime)
    async with runtime.unit() as unit:
        enrollment = await unit.mfa.start_totp(user_id, "carol@example.com")
        assert not (await unit.mfa.factors(user_id)).totp
    assert enrollment.uri.startswith("otpauth://totp/Ostiary:carol%40example.com?")
    assert f"secret={enrollment.secret}" in enrollment.uri
    assert len(enrollment.secret) == 32  # 160 bits of base32
    app = pyotp.TOTP(enrollment.secret)
    wrong = f"{(int(app.at(clock.now())) + 1) % 1_000_000:06d}"
    async with runtime.unit() as unit:
        with pytest.raises(WrongCode):
            await unit.mfa.confirm_totp(user_id, wrong, ip=None)
    async with runtime.unit() as unit:
        assert not (await unit.mfa.factors(user_id)).totp
        codes = await unit.mfa.confirm_totp(user_id, app.at(clock.now()), ip=None)
        factors = await unit.mfa.factors(user_id)
    assert factors.totp and factors.recovery_codes_left == RECOVERY_CODE_COUNT
    assert len(set(codes)) == RECOVERY_CODE_COUNT
    async with runtime.unit() as unit:
        with pytest.raises(AlreadyEnrolled):
            await unit.mfa.start_totp(user_id, "carol@example.com")


async def test_the_secret_is_sealed_at_rest_and_bound_to_its_user(
    runtime: Any, clock: FrozenClock
) -> None:
    from ostiary.protocol.sealing import SealError

    _, app, _ = await _enrolled(runtime, clock)
    other_id = await _user(runtime)
    async with runtime.unit() as unit:
        row = (await unit.conn.execute(select(totp_factors))).first()
        assert row is not None
        assert app.secret.encode() not in row.sealed_secret
        # Copied to another user's row, it does not open (associated data = the user id).
        await unit.mfa.start_totp(other_id, "dave@example.com")
        await unit.conn.execute(
            totp_factors.update()
            .where(totp_factors.c.user_id == other_id)
            .values(sealed_secret=row.sealed_secret)
        )
    async with runtime.unit() as unit:
        with pytest.raises(SealError):
            await unit.mfa.confirm_totp(other_id, app.at(clock.now()), ip=None)


async def test_drift_of_one_step_either_side_and_every_code_once(
    runtime: Any, clock: FrozenClock
) -> None:
    user_id, app, _ = await _enrolled(runtime, clock)
    clock.advance(STEP)  # the step before now is not the one enrollment used
    now = clock.now()
    await _verify(runtime, user_id, app.at(now - STEP))  # the phone is 30 s behind
    await _verify(runtime, user_id, app.at(now))
    with pytest.raises(WrongCode):
        await _verify(runtime, user_id, app.at(now))  # replay
    with pytest.raises(WrongCode):
        await _verify(runtime, user_id, app.at(now - STEP))  # older than one used
    await _verify(runtime, user_id, app.at(now + STEP))  # the phone is 30 s ahead
    clock.advance(3 * STEP)
    with pytest.raises(WrongCode):
        await _verify(runtime, user_id, app.at(clock.now() - 2 * STEP))  # stale


async def test_one_code_sent_at_once_from_many_places_wins_once(
    runtime: Any, clock: FrozenClock
) -> None:
    """RFC 6238 section 5.2 under concurrency: the step is taken by a compare-and-set."""
    user_id, app, _ = await _enrolled(runtime, clock)
    code = app.at(clock.now())

    async def attempt() -> bool:
        try:
            await _verify(runtime, user_id, code)
        except WrongCode:
            return False
        return True

    results = await asyncio.gather(*(attempt() for _ in range(8)))
    assert results.count(True) == 1


async def test_wrong_codes_are_throttled_per_account_and_audited(
    runtime: Any, clock: FrozenClock
) -> None:
    user_id, app, _ = await _enrolled(runtime, clock)
    limit = runtime.settings.throttle.account_failures
    wrong = f"{(int(app.at(clock.now())) + 1) % 1_000_000:06d}"
    for _ in range(limit):
        with pytest.raises(WrongCode):
            await _verify(runtime, user_id, wrong)
    with pytest.raises(LoginThrottled):
        await _verify(runtime, user_id, app.at(clock.now()))  # even the right one, now
    async with runtime.unit() as unit:
        actions = [
            (r.action, r.outcome)
            for r in await unit.conn.execute(
                select(audit_events).where(audit_events.c.target == user_id)
            )
        ]
    assert actions.count(("mfa.totp.verify", "failure")) == limit
    assert ("mfa.throttled", "failure") in actions
    clock.advance(timedelta(seconds=runtime.settings.throttle.window_seconds + 1))
    await _verify(runtime, user_id, app.at(clock.now()))


async def test_recovery_codes_are_single_use_hmac_stored_and_replaced_as_a_set(
    runtime: Any, clock: FrozenClock
) -> None:
    user_id, _, codes = await _enrolled(runtime, clock)
    async with runtime.unit() as unit:
        stored = {r.code_hash for r in await unit.conn.execute(select(recovery_codes))}
        assert not any(c.replace("-", "") in h for c in codes for h in stored)
        assert await unit.mfa.use_recovery_code(user_id, codes[0].upper(), ip=None) == 9
    async with runtime.unit() as unit:
        with pytest.raises(WrongCode):
            await unit.mfa.use_recovery_code(user_id, codes[0], ip=None)
        with pytest.raises(WrongCode):
            await unit.mfa.use_recovery_code(user_id, "not a code", ip=None)
        fresh = await unit.mfa.regenerate_recovery_codes(user_id)
    assert not set(fresh) & set(codes)
    async with runtime.unit() as unit:
        with pytest.raises(WrongCode):
            await unit.mfa.use_recovery_code(user_id, codes[1], ip=None)  # the old set is gone
        assert await unit.mfa.use_recovery_code(user_id, fresh[5], ip=None) == 9

    async def spend() -> bool:
        async with runtime.unit() as unit:
            try:
                await unit.mfa.use_recovery_code(user_id, fresh[6], ip=None)
            except WrongCode:
                return False
        return True

    assert (await asyncio.gather(*(spend() for _ in range(6)))).count(True) == 1


async def test_an_admin_reset_removes_every_factor_and_says_what_there_was(
    runtime: Any, clock: FrozenClock
) -> None:
    user_id, app, _ = await _enrolled(runtime, clock)
    async with runtime.unit() as unit:
        before = await unit.mfa.reset(user_id, actor="cli")
        after = await unit.mfa.factors(user_id)
    assert before.totp and before.recovery_codes_left == RECOVERY_CODE_COUNT
    assert not after.totp and after.recovery_codes_left == 0
    with pytest.raises(NotEnrolled):
        await _verify(runtime, user_id, app.at(clock.now()))
    async with runtime.unit() as unit:
        with pytest.raises(NotEnrolled):
            await unit.mfa.regenerate_recovery_codes(user_id)


async def test_factors_of_many_users_at_once(runtime: Any, clock: FrozenClock) -> None:
    enrolled, _app, codes = await _enrolled(runtime, clock)
    pending, plain = await _user(runtime), await _user(runtime)
    async with runtime.unit() as unit:
        await unit.mfa.start_totp(pending, "dan@example.com")  # not confirmed: not a factor
        await unit.mfa.use_recovery_code(enrolled, codes[0], ip=None)
    async with runtime.unit() as unit:
        many = await unit.mfa.factors_of([enrolled, pending, plain])
        one_by_one = {uid: await unit.mfa.factors(uid) for uid in (enrolled, pending, plain)}
        assert await unit.mfa.factors_of([]) == {}
    assert many == one_by_one
    assert many[enrolled].totp and many[enrolled].recovery_codes_left == RECOVERY_CODE_COUNT - 1
    assert not many[pending].totp and not many[plain].totp


async def test_a_pending_enrollment_is_shown_again_with_the_same_secret(
    runtime: Any, clock: FrozenClock
) -> None:
    user_id = await _user(runtime)
    async with runtime.unit() as unit:
        assert await unit.mfa.pending_totp(user_id, "erin@example.com") is None
        started = await unit.mfa.start_totp(user_id, "erin@example.com")
    async with runtime.unit() as unit:
        again = await unit.mfa.pending_totp(user_id, "erin@example.com")
    assert again == started
    async with runtime.unit() as unit:
        await unit.mfa.confirm_totp(user_id, pyotp.TOTP(started.secret).at(clock.now()), ip=None)
        assert await unit.mfa.pending_totp(user_id, "erin@example.com") is None  # active now
