"""Redaction of personal data and secrets before anything reaches a log or an audit event.

- OWASP ASVS 4.0 V7.1.1 / V7.1.2: logs hold no credentials, session tokens or sensitive
  personal data; GDPR Art. 5(1)(c) data minimisation, so e-mail addresses are masked.
"""

from __future__ import annotations

import re
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
)
_EMAIL = re.compile(r"([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*@([A-Za-z0-9.\-]+\.[A-Za-z]{2,})")


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
    return _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)


def redact(value: Any, *, _depth: int = 0) -> Any:
    """Return ``value`` with secret-named fields replaced and e-mail addresses masked."""
    if _depth > 8:
        return REDACTED
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
