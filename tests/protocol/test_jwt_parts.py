"""Properties of the limited JWT segment reader and of NumericDate (RFC 7519 sections 2 and
7.2, RFC 8725 section 3.12)."""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, datetime
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from ostiary.protocol.jwt_parts import (
    MAX_JSON_DEPTH,
    MAX_NUMERIC_DATE,
    decode_json_segment,
    numeric_date,
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=30,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=6)

# Text shaped like JSON, so that brackets, quotes and number edge cases come up often.
_json_tokens = st.sampled_from(
    ["[", "]", "{", "}", '"', ":", ",", "1e400", "-1e400", "NaN", "Infinity", "true", "null"]
)
json_like = st.lists(st.one_of(_json_tokens, st.text(max_size=4)), max_size=60).map("".join)


@settings(max_examples=400, deadline=None)  # the machine may be loaded; no timing here
@given(st.one_of(st.text(max_size=200), json_like.map(lambda t: _b64(t.encode()))))
@example(_b64(b"[" * 40000))
@example(_b64(b"{" + b'"a":' * 5000))
@example(_b64(b'{"exp":NaN}'))
@example(_b64(b'{"exp":1e400}'))
@example(_b64(b"\xff\xfe"))
@example("é")
def test_any_input_is_an_object_or_a_value_error(segment: str) -> None:
    """Never another exception (RecursionError, UnicodeError, OverflowError: a 500)."""
    try:
        result = decode_json_segment(segment, max_length=100_000)
    except ValueError:
        return
    assert isinstance(result, dict)
    assert _depth(result) <= MAX_JSON_DEPTH


@settings(max_examples=200, deadline=None)
@given(json_objects)
def test_objects_within_the_limits_round_trip(value: dict[str, Any]) -> None:
    encoded = _b64(json.dumps(value).encode())
    assert decode_json_segment(encoded, max_length=len(encoded)) == value


@settings(deadline=None)
@given(st.integers(1, 200), st.booleans())
def test_nesting_is_refused_exactly_past_the_limit(depth: int, arrays: bool) -> None:
    inner: Any = 1
    for _ in range(depth - 1):
        inner = [inner] if arrays else {"a": inner}
    value = {"x": inner}  # the outer object is one level
    assert _depth(value) == depth
    segment = _b64(json.dumps(value).encode())
    if depth <= MAX_JSON_DEPTH:
        assert decode_json_segment(segment) == value
        return
    try:
        decode_json_segment(segment)
    except ValueError:
        return
    raise AssertionError(f"depth {depth} accepted")


def test_segment_length_is_limited_before_decoding() -> None:
    segment = _b64(b'{"a":"' + b"x" * 100 + b'"}')
    assert decode_json_segment(segment, max_length=len(segment))["a"] == "x" * 100
    try:
        decode_json_segment(segment, max_length=len(segment) - 1)
    except ValueError:
        return
    raise AssertionError("a segment over the limit was decoded")


@settings(deadline=None)
@given(
    st.one_of(
        json_values,
        st.floats(),
        st.integers(),
        st.sampled_from([math.inf, -math.inf, math.nan, True, False, 1e20, -1.0, 10**400]),
    )
)
def test_numeric_date_is_none_or_a_datetime_that_fits(value: Any) -> None:
    result = numeric_date(value)
    if result is None:
        # Refused: not a number, a boolean, not finite, or out of datetime's range.
        assert (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 <= value <= MAX_NUMERIC_DATE
            or not math.isfinite(value)
        )
        return
    assert result == value
    assert datetime.fromtimestamp(result, UTC).year <= 9999  # never OverflowError


def test_numeric_date_examples() -> None:
    assert numeric_date(1_700_000_000) == 1_700_000_000.0
    assert numeric_date(1_700_000_000.5) == 1_700_000_000.5
    assert numeric_date(MAX_NUMERIC_DATE) == float(MAX_NUMERIC_DATE)
    refused = (True, None, "1700000000", 1e20, -1, math.nan, math.inf, [1], MAX_NUMERIC_DATE + 1)
    for value in refused:
        assert numeric_date(value) is None, value
