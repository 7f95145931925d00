"""The OpenAPI declaration of a form request body (``application/x-www-form-urlencoded``).

The HTML-form and OAuth-form endpoints take the raw ``Request`` and read the form themselves
(``read_form``, ``read_oauth_form``: repeated parameters refused, RFC 6749 section 3.2), so
FastAPI cannot derive their body from the signature. Each declares it with
``openapi_extra=form_body(...)``: a Request Body Object (OpenAPI 3.1 section 4.8.13) whose
schema lists the form's fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["form_body"]

_FORM = "application/x-www-form-urlencoded"


def form_body(
    *required: str,
    optional: Iterable[str] = (),
    schemas: Mapping[str, Mapping[str, Any]] | None = None,
    body_required: bool = True,
) -> dict[str, Any]:
    """``openapi_extra`` for a form body with the fields ``required`` (in that order), then
    ``optional``.

    Each field is a string; ``schemas`` adds keywords to a field's schema or replaces its type
    (``{"enum": [...]}``, ``{"format": "password"}``, ``{"type": "array", "items": ...}``).
    With no fields the schema is a bare object. ``body_required=False`` for an endpoint that
    takes its parameters from the query string as well (GET and POST alike)."""
    extra = schemas or {}
    names = (*required, *optional)
    if unknown := sorted(set(extra) - set(names)):
        raise ValueError(f"schemas for fields the form does not have: {unknown}")
    schema: dict[str, Any] = {"type": "object"}
    if names:
        schema["properties"] = {name: {"type": "string", **extra.get(name, {})} for name in names}
    if required:
        schema["required"] = list(required)
    body: dict[str, Any] = {"content": {_FORM: {"schema": schema}}}
    if body_required:
        body = {"required": True, **body}
    return {"requestBody": body}
