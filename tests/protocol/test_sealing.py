"""ostiary.protocol.sealing: RFC 5869 HKDF + AES-256-GCM (NIST SP 800-38D)."""

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ostiary.protocol.sealing import SealError, derive_key, open_sealed, seal

SECRET = bytes(range(32))


def test_rfc5869_test_case_1_through_the_same_primitive() -> None:
    # RFC 5869 appendix A.1, to show the KDF we build on is the RFC's.
    ikm = bytes.fromhex("0b" * 22)
    salt = bytes.fromhex("000102030405060708090a0b0c")
    info = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9")
    okm = HKDF(hashes.SHA256(), 42, salt, info).derive(ikm)
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_derived_keys_differ_by_purpose_and_are_256_bit() -> None:
    a = derive_key(SECRET, "purpose-a")
    b = derive_key(SECRET, "purpose-b")
    assert len(a) == 32
    assert a != b
    assert derive_key(SECRET, "purpose-a") == a


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        derive_key(b"short", "x")


def test_round_trip_and_ciphertext_hides_plaintext() -> None:
    key = derive_key(SECRET, "k")
    blob = seal(key, b"private key bytes", b"kid-1")
    assert b"private key bytes" not in blob
    assert open_sealed(key, blob, b"kid-1") == b"private key bytes"
    assert seal(key, b"x", b"a") != seal(key, b"x", b"a")  # fresh nonce each time


@pytest.mark.parametrize(
    "tamper",
    [
        lambda blob: blob[:-1] + bytes([blob[-1] ^ 1]),
        lambda blob: blob[:5] + bytes([blob[5] ^ 1]) + blob[6:],
        lambda blob: b"\x02" + blob[1:],
        lambda blob: blob[:10],
    ],
)
def test_tampered_blob_is_refused(tamper: object) -> None:
    key = derive_key(SECRET, "k")
    blob = seal(key, b"payload", b"kid-1")
    with pytest.raises(SealError):
        open_sealed(key, tamper(blob), b"kid-1")  # type: ignore[operator]


def test_blob_bound_to_its_row_and_key() -> None:
    key = derive_key(SECRET, "k")
    blob = seal(key, b"payload", b"kid-1")
    with pytest.raises(SealError):
        open_sealed(key, blob, b"kid-2")
    with pytest.raises(SealError):
        open_sealed(derive_key(SECRET, "other"), blob, b"kid-1")
