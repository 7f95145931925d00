"""Redaction of personal data and secrets before anything reaches a log or an audit event.

- OWASP ASVS 4.0 V7.1.1 / V7.1.2: logs hold no credentials, session tokens or sensitive
  personal data; GDPR Art. 5(1)(c) data minimisation, so e-mail addresses are masked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "is_secret_field", "mask_email", "redact"]

REDACTED = "[redacted]"
_SECRET_WORDS = (
    "password",
    "passwd",
    "secret",
    "token",
    "cookie",
    "authorization",
    "session_id",
    "csrf",
    "code_verifier",
    "private",
    "otp",
    "recovery",
    "assertion",
    "api_key",
    "apikey",
    "pwd",
    "passphrase",
    "credential",
)
# Characters that end an address in free text (RFC 5322 section 3.4.1 atext is broad, and
# RFC 6531 allows any UTF-8 letter, so we stop at what cannot be in an unquoted address).
_STOP = frozenset(' \t\r\n\x0b\x0c<>()[],;:"\\@\x00')
_LOCAL_MAX = 64  # RFC 5321 section 4.5.3.1.1
_DOMAIN_MAX = 255  # RFC 5321 section 4.5.3.1.2


def mask_email(email: str) -> str:
    """``alice@example.com`` -> ``a***@example.com``; anything without an ``@`` is masked whole."""
    local, sep, domain = email.partition("@")
    if not sep or not local:
        return "***"
    return f"{local[0]}***@{domain}"


def is_secret_field(name: str) -> bool:
    """True when a field of this name may carry a credential."""
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _mask_text(text: str) -> str:
    """Mask every ``local@domain`` in ``text``; linear time (each ``@`` scans a bounded span)."""
    if "@" not in text:
        return text
    out: list[str] = []
    cursor = 0
    at = text.find("@")
    while at != -1:
        start = at
        while start > cursor and at - start < _LOCAL_MAX and text[start - 1] not in _STOP:
            start -= 1
        end = at + 1
        while end < len(text) and end - at <= _DOMAIN_MAX and text[end] not in _STOP:
            end += 1
        if start < at and "." in text[at + 1 : end].strip("."):
            out.append(text[cursor:start])
            out.append(f"{text[start]}***@{text[at + 1 : end]}")
            cursor = end
        at = text.find("@", max(at + 1, cursor))
    out.append(text[cursor:])
    return "".join(out)


def redact(value: Any, *, _depth: int = 0) -> Any:
    """Return ``value`` with secret-named fields replaced and e-mail addresses masked."""
    if _depth > 8:
        return REDACTED
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    elif hasattr(value, "model_dump") and callable(value.model_dump):
        value = value.model_dump()
    if isinstance(value, Mapping):
        return {
            str(k): (REDACTED if is_secret_field(str(k)) else redact(v, _depth=_depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v, _depth=_depth + 1) for v in value]
    if isinstance(value, str):
        return _mask_text(value)
    return value
