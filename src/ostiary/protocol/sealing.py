"""Encryption of private keys at rest.

- RFC 5869 (HKDF) derives a 256-bit key-encryption key from the deployment's secret key, with a
  distinct ``info`` per purpose, so one secret never serves two uses.
- NIST SP 800-38D (GCM) via ``cryptography``'s AESGCM: 96-bit random nonce, 128-bit tag. The
  associated data binds a ciphertext to its row (the key id), so ciphertexts cannot be swapped
  between rows undetected.

Layout of a sealed blob: ``version (1 byte) || nonce (12 bytes) || ciphertext+tag``.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["SealError", "derive_key", "open_sealed", "seal"]

_VERSION = b"\x01"
_NONCE_LEN = 12


class SealError(ValueError):
    """A sealed blob is malformed, or was sealed under another key or for another row."""


def derive_key(secret: bytes, purpose: str) -> bytes:
    """HKDF-SHA256 (RFC 5869 section 2) of ``secret`` for one named ``purpose``."""
    if len(secret) < 32:
        raise ValueError("the secret key must be at least 32 bytes")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
    return hkdf.derive(secret)


def seal(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """AES-256-GCM encrypt ``plaintext`` bound to ``associated_data``."""
    nonce = os.urandom(_NONCE_LEN)
    return _VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)


def open_sealed(key: bytes, blob: bytes, associated_data: bytes) -> bytes:
    """Decrypt a blob made by :func:`seal`; raise :class:`SealError` if it does not verify."""
    if len(blob) < 1 + _NONCE_LEN + 16 or blob[:1] != _VERSION:
        raise SealError("unknown or truncated sealed blob")
    nonce, ciphertext = blob[1 : 1 + _NONCE_LEN], blob[1 + _NONCE_LEN :]
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, associated_data)
    except InvalidTag as exc:
        raise SealError("sealed blob does not verify under this key") from exc
