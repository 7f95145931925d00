"""The keys the composition root derives from ``OSTIARY_SECRET_KEY`` (web/runtime.py), pinned:
what a deployment sealed and hashed before an upgrade must still open and match after it."""

from __future__ import annotations

from pathlib import Path

from ostiary.config import Settings
from ostiary.protocol.sealing import open_sealed
from ostiary.web.runtime import Runtime
from tests.protocol.test_pinned_derivations import (
    PINNED_KEYS,
    SEALED_2026_12_02,
    SEALED_KID,
    SECRET,
    hkdf_sha256,
)

SECRET_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"  # base64url of SECRET, unpadded


async def test_runtime_keys_are_the_pinned_derivations_of_the_secret_key(tmp_path: Path) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path,
        secret_key=SECRET_KEY,
        issuer="http://testserver",
    )
    assert settings.secret_key_bytes() == SECRET
    rt = Runtime(settings)
    try:
        derived = {
            "ostiary/session-token": rt.session_pepper,
            "ostiary/csrf": rt.csrf_key,
            "ostiary/signing-key-encryption": rt.kek,
            "ostiary/token-hmac": rt.token_pepper,
        }
        for purpose, key in derived.items():
            assert key == hkdf_sha256(SECRET, purpose.encode(), 32), purpose
            assert key.hex() == PINNED_KEYS[purpose], purpose
        assert open_sealed(rt.kek, SEALED_2026_12_02, SEALED_KID)
    finally:
        await rt.close()
