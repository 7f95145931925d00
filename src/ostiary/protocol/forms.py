"""Parsing of ``application/x-www-form-urlencoded`` request bodies.

- WHATWG URL Standard section 5.1 (application/x-www-form-urlencoded parsing).
- RFC 6749 section 3.1 and 3.2: "Request and response parameters MUST NOT be included more
  than once", so a repeated parameter is an error, not "last one wins".
"""

from __future__ import annotations

from urllib.parse import parse_qsl

__all__ = ["MAX_FORM_BYTES", "FormError", "parse_form"]

MAX_FORM_BYTES = 64 * 1024
_MAX_FIELDS = 64


class FormError(ValueError):
    """The body is not a well-formed form this server accepts; the message says why."""


def parse_form(body: bytes, *, max_fields: int = _MAX_FIELDS) -> dict[str, str]:
    """Return the form's fields, refusing repeated names, bad UTF-8, NUL bytes and floods."""
    if len(body) > MAX_FORM_BYTES:
        raise FormError("request body too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormError("request body is not valid UTF-8") from exc
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            max_num_fields=max_fields,
            encoding="utf-8",
            errors="strict",
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormError("malformed form body or too many fields") from exc
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise FormError(f"parameter {name!r} is repeated")
        if "\x00" in name or "\x00" in value:
            raise FormError("NUL byte in form field")
        fields[name] = value
    return fields
