"""Opaque secrets: generation with a readable prefix, storage as a keyed digest.

- RFC 6749 section 10.10: credentials must be unguessable (>= 128 bits; we use 256).
- RFC 9700 section 4.14: refresh tokens and other bearer secrets are stored so that a
  database leak does not reveal usable values; we keep HMAC-SHA256 under a server pepper,
  which is fast to check (machine secrets are high-entropy, so a slow hash adds nothing).
- Comparisons are constant-time (``hmac.compare_digest``), OWASP ASVS V2.9.
"""

from __future__ import annotations

import hmac
import secrets

__all__ = ["digest_matches", "new_secret", "secret_digest"]


def new_secret(prefix: str = "", nbytes: int = 32) -> str:
    """A fresh URL-safe secret of ``nbytes`` random bytes, prefixed for secret scanners."""
    return prefix + secrets.token_urlsafe(nbytes)


def secret_digest(pepper: bytes, secret: str) -> str:
    """Hex HMAC-SHA256 of ``secret`` under ``pepper``: what the database stores (``hmac.digest``:
    OpenSSL's one-shot HMAC, the same value as ``hmac.new(...).hexdigest()`` at a fraction of
    the cost, on every hot path that checks a secret)."""
    return hmac.digest(pepper, secret.encode("utf-8"), "sha256").hex()


def digest_matches(pepper: bytes, secret: str, stored_digest: str) -> bool:
    """Constant-time check of ``secret`` against a stored digest."""
    return hmac.compare_digest(secret_digest(pepper, secret).encode(), stored_digest.encode())
