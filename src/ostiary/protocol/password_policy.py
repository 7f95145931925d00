"""Password strength rules.

- NIST SP 800-63B section 5.1.1.2: at least 8 characters (we require 12, OWASP ASVS 4.0
  V2.1.1), at least 64 allowed, all printable Unicode and spaces accepted, no composition
  rules; candidate passwords are checked against commonly used and compromised values,
  for which we use the zxcvbn estimator (score >= 3, "safely unguessable").
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["MAX_PASSWORD_LENGTH", "MIN_PASSWORD_LENGTH", "password_weakness"]

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256
_MIN_SCORE = 3
# zxcvbn's matching is super-linear in the input length; the prefix decides the score.
_ESTIMATOR_PREFIX = 100


def password_weakness(password: str, user_inputs: Sequence[str] = ()) -> str | None:
    """Why ``password`` is refused, or ``None`` if it is acceptable."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters."
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"Use at most {MAX_PASSWORD_LENGTH} characters."
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in password):
        return "Control characters are not allowed."
    # Imported on first use: its dictionaries take tens of MB, and most workers only verify.
    from zxcvbn import zxcvbn

    result = zxcvbn(password[:_ESTIMATOR_PREFIX], user_inputs=[s for s in user_inputs if s])
    if int(result["score"]) >= _MIN_SCORE:
        return None
    feedback = result.get("feedback") or {}
    warning = str(feedback.get("warning") or "").strip()
    suggestions = [str(s) for s in feedback.get("suggestions") or []]
    reason = warning or (suggestions[0] if suggestions else "")
    return f"This password is too easy to guess. {reason}".strip()
