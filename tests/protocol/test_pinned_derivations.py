"""Pinned outputs of the key derivation (RFC 5869) and of the secret digest (RFC 2104).

Every sealed signing key, session cookie hash, client secret, refresh token and CSRF token
depends on these functions' exact output: a change to HKDF's salt, info or length, or to the
digest's encoding, would make all of them unreadable after an upgrade, and round-trip tests
would not notice. The expected values are computed here independently (HMAC-SHA256 from the
standard library, following RFC 5869 section 2.2 and 2.3 step by step) and also written out,
and a blob sealed on 2026-12-02 must still open.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ostiary.protocol.jose import load_private_key
from ostiary.protocol.opaque_secrets import digest_matches, secret_digest
from ostiary.protocol.sealing import derive_key, open_sealed

SECRET = bytes(range(32))  # OSTIARY_SECRET_KEY=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8

# The purposes the runtime derives (web/runtime.py) and their keys under SECRET.
PINNED_KEYS = {
    "ostiary/session-token": "175d5b999dff75955bbc1e7694a9a4506f8bbd4d8f5d6563ee1425e78bde600f",
    "ostiary/csrf": "e1a536b3c9f3cefec4db422b432594aa18a4e31e8f2c97eb95d3c273b3bfed51",
    "ostiary/signing-key-encryption": (
        "022728c29b75357877c6c9ca229a062c4591613319c7a5dc5c3299b0a31465f4"
    ),
    "ostiary/token-hmac": "2b2b50d4c4ef999f29e83178a3fda47f573d7e682b60c4457daa7ab6c0ac8fc5",
    # Pinned on 2026-12-02: TOTP secrets sealed at rest, recovery-code digests, and the names
    # of the sign-in throttle's Redis keys.
    "ostiary/mfa-secret-encryption": (
        "470c02d4c0f37e485dfcf2f411b6f71e01a283df8085fe26346b79b77dac18c3"
    ),
    "ostiary/recovery-code-hmac": (
        "8c803f70e88d485f7290e98617cfd1d42ef008943393950c52cd602929c93ede"
    ),
    "ostiary/login-throttle-keys": (
        "6acb03a4d90ae455c82e24d6a37ba59f944b9e19b4892faaafc11db2d54b7da9"
    ),
    # Pinned on 2026-12-03: the MAC of a passkey ceremony's signed challenge state.
    "ostiary/webauthn-ceremony": (
        "828ede62a6ca956459fcf813a8218eae2d7acd7f053c845412930f1366206c2b"
    ),
    # Pinned on 2026-12-03: the HMAC key of stored invitation tokens (features/invitations).
    "ostiary/invitation": "0b52ce25899cbadaed95e51c2357037b8215ada465ac370a10a49944b9423c44",
    # Pinned on 2026-12-03: the MAC of the links that verify a changed e-mail address.
    "ostiary/email-verification": (
        "444288f09ee02c03834c3fc3df06658c10d72b5d35b06ab1a1f4f2ab670a6add"
    ),
    # Pinned on 2026-12-03: the HMAC key of stored API keys (features/apikeys).
    "ostiary/api-key-hmac": "c5e8b59168fb8c60f130acf56296c0e653ea96219ef5ce2459b3e7d618f81245",
    # Pinned on 2026-12-03: the MAC of the management API's paging cursors.
    "ostiary/api-cursor": "efd9a1bef76ee8fcc8305698281bba2f6a38a01f36e7ac116a0a5a080abcc58a",
}

# Sealed on 2026-12-02 under derive_key(SECRET, "ostiary/signing-key-encryption"), associated
# data b"pinned-2026-12-02": the PKCS#8 DER of the Ed25519 key of RFC 8037 appendix A.1.
SEALED_2026_12_02 = bytes.fromhex(
    "0192903a86a37735b04e17d64516388bf4dd5762728e74ea2295f294606c905a02a492bda7d0ab52ea"
    "4494e869d80142f8922e606e778745159a3a1b0ce5ac330a869620c922162c841c4982a1"
)
SEALED_KID = b"pinned-2026-12-02"
# RFC 8037 appendix A.1 / A.2: the key pair inside the blob.
RFC8037_SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
RFC8037_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"


def hkdf_sha256(ikm: bytes, info: bytes, length: int, salt: bytes = b"") -> bytes:
    """RFC 5869 section 2, written out with HMAC-SHA256 (HashLen = 32)."""
    prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()  # 2.2: salt defaults to 0s
    okm, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):  # 2.3: T(i) = HMAC(PRK, T(i-1)|info|i)
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
    return okm[:length]


def test_the_hand_written_hkdf_is_rfc_5869() -> None:
    # Appendix A.3: SHA-256 with zero-length salt and info, the case derive_key is in.
    ikm = bytes.fromhex("0b" * 22)
    assert hkdf_sha256(ikm, b"", 42).hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )
    # Appendix A.1: with salt and info.
    okm = hkdf_sha256(
        ikm,
        bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"),
        42,
        salt=bytes.fromhex("000102030405060708090a0b0c"),
    )
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


@pytest.mark.parametrize("purpose", sorted(PINNED_KEYS))
def test_derive_key_is_hkdf_sha256_without_salt_info_purpose_32_bytes(purpose: str) -> None:
    derived = derive_key(SECRET, purpose)
    assert derived == hkdf_sha256(SECRET, purpose.encode(), 32)
    assert derived.hex() == PINNED_KEYS[purpose]


def test_derive_key_of_a_longer_secret_uses_all_of_it() -> None:
    secret = bytes(range(64))
    assert derive_key(secret, "ostiary/token-hmac") == hkdf_sha256(
        secret, b"ostiary/token-hmac", 32
    )


def test_a_blob_sealed_on_2026_12_02_still_opens() -> None:
    kek = derive_key(SECRET, "ostiary/signing-key-encryption")
    der = open_sealed(kek, SEALED_2026_12_02, SEALED_KID)
    key = load_private_key(der)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    assert key.private_bytes_raw().hex() == RFC8037_SEED
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert public.hex() == RFC8037_PUBLIC


def test_secret_digest_is_hex_hmac_sha256_of_the_utf8_secret() -> None:
    pepper = derive_key(SECRET, "ostiary/token-hmac")
    value = "ost_rt_pinned-refresh-tokén"  # non-ASCII: the encoding is part of the format
    expected = hmac.new(pepper, value.encode("utf-8"), hashlib.sha256).hexdigest()
    assert secret_digest(pepper, value) == expected
    assert expected == "5f605f633ef7f616b8f92c7840dbee39c285ba92adacd9d379ee7a2a8df074f7"
    assert digest_matches(pepper, value, expected)
    assert not digest_matches(pepper, value + "x", expected)


def test_secret_digest_rfc_4231_test_case_2() -> None:
    # RFC 4231 section 4.3: HMAC-SHA-256 with key "Jefe".
    assert secret_digest(b"Jefe", "what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
