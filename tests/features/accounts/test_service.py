"""Account use cases over the real stores (SQLite, and PostgreSQL + Redis when configured)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from ostiary.features.accounts.passwords import PasswordHasher
from ostiary.features.accounts.service import (
    EmailTaken,
    EmailUnavailable,
    InvalidEmail,
    LoginThrottled,
    SameEmail,
    SignInFailed,
    WeakPassword,
    WrongPassword,
)
from ostiary.storage.sqla.repositories import SqlAuditStore

GOOD = "correct horse battery staple 92"


async def _create(rt: Any, email: str = "Alice@Example.com", password: str = GOOD) -> Any:
    async with rt.unit() as unit:
        return await unit.accounts.create_user(email, password, name="Alice")


async def test_create_normalizes_email_and_hashes_with_argon2id(runtime: Any) -> None:
    user = await _create(runtime)
    assert user.email == "alice@example.com"
    assert user.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert GOOD not in user.password_hash


async def test_email_is_unique_case_insensitively(runtime: Any) -> None:
    await _create(runtime)
    with pytest.raises(EmailTaken):
        await _create(runtime, "ALICE@example.COM")


@pytest.mark.parametrize("email", ["no-at-sign", "a@b", "a b@example.com", "@example.com"])
async def test_invalid_emails_refused(runtime: Any, email: str) -> None:
    with pytest.raises(InvalidEmail):
        await _create(runtime, email)


async def test_weak_password_refused_with_reason_and_nothing_stored(runtime: Any) -> None:
    with pytest.raises(WeakPassword, match="at least 12"):
        await _create(runtime, password="short")
    async with runtime.unit() as unit:
        assert await unit.accounts.list_users() == []


async def test_authenticate_success_is_audited(runtime: Any) -> None:
    user = await _create(runtime)
    async with runtime.unit() as unit:
        result = await unit.accounts.authenticate("ALICE@example.com", GOOD, ip="192.0.2.1")
        events = await SqlAuditStore(unit.conn).recent(1)
    assert result.user.id == user.id
    assert result.amr == ("pwd",)
    assert (events[0].action, events[0].outcome, events[0].actor) == ("login", "success", user.id)


async def test_unknown_email_and_wrong_password_fail_alike(runtime: Any) -> None:
    await _create(runtime)
    messages = []
    for email, password in (("alice@example.com", "wrong password!!"), ("bob@x.org", GOOD)):
        async with runtime.unit() as unit:
            with pytest.raises(SignInFailed) as info:
                await unit.accounts.authenticate(email, password, ip="192.0.2.1")
            messages.append(str(info.value))
    assert messages[0] == messages[1] == "Incorrect e-mail address or password."


async def test_unknown_email_still_verifies_a_hash(runtime: Any) -> None:
    calls: list[str | None] = []
    original = runtime.hasher.verify

    async def counting(stored: str | None, password: str) -> bool:
        calls.append(stored)
        return bool(await original(stored, password))

    runtime.hasher.verify = counting
    async with runtime.unit() as unit:
        with pytest.raises(SignInFailed):
            await unit.accounts.authenticate("nobody@example.com", GOOD, ip=None)
    assert calls == [None]  # the hasher ran (against its dummy hash)


async def test_disabled_user_cannot_sign_in_even_with_right_password(runtime: Any) -> None:
    await _create(runtime)
    async with runtime.unit() as unit:
        await unit.accounts.disable("alice@example.com")
    async with runtime.unit() as unit:
        with pytest.raises(SignInFailed):
            await unit.accounts.authenticate("alice@example.com", GOOD, ip=None)


async def test_failures_are_throttled_per_account(runtime: Any) -> None:
    await _create(runtime)
    limit = runtime.settings.login_account_failures
    for _ in range(limit):
        async with runtime.unit() as unit:
            with pytest.raises(SignInFailed):
                await unit.accounts.authenticate("alice@example.com", "not it at all!", ip="x")
    async with runtime.unit() as unit:
        with pytest.raises(LoginThrottled) as info:
            await unit.accounts.authenticate("alice@example.com", GOOD, ip="x")
    assert 0 < info.value.retry_after <= runtime.settings.login_window_seconds


async def test_success_clears_the_account_counter(runtime: Any) -> None:
    await _create(runtime)
    limit = runtime.settings.login_account_failures
    for _ in range(limit - 1):
        async with runtime.unit() as unit:
            with pytest.raises(SignInFailed):
                await unit.accounts.authenticate("alice@example.com", "not it at all!", ip="y")
    async with runtime.unit() as unit:
        await unit.accounts.authenticate("alice@example.com", GOOD, ip="y")
    async with runtime.unit() as unit:
        with pytest.raises(SignInFailed):
            await unit.accounts.authenticate("alice@example.com", "not it at all!", ip="y")
    async with runtime.unit() as unit:
        await unit.accounts.authenticate("alice@example.com", GOOD, ip="y")


async def test_password_rehashed_when_parameters_change(runtime: Any) -> None:
    weak = PasswordHasher(memory_kib=8 * 1024, time_cost=1)
    strong, runtime.hasher = runtime.hasher, weak
    user = await _create(runtime)
    assert ",t=1," in user.password_hash
    runtime.hasher = strong
    weak.close()
    async with runtime.unit() as unit:
        result = await unit.accounts.authenticate("alice@example.com", GOOD, ip=None)
    assert result.user.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    async with runtime.unit() as unit:
        stored = await unit.accounts.get(user.id)
    assert stored is not None
    assert stored.password_hash == result.user.password_hash


async def test_set_password_checks_strength(runtime: Any) -> None:
    await _create(runtime)
    async with runtime.unit() as unit:
        with pytest.raises(WeakPassword):
            await unit.accounts.set_password("alice@example.com", "password1234")
        await unit.accounts.set_password("alice@example.com", "a whole new passphrase 77")
    async with runtime.unit() as unit:
        await unit.accounts.authenticate("alice@example.com", "a whole new passphrase 77", ip=None)


async def test_hasher_verify_rejects_garbage_hashes() -> None:
    hasher = PasswordHasher(memory_kib=1024, time_cost=1)
    assert await hasher.verify("not-a-hash", "x") is False
    assert hasher.needs_rehash("not-a-hash") is True


# -- concurrent guesses (issue 9 item 1) --------------------------------------------------


class _GatedGuesses:
    """Sign-ins run as the login route runs them (begin in one unit, argon2 outside any, finish
    in another), with every password check held at a gate: all guesses are in flight together,
    none has failed yet, so a limit that counts only failures would let every one through."""

    def __init__(self, rt: Any) -> None:
        self.rt = rt
        self.verified: list[str] = []
        self.begun = 0
        self._begun_changed = asyncio.Event()
        self.gate = asyncio.Event()
        original = rt.hasher.verify

        async def gated(stored: str | None, password: str) -> bool:
            self.verified.append(password)
            await self.gate.wait()
            return bool(await original(stored, password))

        rt.hasher.verify = gated

    async def sign_in(self, email: str, password: str, ip: str) -> str:
        try:
            async with self.rt.unit() as unit:
                attempt = await unit.accounts.begin_sign_in(email, ip=ip)
        except LoginThrottled:
            return "throttled"
        finally:
            self.begun += 1
            self._begun_changed.set()
        attempt = await unit.accounts.check_password(attempt, password)
        try:
            async with self.rt.unit() as unit:
                await unit.accounts.finish_sign_in(attempt, password)
        except SignInFailed:
            return "failed"
        return "signed in"

    async def until_begun(self, count: int) -> None:
        while self.begun < count:
            self._begun_changed.clear()
            await self._begun_changed.wait()


async def test_concurrent_guesses_cannot_pass_the_account_limit(runtime: Any) -> None:
    await _create(runtime)
    limit = runtime.settings.login_account_failures
    guesses = _GatedGuesses(runtime)
    # A distributed attack: every guess from its own address, so only the account limit binds.
    wrong = [
        asyncio.create_task(
            guesses.sign_in("alice@example.com", f"wrong guess number {i}", f"192.0.2.{i}")
        )
        for i in range(15 * limit)
    ]
    await guesses.until_begun(len(wrong))
    # The owner's right password, sent last while the guesses are still being checked.
    right = asyncio.create_task(guesses.sign_in("alice@example.com", GOOD, "198.51.100.1"))
    await guesses.until_begun(len(wrong) + 1)
    guesses.gate.set()
    outcomes = await asyncio.gather(*wrong)
    assert await right == "throttled"
    assert len(guesses.verified) == limit  # argon2 ran for `limit` guesses, no more
    assert outcomes.count("failed") == limit
    assert outcomes.count("throttled") == len(wrong) - limit
    # The failures were counted: still throttled until the window has passed.
    with pytest.raises(LoginThrottled):
        async with runtime.unit() as unit:
            await unit.accounts.authenticate("alice@example.com", GOOD, ip="198.51.100.1")
    runtime.clock.advance(timedelta(seconds=runtime.settings.login_window_seconds))
    async with runtime.unit() as unit:
        await unit.accounts.authenticate("alice@example.com", GOOD, ip="198.51.100.1")


async def test_concurrent_guesses_cannot_pass_the_address_limit(
    backend: Any, tmp_path: Any, clock: Any
) -> None:
    from ostiary.web.runtime import Runtime
    from tests.conftest import make_settings

    rt = Runtime(make_settings(backend, tmp_path, login_ip_failures=20), clock=clock)
    try:
        await _create(rt)
        guesses = _GatedGuesses(rt)
        # Credential stuffing from one address: a different account each time.
        wrong = [
            asyncio.create_task(guesses.sign_in(f"user{i}@example.com", GOOD, "192.0.2.66"))
            for i in range(60)
        ]
        await guesses.until_begun(len(wrong))
        right = asyncio.create_task(guesses.sign_in("alice@example.com", GOOD, "192.0.2.66"))
        await guesses.until_begun(len(wrong) + 1)
        guesses.gate.set()
        outcomes = await asyncio.gather(*wrong)
        assert await right == "throttled"
        assert len(guesses.verified) == 20
        assert outcomes.count("failed") == 20
    finally:
        await rt.close()


async def test_a_success_gives_its_address_slot_back(
    backend: Any, tmp_path: Any, clock: Any
) -> None:
    # Many people behind one NAT address signing in successfully never exhaust its limit.
    from ostiary.web.runtime import Runtime
    from tests.conftest import make_settings

    rt = Runtime(make_settings(backend, tmp_path, login_ip_failures=3), clock=clock)
    try:
        await _create(rt)
        for _ in range(6):
            async with rt.unit() as unit:
                await unit.accounts.authenticate("alice@example.com", GOOD, ip="192.0.2.80")
        for _ in range(3):
            with pytest.raises(SignInFailed):
                async with rt.unit() as unit:
                    await unit.accounts.authenticate("bob@example.com", GOOD, ip="192.0.2.80")
        with pytest.raises(LoginThrottled):
            async with rt.unit() as unit:
                await unit.accounts.authenticate("alice@example.com", GOOD, ip="192.0.2.80")
    finally:
        await rt.close()


# -- known devices (issue 9 item 7: guessing must not lock the owner out) ------------------


async def _guess_until_throttled(rt: Any, email: str, *, device_cookie: str | None = None) -> None:
    """``limit`` wrong passwords, each from its own address; the next attempt is throttled."""
    limit = rt.settings.login_account_failures
    for i in range(limit):
        with pytest.raises(SignInFailed):
            async with rt.unit() as unit:
                await unit.accounts.authenticate(
                    email, "wrong guess here", ip=f"192.0.2.{i}", device_cookie=device_cookie
                )
    with pytest.raises(LoginThrottled):
        async with rt.unit() as unit:
            await unit.accounts.authenticate(
                email, "wrong guess here", ip="192.0.2.250", device_cookie=device_cookie
            )


async def test_known_device_signs_in_while_guessing_locks_the_account(runtime: Any) -> None:
    await _create(runtime)
    async with runtime.unit() as unit:
        first = await unit.accounts.authenticate("alice@example.com", GOOD, ip="198.51.100.1")
    assert first.device_cookie is not None
    # An attacker without the cookie exhausts the account, from many addresses.
    await _guess_until_throttled(runtime, "alice@example.com")
    with pytest.raises(LoginThrottled):  # the account bound holds for every unknown browser
        async with runtime.unit() as unit:
            await unit.accounts.authenticate("alice@example.com", GOOD, ip="198.51.100.1")
    # The owner's browser, which signed in before, is throttled apart and gets in.
    async with runtime.unit() as unit:
        again = await unit.accounts.authenticate(
            "alice@example.com", GOOD, ip="198.51.100.1", device_cookie=first.device_cookie
        )
    assert again.user.id == first.user.id
    assert again.device_cookie is not None
    assert again.device_cookie.split(".")[0] == first.device_cookie.split(".")[0]  # same device


async def test_device_cookie_of_another_account_is_worth_nothing(runtime: Any) -> None:
    await _create(runtime)
    await _create(runtime, "mallory@example.com")
    async with runtime.unit() as unit:
        own = await unit.accounts.authenticate("mallory@example.com", GOOD, ip="192.0.2.9")
    await _guess_until_throttled(runtime, "alice@example.com")
    with pytest.raises(LoginThrottled):
        async with runtime.unit() as unit:
            await unit.accounts.authenticate(
                "alice@example.com",
                "wrong guess here",
                ip="192.0.2.9",
                device_cookie=own.device_cookie,
            )


async def test_a_stolen_device_cookie_buys_one_bucket_only(runtime: Any) -> None:
    await _create(runtime)
    async with runtime.unit() as unit:
        owner = await unit.accounts.authenticate("alice@example.com", GOOD, ip="198.51.100.1")
    await _guess_until_throttled(runtime, "alice@example.com", device_cookie=owner.device_cookie)
    with pytest.raises(LoginThrottled):  # that device's bucket is spent, right password or not
        async with runtime.unit() as unit:
            await unit.accounts.authenticate(
                "alice@example.com", GOOD, ip="198.51.100.1", device_cookie=owner.device_cookie
            )
    # The account's shared bucket was not touched by the device's failures.
    async with runtime.unit() as unit:
        await unit.accounts.authenticate("alice@example.com", GOOD, ip="198.51.100.2")


async def test_known_devices_off_sets_no_cookie_and_honours_none(
    backend: Any, tmp_path: Any, clock: Any
) -> None:
    from ostiary.web.runtime import Runtime
    from tests.conftest import make_settings

    on = Runtime(make_settings(backend, tmp_path), clock=clock)
    try:
        await _create(on)
        async with on.unit() as unit:
            cookie = (
                await unit.accounts.authenticate("alice@example.com", GOOD, ip="x")
            ).device_cookie
    finally:
        await on.close()
    settings = make_settings(backend, tmp_path, login_known_device_days=0)
    settings = settings.model_copy(update={"secret_key": on.settings.secret_key})
    off = Runtime(settings, clock=clock)
    try:
        async with off.unit() as unit:
            result = await unit.accounts.authenticate("alice@example.com", GOOD, ip="x")
        assert result.device_cookie is None
        await _guess_until_throttled(off, "alice@example.com", device_cookie=cookie)
        with pytest.raises(LoginThrottled):
            async with off.unit() as unit:
                await unit.accounts.authenticate(
                    "alice@example.com", GOOD, ip="x", device_cookie=cookie
                )
    finally:
        await off.close()


# -- the profile: standard claims (OIDC Core 5.1) ----------------------------------------------


async def test_update_profile_stores_claims_bumps_updated_at_and_audits_names_only(
    runtime: Any, clock: Any
) -> None:
    from ostiary.features.accounts.service import InvalidProfile

    user = await _create(runtime)
    clock.advance(timedelta(minutes=5))
    async with runtime.unit() as unit:
        await unit.accounts.update_profile(
            user.id,
            name="Alice Liddell",
            email_verified=True,
            claims={"phone_number": "+44 20 7946 0018", "address": {"country": "GB"}},
            actor=user.id,
        )
    async with runtime.unit() as unit:
        stored = await unit.accounts.get(user.id)
        events = await SqlAuditStore(unit.conn).recent(1)
    assert stored.name == "Alice Liddell" and stored.email_verified is True
    assert stored.claims == {"phone_number": "+442079460018", "address": {"country": "GB"}}
    assert stored.updated_at == user.created_at + timedelta(minutes=5)
    assert events[0].action == "user.update"
    assert events[0].details == {"changed": ["address", "phone_number", "name", "email_verified"]}
    assert "+44" not in str(events[0].details)  # personal data stays out of the audit trail

    # Invalid input: a clear error, nothing stored; clearing a claim removes it.
    async with runtime.unit() as unit:
        with pytest.raises(InvalidProfile, match=r"E\.164") as caught:
            await unit.accounts.update_profile(
                user.id, claims={"nickname": "Al", "phone_number": "call me"}
            )
    assert caught.value.claim == "phone_number"
    clock.advance(timedelta(minutes=5))
    async with runtime.unit() as unit:
        await unit.accounts.update_profile(user.id, claims={"phone_number": ""})
        again = await unit.accounts.get(user.id)
    assert again.claims == {"address": {"country": "GB"}}
    assert again.updated_at == stored.updated_at + timedelta(minutes=5)


async def test_update_profile_without_a_change_keeps_updated_at(runtime: Any, clock: Any) -> None:
    user = await _create(runtime)
    clock.advance(timedelta(minutes=5))
    async with runtime.unit() as unit:
        await unit.accounts.update_profile(user.id, name="Alice", claims={"nickname": ""})
        stored = await unit.accounts.get(user.id)
    assert stored.updated_at == user.updated_at


# -- changes confirmed with the current password ----------------------------------------------


async def _confirmed(rt: Any, user_id: str, password: str = GOOD, action: str = "x") -> Any:
    async with rt.unit() as unit:
        accounts = unit.accounts
        attempt = await accounts.begin_confirmation(user_id, action=action, ip="192.0.2.1")
    return await accounts.check_password(attempt, password)


async def test_a_confirmation_made_stale_by_a_password_change_is_refused(runtime: Any) -> None:
    user = await _create(runtime)
    stale = await _confirmed(runtime, user.id)
    assert stale.password_ok
    async with runtime.unit() as unit:  # meanwhile, an operator sets a new password
        await unit.accounts.set_password(user.email, "another good passphrase 5521", actor="cli")
    new_hash = await runtime.hasher.hash("a third good passphrase 8812")
    with pytest.raises(WrongPassword):
        async with runtime.unit() as unit:
            await unit.accounts.change_password(stale, new_hash, ip=None)
    async with runtime.unit() as unit:
        assert await unit.accounts.authenticate(user.email, "another good passphrase 5521", ip=None)


async def test_two_accounts_racing_for_one_address_one_wins(runtime: Any) -> None:
    first = await _create(runtime, "first@example.com")
    second = await _create(runtime, "second@example.com")
    attempts = [await _confirmed(runtime, u.id) for u in (first, second)]

    async def change(attempt: Any) -> str:
        async with runtime.unit() as unit:
            try:
                await unit.accounts.change_email(attempt, "wanted@example.com", ip=None)
            except EmailUnavailable:
                return "refused"
        return "changed"

    outcomes = await asyncio.gather(*(change(a) for a in attempts))
    assert sorted(outcomes) == ["changed", "refused"]
    async with runtime.unit() as unit:
        owner = await unit.accounts.get_by_email("wanted@example.com")
        assert owner.id in (first.id, second.id) and owner.email_verified is False
        loser = await unit.accounts.get(second.id if owner.id == first.id else first.id)
        assert loser.email in ("first@example.com", "second@example.com")


async def test_new_email_is_validated_as_at_creation(runtime: Any) -> None:
    user = await _create(runtime)
    async with runtime.unit() as unit:
        assert unit.accounts.check_new_email(user, "  New@Example.COM ") == "new@example.com"
        for bad in ("no-at-sign", "a@b", "a b@example.com", "@example.com"):
            with pytest.raises(InvalidEmail):
                unit.accounts.check_new_email(user, bad)
        with pytest.raises(SameEmail):
            unit.accounts.check_new_email(user, "ALICE@example.com")
