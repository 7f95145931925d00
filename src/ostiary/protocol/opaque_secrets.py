"""Opaque secrets: generation with a readable prefix, storage as a keyed digest.

- RFC 6749 section 10.10: credentials must be unguessable (>= 128 bits; we use 256).
- RFC 9700 section 4.14: refresh tokens and other bearer secrets are stored so that a
  database leak does not reveal usable values; we keep HMAC-SHA256 under a server pepper,
  which is fast to check (machine secrets are high-entropy, so a slow hash adds nothing).
- Comparisons are constant-time (``hmac.compare_digest``), OWASP ASVS V2.9.
- HMAC (RFC 2104) keyed once per pepper (``hmac.new``) and copied per secret
  (``HMAC.copy``: the key's inner and outer hash states are reused): ``hmac.digest`` looks
  the digest up in OpenSSL 3 and keys both hashes again on every call, 2.2 µs per digest
  against about 1.5 µs here (a verification of an API key takes two). The same value: the
  tests compare both.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["digest_matches", "new_secret", "secret_digest"]


def new_secret(prefix: str = "", nbytes: int = 32) -> str:
    """A fresh URL-safe secret of ``nbytes`` random bytes, prefixed for secret scanners."""
    return prefix + secrets.token_urlsafe(nbytes)


_MAX_PEPPERS = 64
# pepper -> HMAC-SHA256 keyed with it, never updated: each digest works on a copy. A
# deployment has a few peppers (one per purpose); the bound only matters where many runtimes
# come and go (tests).
_states: dict[bytes, hmac.HMAC] = {}


def _keyed(pepper: bytes) -> hmac.HMAC:
    keyed = hmac.new(pepper, digestmod=hashlib.sha256)
    if len(_states) >= _MAX_PEPPERS:
        _states.clear()
    _states[pepper] = keyed
    return keyed


def secret_digest(pepper: bytes, secret: str) -> str:
    """Hex HMAC-SHA256 of ``secret`` (UTF-8) under ``pepper``: what the database stores."""
    mac = (_states.get(pepper) or _keyed(pepper)).copy()
    mac.update(secret.encode("utf-8"))
    return mac.hexdigest()


def digest_matches(pepper: bytes, secret: str, stored_digest: str) -> bool:
    """Constant-time check of ``secret`` against a stored digest."""
    return hmac.compare_digest(secret_digest(pepper, secret).encode(), stored_digest.encode())
