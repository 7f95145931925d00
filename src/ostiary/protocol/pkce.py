"""Proof Key for Code Exchange (RFC 7636), S256 only.

- Section 4.1: ``code_verifier`` = 43..128 characters of ``[A-Z] / [a-z] / [0-9] / "-" / "." /
  "_" / "~"``.
- Section 4.2: ``code_challenge = BASE64URL(SHA256(ASCII(code_verifier)))`` for S256.
- Section 4.3 / OAuth 2.1 section 4.1.1 / RFC 9700 section 2.1.1: ``plain`` is refused; every
  client, confidential or public, must send a challenge.
- Section 4.6: the server recomputes the challenge and compares (constant time here).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

__all__ = ["is_valid_challenge", "is_valid_verifier", "s256_challenge", "verify_s256"]

_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
# A S256 challenge is the unpadded base64url of 32 bytes: exactly 43 characters.
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")


def is_valid_verifier(verifier: str) -> bool:
    return bool(_VERIFIER.fullmatch(verifier))


def is_valid_challenge(challenge: str) -> bool:
    return bool(_CHALLENGE.fullmatch(challenge))


def s256_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verify_s256(verifier: str, challenge: str) -> bool:
    """True if ``verifier`` is well-formed and hashes to ``challenge``."""
    if not is_valid_verifier(verifier):
        return False
    return hmac.compare_digest(s256_challenge(verifier).encode(), challenge.encode())
