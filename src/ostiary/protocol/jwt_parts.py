"""Reading the parts of a JWT that nobody has verified yet, with limits.

- RFC 7515 section 7.1 / RFC 7519 section 7.2: a compact JWT is three base64url segments;
  the first two are UTF-8 JSON objects (the JOSE header and the claims set).
- RFC 8725 section 3.12 ("Use ... limits on ... JSON"): an untrusted segment is parsed with
  a size limit and a nesting limit. Python's ``json`` module answers deep nesting with
  ``RecursionError`` (not a ``ValueError``), and accepts ``NaN`` and ``Infinity``; orjson
  refuses both, and the depth is bounded again here far below the recursion limit, so that
  a later parse by another library (joserfc uses ``json``) cannot recurse deeply either.
- RFC 7519 section 2 (NumericDate): a JSON number of seconds since the epoch. A number that
  is not finite, a boolean (an ``int`` in Python), or a value that ``datetime`` cannot hold
  is not a NumericDate here.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

import orjson

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_NUMERIC_DATE",
    "decode_json_segment",
    "numeric_date",
    "parse_json_object",
]

# Claims and headers of the JWTs we accept are flat objects with a few arrays (aud, amr) and
# the odd small object (cnf, act): 16 levels is generous.
MAX_JSON_DEPTH = 16
# 9999-12-31T23:59:59Z: the last second datetime can represent.
MAX_NUMERIC_DATE = 253_402_300_799


def _depth_within(value: Any, limit: int) -> bool:
    """True if ``value`` nests no deeper than ``limit`` (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


def decode_json_segment(
    segment: str, *, max_length: int = 8192, max_depth: int = MAX_JSON_DEPTH
) -> dict[str, Any]:
    """The JSON object in one base64url segment; ``ValueError`` for anything else (too long,
    not base64url, not UTF-8 JSON, not an object, nested deeper than ``max_depth``)."""
    if len(segment) > max_length:
        raise ValueError("segment too long")
    if not segment.isascii():
        raise ValueError("segment is not base64url")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("segment is not base64url") from exc
    return parse_json_object(raw, max_depth=max_depth)


def parse_json_object(raw: bytes, *, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """The JSON object in ``raw`` (UTF-8); ``ValueError`` if it is not one, is not valid JSON
    (NaN and Infinity included), or nests deeper than ``max_depth``. The caller bounds the
    size of ``raw``."""
    try:
        data = orjson.loads(raw)  # JSONDecodeError (a ValueError) past 1024 levels too
    except ValueError as exc:
        raise ValueError("not JSON") from exc
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if not _depth_within(data, max_depth):
        raise ValueError("JSON nests too deeply")
    return data


def numeric_date(value: object) -> float | None:
    """``value`` as seconds since the epoch if it is a usable NumericDate, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    # Range first: math.isfinite(10**400) is an OverflowError, and json parses such integers.
    if not 0 <= value <= MAX_NUMERIC_DATE or not math.isfinite(value):
        return None
    return float(value)
