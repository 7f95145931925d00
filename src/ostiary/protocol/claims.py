"""Standard claims of a user and the ``claims`` request parameter (OpenID Connect Core 1.0).

- Section 5.1: the standard claims and their formats; section 5.1.1: the ``address`` claim
  (a JSON object of ``formatted``, ``street_address``, ``locality``, ``region``,
  ``postal_code``, ``country``). ``birthdate`` is ISO 8601 ``YYYY-MM-DD`` or ``YYYY`` (year
  only); ``zoneinfo`` a tz database name; ``locale`` a BCP47 language tag (RFC 5646; the
  common ``ll-CC`` shape is checked, not the registry); ``phone_number`` "RECOMMENDED" E.164
  (``+`` and up to 15 digits, optional ``;ext=``), which is what we accept; ``picture`` and
  ``website`` URLs (http or https only: an RP may render them).
- Section 5.4: the ``profile``, ``email``, ``address`` and ``phone`` scopes request claim
  groups (:data:`ostiary.protocol.scopes.CLAIMS_BY_SCOPE`).
- Section 5.5: ``claims`` is a JSON object whose ``userinfo`` and ``id_token`` members map
  claim names to ``null`` or to an object of ``essential`` (boolean), ``value`` or ``values``
  (an array). Section 5.5.1: claims not understood are ignored; section 5.5.1.1: ``acr``
  requested with ``values``.

Only what a user may edit is validated here; ``name``, ``email`` and ``updated_at`` live on
the user record itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from ostiary.protocol.scopes import CLAIMS_BY_SCOPE

__all__ = [
    "ADDRESS_FIELDS",
    "EDITABLE_CLAIMS",
    "RELEASABLE_CLAIMS",
    "ClaimError",
    "ClaimsRequest",
    "parse_claims_request",
    "validate_claims",
    "validate_name",
]

ADDRESS_FIELDS = ("formatted", "street_address", "locality", "region", "postal_code", "country")
# What a user's record keeps besides name and e-mail (section 5.1): the claims of the
# ``profile``, ``phone`` and ``address`` scopes (section 5.4) but ``name`` and ``updated_at``.
EDITABLE_CLAIMS: tuple[str, ...] = (
    *(c for c in CLAIMS_BY_SCOPE["profile"] if c not in ("name", "updated_at")),
    *CLAIMS_BY_SCOPE["phone"],
    *CLAIMS_BY_SCOPE["address"],
)
# Claims a relying party may ask for about the user (scopes or the claims parameter).
RELEASABLE_CLAIMS = frozenset(c for claims in CLAIMS_BY_SCOPE.values() for c in claims)

_MAX_TEXT = 200
_MAX_URL = 2000
_MAX_ADDRESS_FIELD = 500
_BIRTHDATE = re.compile(r"^(\d{4})(?:-(\d{2})-(\d{2}))?$")
# RFC 5646 shape: language (2-3 letters, or 4-8), then subtags of 1-8 alphanumerics.
_LOCALE = re.compile(r"^[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8}){0,6}$")
_PHONE = re.compile(r"^\+[1-9]\d{1,14}(?:;ext=\d{1,10})?$")
_ZONE = re.compile(r"^[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+){0,3}$")
_CLAIM_NAME = re.compile(r"^[\x21-\x7E]{1,128}$")
_MAX_REQUESTED = 64


class ClaimError(ValueError):
    """``claim`` is the field at fault; ``str(err)`` is a message for the person editing."""

    def __init__(self, claim: str, message: str) -> None:
        super().__init__(message)
        self.claim = claim


def _text(claim: str, value: object, limit: int = _MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise ClaimError(claim, f"{claim} must be text.")
    value = value.strip()
    if len(value) > limit:
        raise ClaimError(claim, f"{claim} is longer than {limit} characters.")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ClaimError(claim, f"{claim} contains control characters.")
    return value


def validate_name(value: object) -> str:
    """The ``name`` claim (section 5.1: full name in displayable form), trimmed."""
    return _text("name", value)


def _url(claim: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
        raise ClaimError(claim, f"{claim} must be an http:// or https:// URL.")
    return value


def _birthdate(value: str) -> str:
    match = _BIRTHDATE.fullmatch(value)
    if match is None:
        raise ClaimError("birthdate", "birthdate must be YYYY-MM-DD or YYYY.")
    year, month, day = match.groups()
    # Section 5.1: a year of 0000 means the year is omitted (then month and day are needed;
    # a leap year stands in for it so that 0000-02-29 is a real date).
    if year == "0000" and month is None:
        raise ClaimError("birthdate", "birthdate must be YYYY-MM-DD or YYYY.")
    try:
        date(2000 if year == "0000" else int(year), int(month or 1), int(day or 1))
    except ValueError as exc:
        raise ClaimError("birthdate", "birthdate is not a real date.") from exc
    return value


def _address_text(claim: str, value: object) -> str:
    """Like ``_text`` but keeps line breaks (section 5.1.1: ``formatted`` and
    ``street_address`` MAY contain newlines, as ``\\n`` or ``\\r\\n``)."""
    if not isinstance(value, str):
        raise ClaimError(claim, f"{claim} must be text.")
    lines = [_text(claim, line, _MAX_ADDRESS_FIELD) for line in value.split("\n")]
    joined = "\n".join(line for line in lines if line)
    if len(joined) > _MAX_ADDRESS_FIELD:
        raise ClaimError(claim, f"{claim} is longer than {_MAX_ADDRESS_FIELD} characters.")
    return joined


def _address(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ClaimError("address", "address must be an object of address fields.")
    unknown = [k for k in value if k not in ADDRESS_FIELDS]
    if unknown:
        raise ClaimError("address", f"Unknown address field: {str(unknown[0])[:40]}.")
    out: dict[str, str] = {}
    for name in ADDRESS_FIELDS:
        raw = value.get(name)
        if raw is None:
            continue
        label = f"address {name}"
        if name in ("formatted", "street_address"):
            text = _address_text(label, raw.replace("\r\n", "\n") if isinstance(raw, str) else raw)
        else:
            text = _text(label, raw, _MAX_ADDRESS_FIELD)
        if text:
            out[name] = text
    return out


def validate_claims(updates: Mapping[str, object], *, time_zones: Container[str]) -> dict[str, Any]:
    """The normalized values of ``updates`` (editable claims only); "" or None clears one.

    Returns the claims to set, with None for the ones to clear. ``time_zones`` is the set of
    known tz database names (the caller reads it; this module does no I/O).
    """
    out: dict[str, Any] = {}
    for claim, raw in updates.items():
        if claim not in EDITABLE_CLAIMS:
            raise ClaimError(claim, f"{claim[:40]} is not an editable claim.")
        if raw is None or raw == "":
            out[claim] = None
            continue
        if claim == "phone_number_verified":
            if not isinstance(raw, bool):
                raise ClaimError(claim, "phone_number_verified must be true or false.")
            out[claim] = raw
            continue
        if claim == "address":
            out[claim] = _address(raw) or None
            continue
        limit = _MAX_URL if claim in ("picture", "website") else _MAX_TEXT
        value = _text(claim, raw, limit)
        if not value:
            out[claim] = None
            continue
        if claim in ("picture", "website"):
            value = _url(claim, value)
        elif claim == "birthdate":
            value = _birthdate(value)
        elif claim == "zoneinfo":
            if not _ZONE.fullmatch(value) or value not in time_zones:
                raise ClaimError(claim, "zoneinfo must be a time zone name such as Europe/Paris.")
        elif claim == "locale":
            if not _LOCALE.fullmatch(value):
                raise ClaimError(claim, "locale must be a language tag such as en-US.")
        elif claim == "phone_number":
            compact = re.sub(r"[ ().\-]", "", value)
            if not _PHONE.fullmatch(compact):
                raise ClaimError(claim, "phone_number must be in E.164 form, such as +14155550123.")
            value = compact
        out[claim] = value
    return out


# -- the claims request parameter (section 5.5) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class ClaimsRequest:
    """The ``claims`` parameter, normalized: per target, claim name -> its request (None or
    a dict of ``essential``/``value``/``values``). Stored as :meth:`to_json`."""

    userinfo: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    id_token: dict[str, dict[str, Any] | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"userinfo": dict(self.userinfo), "id_token": dict(self.id_token)}

    @classmethod
    def from_json(cls, value: object) -> ClaimsRequest | None:
        """What :meth:`to_json` stored (None when nothing was)."""
        if not isinstance(value, dict):
            return None
        return cls(dict(value.get("userinfo") or {}), dict(value.get("id_token") or {}))

    def user_claims(self, target: str) -> tuple[str, ...]:
        """The user's claims requested for ``target`` ("userinfo" or "id_token"), known
        ones only (section 5.5.1: the others are ignored)."""
        members = self.userinfo if target == "userinfo" else self.id_token
        return tuple(name for name in members if name in RELEASABLE_CLAIMS)

    def acr(self) -> dict[str, Any] | None:
        """The ``acr`` request of the ID token (section 5.5.1.1), if any."""
        if "acr" not in self.id_token:
            return None
        return self.id_token["acr"] or {}

    def essential_acr(self) -> tuple[str, ...]:
        """Section 5.5.1.1: the ``acr`` values of an essential request, one of which the
        sign-in must meet (empty when the request is voluntary or names none)."""
        spec = self.acr()
        if not spec or not spec.get("essential"):
            return ()
        return self.acr_values()

    def acr_values(self) -> tuple[str, ...]:
        """The ``acr`` values the request names (``value`` or ``values``), essential or not."""
        spec = self.acr()
        if not spec:
            return ()
        wanted = [spec["value"]] if "value" in spec else list(spec.get("values") or [])
        return tuple(value for value in wanted if isinstance(value, str))

    def essential_acr_unmet(self, achievable: tuple[str, ...]) -> bool:
        """Section 5.5.1.1: an essential ``acr`` with ``value``/``values`` none of which this
        server can achieve; that "MUST" be treated as a failed authentication."""
        spec = self.acr()
        if not spec or not spec.get("essential"):
            return False
        wanted = [spec["value"]] if "value" in spec else list(spec.get("values") or [])
        return bool(wanted) and not any(value in achievable for value in wanted)


def _member(target: str, value: object) -> dict[str, dict[str, Any] | None]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"claims.{target} must be a JSON object.")
    out: dict[str, dict[str, Any] | None] = {}
    for name, spec in value.items():
        if not _CLAIM_NAME.fullmatch(name):
            raise ValueError(f"claims.{target} has a malformed claim name.")
        if spec is None:
            out[name] = None
            continue
        if not isinstance(spec, dict):
            raise ValueError(f"claims.{target}.{name[:40]} must be null or a JSON object.")
        normalized: dict[str, Any] = {}
        if "essential" in spec:
            if not isinstance(spec["essential"], bool):
                raise ValueError(f"claims.{target}.{name[:40]}.essential must be a boolean.")
            normalized["essential"] = spec["essential"]
        if "value" in spec:
            normalized["value"] = spec["value"]
        if "values" in spec:
            if not isinstance(spec["values"], list):
                raise ValueError(f"claims.{target}.{name[:40]}.values must be an array.")
            normalized["values"] = spec["values"]
        out[name] = normalized  # other members: extensions we do not understand (5.5.1)
    return out


def parse_claims_request(raw: str) -> ClaimsRequest:
    """Parse the ``claims`` parameter; ``ValueError`` with a message for ``invalid_request``."""
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError("claims is not valid JSON.") from exc
    if not isinstance(value, dict):
        raise ValueError("claims must be a JSON object.")
    userinfo = _member("userinfo", value.get("userinfo"))
    id_token = _member("id_token", value.get("id_token"))
    if len(userinfo) + len(id_token) > _MAX_REQUESTED:
        raise ValueError("claims asks for too many claims.")
    return ClaimsRequest(userinfo, id_token)
