"""argon2id hashing on its own thread, and memory given back once sign-ins pause."""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest

from ostiary.features.accounts.passwords import PasswordHasher
from ostiary.memory import release_free_memory, use_one_malloc_arena

SMALL = {"memory_kib": 1024, "time_cost": 1}  # fast for tests; parameters are not the point


async def test_verify_and_unknown_account_path() -> None:
    hasher = PasswordHasher(**SMALL)
    try:
        stored = await hasher.hash("correct horse battery staple 92")
        assert stored.startswith("$argon2id$")
        assert await hasher.verify(stored, "correct horse battery staple 92")
        assert not await hasher.verify(stored, "wrong")
        assert not await hasher.verify(None, "anything")  # dummy hash, same work
    finally:
        hasher.close()


async def test_memory_is_released_once_after_a_pause_on_the_hashing_thread() -> None:
    calls: list[str] = []
    hasher = PasswordHasher(
        **SMALL,
        release_after=0.2,
        release=lambda: calls.append(threading.current_thread().name),
    )
    try:
        stored = await hasher.hash("correct horse battery staple 92")
        for _ in range(4):  # a burst: no release while hashes keep coming
            await hasher.verify(stored, "x")
            await asyncio.sleep(0.05)
        assert calls == []
        await asyncio.sleep(0.5)
        assert len(calls) == 1
        assert calls[0].startswith("argon2")
        await asyncio.sleep(0.3)
        assert len(calls) == 1  # once per pause, not periodically
        await hasher.verify(stored, "x")
        await asyncio.sleep(0.5)
        assert len(calls) == 2
    finally:
        hasher.close()


async def test_closing_cancels_a_pending_release() -> None:
    calls: list[int] = []
    hasher = PasswordHasher(**SMALL, release_after=0.1, release=lambda: calls.append(1))
    await hasher.verify(None, "x")
    hasher.close()
    await asyncio.sleep(0.3)
    assert calls == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_glibc_entry_points_exist_here() -> None:
    assert use_one_malloc_arena() is True
    assert release_free_memory() in (True, False)  # callable; nothing freed is fine


async def test_hashes_are_standard_phc_strings_either_library_verifies() -> None:
    """libsodium makes and checks the hashes; argon2-cffi must agree both ways."""
    from argon2 import PasswordHasher as Argon2Cffi
    from argon2 import Type

    hasher = PasswordHasher(**SMALL)
    cffi = Argon2Cffi(time_cost=1, memory_cost=1024, parallelism=1, type=Type.ID)
    try:
        ours = await hasher.hash("correct horse battery staple 92")
        assert ours.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
        assert cffi.verify(ours, "correct horse battery staple 92")
        assert not hasher.needs_rehash(ours)
        theirs = cffi.hash("tr0ub4dor&3 but longer")
        assert await hasher.verify(theirs, "tr0ub4dor&3 but longer")
        assert not await hasher.verify(theirs, "tr0ub4dor&3 but shorter")
    finally:
        hasher.close()


async def test_argon2i_and_multi_lane_hashes_still_verify_and_ask_for_a_rehash() -> None:
    from argon2 import PasswordHasher as Argon2Cffi
    from argon2 import Type

    hasher = PasswordHasher(**SMALL)
    try:
        for legacy in (
            Argon2Cffi(time_cost=1, memory_cost=1024, parallelism=1, type=Type.I),
            Argon2Cffi(time_cost=1, memory_cost=1024, parallelism=4, type=Type.ID),
        ):
            stored = legacy.hash("an older hash of this phrase")
            assert await hasher.verify(stored, "an older hash of this phrase")
            assert not await hasher.verify(stored, "another phrase entirely")
            assert hasher.needs_rehash(stored)
    finally:
        hasher.close()


async def test_malformed_stored_hashes_are_a_mismatch_not_an_error() -> None:
    hasher = PasswordHasher(**SMALL)
    try:
        for stored in ("", "$argon2id$v=19$m=1024,t=1,p=1$xx", "plaintext", "$argon2id$\u00e9"):
            assert not await hasher.verify(stored, "whatever it is")
    finally:
        hasher.close()
