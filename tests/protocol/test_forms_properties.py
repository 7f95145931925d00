"""Properties of ``parse_form`` (application/x-www-form-urlencoded, RFC 6749 section 3.1)."""

from __future__ import annotations

from urllib.parse import quote, urlencode

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from ostiary.protocol.forms import MAX_FORM_BYTES, FormError, form_values, parse_form

MAX_FIELDS = 64

# Text a browser can put in a field: any code point but NUL and lone surrogates (which
# cannot be encoded as UTF-8, so no client can send them).
field_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
unique_forms = st.dictionaries(field_text, field_text, max_size=MAX_FIELDS)

# Bytes shaped like form bodies, so that the interesting paths (percent escapes, separators,
# '+', invalid UTF-8, NUL) are reached far more often than by uniform random bytes.
_form_tokens = st.one_of(
    st.sampled_from([b"&", b"=", b"+", b"%", b";", b"\x00", b"%00", b"&&", b"=="]),
    st.builds(lambda n: b"%%%02X" % n, st.integers(0, 255)),
    st.builds(lambda n: b"%%%X" % n, st.integers(0, 15)),
    st.binary(max_size=8),
    st.text(max_size=8).map(lambda t: t.encode("utf-8", "surrogatepass")),
)
form_like_bytes = st.lists(_form_tokens, max_size=40).map(b"".join)


def _encode_every_byte(text: str) -> str:
    return "".join(f"%{b:02X}" for b in text.encode())


@settings(max_examples=300)
@given(st.one_of(st.binary(max_size=512), form_like_bytes))
@example(b"\xff")
@example(b"a=%ff")
@example(b"a=%ED%A0%80")  # UTF-8 encoded surrogate
@example(b"%=%")
@example(b"&" * MAX_FIELDS)
@example(b"a=1&A=2")
def test_any_bytes_give_a_dict_of_str_or_a_form_error(body: bytes) -> None:
    try:
        fields = parse_form(body)
    except FormError:
        return
    assert isinstance(fields, dict)
    assert len(fields) <= MAX_FIELDS
    for name, value in fields.items():
        assert isinstance(name, str)
        assert isinstance(value, str)
        assert "\x00" not in name
        assert "\x00" not in value


@given(unique_forms)
def test_urlencoded_dict_with_unique_keys_round_trips(form: dict[str, str]) -> None:
    body = urlencode(form).encode()
    assume(len(body) <= MAX_FORM_BYTES)
    assert parse_form(body) == form


@given(unique_forms)
def test_percent20_and_plus_spellings_parse_alike(form: dict[str, str]) -> None:
    plus = urlencode(form).encode()
    percent = urlencode(form, quote_via=quote).encode()
    assume(max(len(plus), len(percent)) <= MAX_FORM_BYTES)
    assert parse_form(plus) == parse_form(percent) == form


@given(
    unique_forms.filter(bool),
    st.data(),
    field_text,
    st.booleans(),
)
def test_a_repeated_name_is_refused_however_it_is_spelled(
    form: dict[str, str], data: st.DataObject, value: str, spell_differently: bool
) -> None:
    assume(len(form) < MAX_FIELDS)
    name = data.draw(st.sampled_from(sorted(form)))
    spelled = _encode_every_byte(name) if spell_differently else quote(name, safe="")
    body = f"{urlencode(form)}&{spelled}={quote(value, safe='')}".encode()
    assume(len(body) <= MAX_FORM_BYTES)
    with pytest.raises(FormError, match="repeated"):
        parse_form(body)


@given(unique_forms, field_text, st.sampled_from(["name", "value"]))
def test_a_nul_anywhere_is_refused(form: dict[str, str], text: str, where: str) -> None:
    assume(len(form) < MAX_FIELDS)
    poisoned = text[: len(text) // 2] + "\x00" + text[len(text) // 2 :]
    extra = {"\x00" + poisoned: "x"} if where == "name" else {"field-with-nul": poisoned}
    assume(not set(extra) & set(form))
    body = urlencode({**form, **extra}).encode()
    assume(len(body) <= MAX_FORM_BYTES)
    with pytest.raises(FormError, match="NUL"):
        parse_form(body)


@given(st.integers(min_value=MAX_FIELDS + 1, max_value=4 * MAX_FIELDS))
def test_more_than_64_fields_are_refused(count: int) -> None:
    body = "&".join(f"f{i}=v" for i in range(count)).encode()
    with pytest.raises(FormError):
        parse_form(body)


def test_exactly_64_fields_are_accepted() -> None:
    body = "&".join(f"f{i}=v" for i in range(MAX_FIELDS)).encode()
    assert len(parse_form(body)) == MAX_FIELDS


@given(st.integers(min_value=1, max_value=4096))
def test_a_body_over_the_limit_is_refused_before_parsing(excess: int) -> None:
    body = b"a=" + b"b" * (MAX_FORM_BYTES - 2 + excess)
    assert len(body) > MAX_FORM_BYTES
    with pytest.raises(FormError, match="too large"):
        parse_form(body)


def test_a_body_at_the_limit_is_accepted() -> None:
    body = b"a=" + b"b" * (MAX_FORM_BYTES - 2)
    assert parse_form(body) == {"a": "b" * (MAX_FORM_BYTES - 2)}


@given(st.binary(min_size=1, max_size=64).filter(lambda b: _invalid_utf8(b)))
def test_invalid_utf8_raw_or_percent_encoded_is_refused(raw: bytes) -> None:
    with pytest.raises(FormError):
        parse_form(b"field=" + raw)
    with pytest.raises(FormError):
        parse_form(b"field=" + "".join(f"%{b:02X}" for b in raw).encode())


def _invalid_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


@given(st.lists(field_text, min_size=1, max_size=8), unique_forms)
def test_a_repeatable_name_keeps_every_value_in_order(
    values: list[str], others: dict[str, str]
) -> None:
    """RFC 8707 section 2: ``resource`` may repeat; the mapping keeps the first value."""
    others.pop("resource", None)
    assume(len(others) + len(values) <= MAX_FIELDS)
    body = urlencode([*others.items(), *(("resource", v) for v in values)]).encode()
    fields = parse_form(body, repeatable=frozenset({"resource"}))
    assert fields.values_of("resource") == tuple(values)
    assert form_values(fields, "resource") == tuple(values)
    assert fields["resource"] == values[0]
    assert {k: v for k, v in fields.items() if k != "resource"} == others


def test_only_the_named_parameters_may_repeat() -> None:
    with pytest.raises(FormError, match="'scope' is repeated"):
        parse_form(b"resource=a&resource=b&scope=x&scope=y", repeatable=frozenset({"resource"}))
    with pytest.raises(FormError, match="'resource' is repeated"):
        parse_form(b"resource=a&resource=b")
    assert form_values({"resource": "a"}, "resource") == ("a",)
    assert form_values(parse_form(b"scope=x"), "resource") == ()


@settings(max_examples=500)
@given(st.one_of(st.binary(max_size=512), form_like_bytes, field_text))
@example("a=1&&b=2")
@example("a==b&=x&c&")
@example("a=1;b=2")
@example("scope=models%3Aread&a+b=c+d")
@example("a=%zz&b=%&c=%4&d=%E2%82%AC")
@example(b"a=%ff")
@example("a=%C3")
@example("%3D=%26&x=%2B+")
def test_the_field_by_field_decoding_gives_what_parse_qsl_gives(body: bytes | str) -> None:
    """parse_form decodes only the names and values that hold ``%`` or ``+``: the pairs (or the
    refusal of bad UTF-8) must be parse_qsl's."""
    from urllib.parse import parse_qsl

    from ostiary.protocol.forms import _pairs

    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError:
        return
    try:
        expected = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        with pytest.raises(UnicodeDecodeError):
            _pairs(text)
        return
    assert _pairs(text) == expected
