"""protocol/signed_fields.py: base64url without padding (RFC 4648 section 5), MAC inputs that
no two field lists share (RFC 2104 HMAC over length-prefixed fields), and the freshness of a
time of issue."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ostiary.protocol.signed_fields import (
    CLOCK_SKEW_SECONDS,
    b64url_decode,
    b64url_encode,
    issued_fresh,
    mac_input,
)

NOW = datetime(2026, 12, 3, 1, 0, 0, 900_000, tzinfo=UTC)  # a fraction of a second past
STAMP = int(NOW.timestamp())  # 1796259600: ten digits
TTL = 300

# -- base64url (RFC 4648 section 5, no padding: section 3.2) ----------------------------------


@given(st.binary(max_size=200))
def test_base64url_round_trips_without_padding(raw: bytes) -> None:
    text = b64url_encode(raw)
    assert b64url_decode(text) == raw
    assert not set(text) & {"=", "+", "/"}
    # The alphabet and the bytes of every value issued so far: the standard library's,
    # padding stripped.
    assert text == base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_base64url_uses_the_url_safe_alphabet() -> None:
    assert b64url_encode(b"\xfb\xff\xbf") == "-_-_"
    assert b64url_encode(b"\xff") == "_w"
    assert b64url_decode("-_-_") == b"\xfb\xff\xbf"
    assert b64url_encode(b"") == "" and b64url_decode("") == b""


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("a", binascii.Error),  # one character left over: no whole byte
        ("abcde", binascii.Error),
        ("\u00e9\u00e9", ValueError),  # not ASCII
    ],
)
def test_base64url_decoding_raises_what_callers_catch(text: str, error: type[ValueError]) -> None:
    with pytest.raises(error):
        b64url_decode(text)


@pytest.mark.parametrize(
    "text",
    [
        "_x",  # b"\xff" is "_w": the last character's unused bits set
        "AB",  # b"\x00" is "AA"
        "AAB",  # b"\x00\x00" is "AAA"
        "-_-_=",  # padding
        "_w==",
        "-_ -_",  # a character outside the alphabet, which the standard library skips
        "-_\n-_",
        "+/+/",  # the standard alphabet, not the URL-safe one
    ],
)
def test_only_the_canonical_spelling_decodes(text: str) -> None:
    """RFC 4648 section 3.5: a value has one spelling, so a signed value cannot be re-spelled
    into another string that still verifies."""
    with pytest.raises(ValueError):
        b64url_decode(text)


@given(
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ ", max_size=12
    )
)
def test_whatever_decodes_is_what_encoding_its_bytes_gives(text: str) -> None:
    try:
        raw = b64url_decode(text)
    except ValueError:
        return
    assert b64url_encode(raw) == text


# -- length-prefixed MAC input ---------------------------------------------------------------


def _fields_of(data: bytes) -> list[str]:
    """Read ``<length>:<bytes>`` fields back: a left inverse of ``mac_input``."""
    fields = []
    while data:
        length, _, rest = data.partition(b":")
        fields.append(rest[: int(length)].decode())
        data = rest[int(length) :]
    return fields


def test_each_field_is_prefixed_with_its_length_in_bytes() -> None:
    assert mac_input("ab", "c") == b"2:ab1:c"
    assert mac_input("a", "bc") == b"1:a2:bc"
    assert mac_input("\u00e9", "", "1:x") == b"2:\xc3\xa90:3:1:x"
    assert mac_input() == b""


@given(st.lists(st.text()))
def test_the_fields_can_be_read_back_from_the_mac_input(fields: list[str]) -> None:
    # A function with a left inverse is injective: no other list gives the same input.
    assert _fields_of(mac_input(*fields)) == fields


@given(st.lists(st.text()), st.data())
def test_the_same_text_split_differently_gives_another_input(
    fields: list[str], data: st.DataObject
) -> None:
    joined = "".join(fields)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(joined)), max_size=4)))
    other = [joined[a:b] for a, b in zip([0, *cuts], [*cuts, len(joined)], strict=True)]
    assume(other != fields)
    assert mac_input(*other) != mac_input(*fields)


@given(st.lists(st.text(max_size=8), max_size=4), st.lists(st.text(max_size=8), max_size=4))
def test_two_different_field_lists_never_give_the_same_input(a: list[str], b: list[str]) -> None:
    assume(a != b)
    assert mac_input(*a) != mac_input(*b)


# -- freshness -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "fresh"),
    [
        (-CLOCK_SKEW_SECONDS, True),  # issued by a replica a minute ahead
        (-CLOCK_SKEW_SECONDS - 1, False),
        (0, True),
        (TTL, True),
        (TTL + 1, False),
    ],
)
def test_freshness_at_its_edges(age: int, fresh: bool) -> None:
    assert CLOCK_SKEW_SECONDS == 60
    assert issued_fresh(str(STAMP - age), NOW, TTL) is fresh


def test_the_age_counts_whole_seconds_of_now() -> None:
    assert issued_fresh(str(STAMP - TTL), NOW + timedelta(seconds=0.09), TTL)
    assert not issued_fresh(str(STAMP - TTL), NOW + timedelta(seconds=0.1), TTL)


@pytest.mark.parametrize(
    "issued",
    [
        "",
        "0" * 3 + str(STAMP),  # 13 digits, though the time itself is fresh
        "1" * 13,
        "\u0661\u0662",  # Arabic-Indic digits: str.isdigit() says yes
        "\uff11\uff17\uff19\uff16",  # fullwidth digits
        "\u00b2",  # superscript two: a digit to isdigit(), not to int()
        f"-{STAMP}",
        f"+{STAMP}",
        f" {STAMP}",
        f"{STAMP}\n",
        f"{STAMP}.0",
        "1_796_259_600",
        "0x6b0fc610",
    ],
)
def test_anything_but_at_most_twelve_ascii_digits_is_not_fresh(issued: str) -> None:
    assert not issued_fresh(issued, NOW, TTL)


def test_twelve_digits_are_read() -> None:
    assert issued_fresh("00" + str(STAMP), NOW, TTL)


@given(st.text(max_size=20))
def test_any_text_is_answered_without_an_error(issued: str) -> None:
    assert issued_fresh(issued, NOW, TTL) in (True, False)
