"""OpenID Connect token helpers.

- OpenID Connect Core 1.0 section 3.1.3.6: ``at_hash`` is the base64url of the left-most
  half of the hash of the ASCII access token, the hash being the one of the ID token's JWS
  ``alg`` (SHA-256 for ES256/RS256). For EdDSA with Ed25519 the OpenID Foundation's errata
  (and every certified implementation) use SHA-512.
- OpenID Connect Core 1.0 section 2 (``acr``): the Authentication Context Class Reference the
  sign-in satisfied, derived here from its methods (``amr``, RFC 8176 section 2). A requested
  ``acr_values`` (section 3.1.2.1) is a voluntary claim request: the token carries the class
  that was achieved, whatever was asked for. Only classes a sign-in can reach today are
  advertised (``ACR_VALUES_SUPPORTED``); a set of methods with no class gets no ``acr`` at all
  rather than a wrong one.
- Classes (README, "Authentication classes"): ``urn:ostiary:acr:password`` is one knowledge
  factor (amr ``pwd``); ``urn:ostiary:acr:mfa`` is the password and a one-time code from an
  authenticator app or a recovery code (amr ``pwd otp mfa``, RFC 8176 section 2: ``mfa`` since
  two factors were used).
"""

from __future__ import annotations

import base64
import hashlib

__all__ = ["ACR_MFA", "ACR_ONE_FACTOR", "ACR_VALUES_SUPPORTED", "acr_for", "left_half_hash"]

# One factor, a knowledge factor: the password form (amr "pwd").
ACR_ONE_FACTOR = "urn:ostiary:acr:password"
# Two factors: the password and a one-time code (TOTP, RFC 6238, or a recovery code).
ACR_MFA = "urn:ostiary:acr:mfa"
ACR_VALUES_SUPPORTED: tuple[str, ...] = (ACR_ONE_FACTOR, ACR_MFA)
_CLASSES: dict[frozenset[str], str] = {
    frozenset({"pwd"}): ACR_ONE_FACTOR,
    frozenset({"pwd", "otp", "mfa"}): ACR_MFA,
}


def left_half_hash(value: str, alg: str) -> str:
    digest = (hashlib.sha512 if alg == "EdDSA" else hashlib.sha256)(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def acr_for(amr: list[str] | tuple[str, ...]) -> str | None:
    """The ``acr`` of a sign-in by its ``amr`` methods, or None when no class describes them."""
    return _CLASSES.get(frozenset(amr))
