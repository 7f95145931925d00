"""OpenID Connect token helpers.

- OpenID Connect Core 1.0 section 3.1.3.6: ``at_hash`` is the base64url of the left-most
  half of the hash of the ASCII access token, the hash being the one of the ID token's JWS
  ``alg`` (SHA-256 for ES256/RS256). For EdDSA with Ed25519 the OpenID Foundation's errata
  (and every certified implementation) use SHA-512.
- OpenID Connect Core 1.0 section 2 (``acr``): the Authentication Context Class Reference the
  sign-in satisfied, derived here from its methods (``amr``, RFC 8176 section 2). A set of
  methods with no class gets no ``acr`` at all rather than a wrong one.
- Classes (README, "Authentication classes"), weakest first:

  - ``urn:ostiary:acr:password``: one knowledge factor (amr ``pwd``);
  - ``urn:ostiary:acr:mfa``: the password and a one-time code from an authenticator app or a
    recovery code (amr ``pwd otp mfa``; ``mfa`` since two factors were used);
  - ``phr`` (OpenID Extended Authentication Profile (EAP) ACR Values 1.0, "phishing
    resistant"): a passkey (WebAuthn), which answers only the origin it was made for, with
    the user verified by the authenticator or by the password before it (amr ``swk``, a key
    that may be synced, and ``mfa``);
  - ``phrh`` (EAP, "phishing-resistant hardware-protected"): a device-bound passkey, whose
    authenticator says the key cannot be backed up or synced (the WebAuthn backup-eligible
    flag is clear; amr ``hwk`` and ``mfa``). Without attestation, that is the authenticator's
    own statement.

  A stronger class includes the weaker ones: a passkey meets a request for
  ``urn:ostiary:acr:mfa``. When ``acr`` is requested with values (``acr_values``, OIDC Core
  3.1.2.1, or an essential claim, 5.5.1.1), the token carries the strongest requested value
  the sign-in meets (:func:`acr_answer`), never an unrequested one; when it meets none, the
  class achieved (a voluntary request is not an error).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from ostiary.protocol.signed_fields import b64url_encode

__all__ = [
    "ACR_MFA",
    "ACR_ONE_FACTOR",
    "ACR_PHISHING_RESISTANT",
    "ACR_PHISHING_RESISTANT_HARDWARE",
    "ACR_VALUES_SUPPORTED",
    "acr_answer",
    "acr_for",
    "acr_meets",
    "left_half_hash",
]

# One factor, a knowledge factor: the password form (amr "pwd").
ACR_ONE_FACTOR = "urn:ostiary:acr:password"
# Two factors: the password and a one-time code (TOTP, RFC 6238, or a recovery code).
ACR_MFA = "urn:ostiary:acr:mfa"
# A passkey (OpenID EAP ACR values): phishing-resistant; hardware-protected when device-bound.
ACR_PHISHING_RESISTANT = "phr"
ACR_PHISHING_RESISTANT_HARDWARE = "phrh"
# Weakest first: the rank of a class is its index.
ACR_VALUES_SUPPORTED: tuple[str, ...] = (
    ACR_ONE_FACTOR,
    ACR_MFA,
    ACR_PHISHING_RESISTANT,
    ACR_PHISHING_RESISTANT_HARDWARE,
)
_RANK = {acr: rank for rank, acr in enumerate(ACR_VALUES_SUPPORTED)}


def left_half_hash(value: str, alg: str) -> str:
    digest = (hashlib.sha512 if alg == "EdDSA" else hashlib.sha256)(value.encode("ascii")).digest()
    return b64url_encode(digest[: len(digest) // 2])


def acr_for(amr: Iterable[str]) -> str | None:
    """The ``acr`` of a sign-in by its ``amr`` methods, or None when no class describes them."""
    methods = frozenset(amr)
    if "mfa" in methods:
        if "hwk" in methods:
            return ACR_PHISHING_RESISTANT_HARDWARE
        if "swk" in methods:
            return ACR_PHISHING_RESISTANT
        if methods == {"pwd", "otp", "mfa"}:
            return ACR_MFA
        return None
    return ACR_ONE_FACTOR if methods == {"pwd"} else None


def acr_meets(achieved: str | None, wanted: str) -> bool:
    """Whether a sign-in of class ``achieved`` satisfies a request for class ``wanted``."""
    if achieved is None or wanted not in _RANK:
        return False
    return _RANK[achieved] >= _RANK[wanted]


def acr_answer(amr: Iterable[str], requested: Sequence[str] = ()) -> str | None:
    """The ``acr`` claim for a sign-in with these methods, given the values a client asked for.

    The strongest requested value the sign-in meets; when it meets none (or none was asked
    for), the class it achieved.
    """
    achieved = acr_for(amr)
    met = [value for value in requested if acr_meets(achieved, value)]
    return max(met, key=_RANK.__getitem__) if met else achieved
