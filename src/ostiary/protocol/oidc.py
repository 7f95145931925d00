"""OpenID Connect token helpers.

- OpenID Connect Core 1.0 section 3.1.3.6: ``at_hash`` is the base64url of the left-most
  half of the hash of the ASCII access token, the hash being the one of the ID token's JWS
  ``alg`` (SHA-256 for ES256/RS256). For EdDSA with Ed25519 the OpenID Foundation's errata
  (and every certified implementation) use SHA-512.
"""

from __future__ import annotations

import base64
import hashlib

__all__ = ["left_half_hash"]


def left_half_hash(value: str, alg: str) -> str:
    digest = (hashlib.sha512 if alg == "EdDSA" else hashlib.sha256)(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")
