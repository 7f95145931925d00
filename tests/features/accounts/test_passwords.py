"""argon2id hashing (libsodium, with argon2-cffi agreeing) on its own thread."""

from __future__ import annotations

from ostiary.features.accounts.passwords import PasswordHasher

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
