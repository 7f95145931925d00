"""Parsing of ``application/x-www-form-urlencoded`` request bodies.

- WHATWG URL Standard section 5.1 (application/x-www-form-urlencoded parsing).
- RFC 6749 section 3.1 and 3.2: "Request and response parameters MUST NOT be included more
  than once", so a repeated parameter is an error, not "last one wins".
- RFC 8707 section 2: ``resource`` may be given several times. A caller names the parameters
  that may repeat (``repeatable``); the mapping holds the first value of each, and
  :meth:`Form.values_of` all of them, in order.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote

__all__ = ["MAX_FORM_BYTES", "Form", "FormError", "form_values", "parse_form"]

MAX_FORM_BYTES = 64 * 1024
_MAX_FIELDS = 64


class FormError(ValueError):
    """The body is not a well-formed form this server accepts; the message says why."""


class Form(dict[str, str]):
    """The fields of a form, one value per name (the first), plus every value of the names
    allowed to repeat."""

    __slots__ = ("_repeated",)

    def __init__(self) -> None:
        super().__init__()
        self._repeated: dict[str, list[str]] | None = None  # rare: built on the first repeat

    def values_of(self, name: str) -> tuple[str, ...]:
        """Every value given for ``name``, in order (one at most unless it may repeat)."""
        repeated = self._repeated.get(name) if self._repeated is not None else None
        if repeated is not None:
            return tuple(repeated)
        return (self[name],) if name in self else ()

    def _add_repeat(self, name: str, value: str) -> None:
        if self._repeated is None:
            self._repeated = {}
        self._repeated.setdefault(name, [self[name]]).append(value)


def form_values(form: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Every value of ``name`` in ``form`` (a :class:`Form`, or any mapping of single values)."""
    if isinstance(form, Form):
        return form.values_of(name)
    return (form[name],) if name in form else ()


def _decoded(part: str) -> str:
    """One name or value as ``parse_qsl`` decodes it: ``+`` is a space, then percent-decoding
    as UTF-8 (strict: bad UTF-8 raises ``UnicodeDecodeError``)."""
    if "%" in part or "+" in part:
        return unquote(part.replace("+", " "), encoding="utf-8", errors="strict")
    return part


def _pairs(text: str) -> list[tuple[str, str]]:
    """``parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")``, with
    the field count checked by the caller, decoding only the parts that need it (the token
    endpoint's forms: ``scope=models%3Aread`` decodes one value, not every name and value;
    tests/protocol/test_forms_properties.py checks the two agree)."""
    pairs: list[tuple[str, str]] = []
    for field in text.split("&"):
        if field:
            name, _, value = field.partition("=")
            pairs.append((_decoded(name), _decoded(value)))
    return pairs


def parse_form(
    body: bytes, *, max_fields: int = _MAX_FIELDS, repeatable: frozenset[str] = frozenset()
) -> Form:
    """Return the form's fields, refusing repeated names (but those in ``repeatable``), bad
    UTF-8, NUL bytes and floods."""
    if len(body) > MAX_FORM_BYTES:
        raise FormError("request body too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormError("request body is not valid UTF-8") from exc
    if text.count("&") >= max_fields:
        raise FormError("malformed form body or too many fields")
    try:
        pairs = _pairs(text)
    except UnicodeDecodeError as exc:
        raise FormError("malformed form body or too many fields") from exc
    fields = Form()
    for name, value in pairs:
        if "\x00" in name or "\x00" in value:
            raise FormError("NUL byte in form field")
        if name in fields:
            if name not in repeatable:
                raise FormError(f"parameter {name!r} is repeated")
            fields._add_repeat(name, value)
            continue
        fields[name] = value
    return fields
