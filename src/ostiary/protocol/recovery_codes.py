"""Recovery codes: single-use second factors for when the authenticator is lost.

NIST SP 800-63B section 5.1.2 (look-up secrets): at least 64 bits of entropy from an approved
random generator when the verifier does not throttle, and each used once. Ours carry 80 bits
(16 base32 characters, shown as four groups of four: ``abcd-efgh-ijkm-npqr``) and are throttled
besides. They are stored as HMAC-SHA256 under a server pepper (ARCHITECTURE.md: secrets shown
once and stored as HMAC), so the table alone gives nothing to an attacker.

Typing is forgiving: case, spaces and dashes do not matter (``normalize``). The alphabet is
RFC 4648 base32 without padding, lower-cased.

Pure: the random bytes are given by the caller (``secrets.token_bytes``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["CODE_BYTES", "digest", "format_code", "normalize"]

CODE_BYTES = 10  # 80 bits: 16 base32 characters
_LENGTH = 16


def format_code(raw: bytes) -> str:
    if len(raw) != CODE_BYTES:
        raise ValueError(f"a recovery code is made of {CODE_BYTES} random bytes")
    text = base64.b32encode(raw).decode("ascii").lower()
    return "-".join(text[i : i + 4] for i in range(0, _LENGTH, 4))


def normalize(typed: str) -> str | None:
    """The canonical form of what a user typed, or None when it cannot be a recovery code."""
    text = "".join(typed.split()).replace("-", "").lower()
    if len(text) != _LENGTH or not text.isascii():
        return None
    try:
        base64.b32decode(text.upper())
    except ValueError:
        return None
    return text


def digest(pepper: bytes, code: str) -> str:
    """HMAC-SHA256 of the canonical code (hex): what is stored and looked up."""
    canonical = normalize(code)
    if canonical is None:
        raise ValueError("not a recovery code")
    return hmac.new(pepper, b"recovery-code:" + canonical.encode(), hashlib.sha256).hexdigest()
