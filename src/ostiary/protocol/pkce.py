"""Proof Key for Code Exchange (RFC 7636), S256 only.

- Section 4.1: ``code_verifier`` = 43..128 characters of ``[A-Z] / [a-z] / [0-9] / "-" / "." /
  "_" / "~"``.
- Section 4.2: ``code_challenge = BASE64URL(SHA256(ASCII(code_verifier)))`` for S256.
- Section 4.3 / OAuth 2.1 section 4.1.1 / RFC 9700 section 2.1.1: ``plain`` is refused. Public
  clients must send a challenge. A confidential client's ``PkceMode`` says whether it may go
  without: ``required`` never; ``nonce`` when the request is an OpenID Connect one with a
  ``nonce``, which RFC 9700 section 2.1.1 accepts against code injection for confidential
  OpenID Connect clients (OpenID Connect Core 1.0 section 3.1.2.1 does not require PKCE);
  ``optional`` always (plain RFC 6749 behaviour for legacy clients; weaker: nothing binds the
  code to the client's session).
- Section 4.6: the server recomputes the challenge and compares (constant time here).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Literal

from ostiary.protocol.signed_fields import b64url_encode

__all__ = [
    "PKCE_MODES",
    "PkceMode",
    "is_valid_challenge",
    "is_valid_verifier",
    "omission_refused",
    "s256_challenge",
    "verify_s256",
]

PkceMode = Literal["required", "nonce", "optional"]
PKCE_MODES: tuple[PkceMode, ...] = ("required", "nonce", "optional")

_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
# A S256 challenge is the unpadded base64url of 32 bytes: exactly 43 characters.
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")


def is_valid_verifier(verifier: str) -> bool:
    return bool(_VERIFIER.fullmatch(verifier))


def is_valid_challenge(challenge: str) -> bool:
    return bool(_CHALLENGE.fullmatch(challenge))


def s256_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return b64url_encode(digest)


def verify_s256(verifier: str, challenge: str) -> bool:
    """True if ``verifier`` is well-formed and hashes to ``challenge``."""
    if not is_valid_verifier(verifier):
        return False
    return hmac.compare_digest(s256_challenge(verifier).encode(), challenge.encode())


def omission_refused(mode: PkceMode, *, openid: bool, nonce: bool) -> str | None:
    """Why a request without ``code_challenge`` is refused under ``mode``, or None if allowed.

    ``mode`` is the client's effective mode (``required`` for every public client).
    """
    if mode == "optional" or (mode == "nonce" and openid and nonce):
        return None
    if mode == "nonce":
        return (
            "PKCE or a nonce is required: send code_challenge (S256), or scope openid with a nonce."
        )
    return "PKCE is required: send code_challenge (S256)."
