"""protocol/recovery_codes.py: format, forgiving input, keyed digests."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ostiary.protocol.recovery_codes import CODE_BYTES, digest, format_code, normalize

PEPPER = b"p" * 32


def test_a_code_is_four_groups_of_four_base32_characters_80_bits() -> None:
    code = format_code(bytes(range(CODE_BYTES)))
    assert code == "aaaq-eaye-auda-ocaj"  # RFC 4648 base32 of bytes 00..09, worked by hand
    assert CODE_BYTES * 8 == 80


def test_case_spaces_and_dashes_do_not_matter() -> None:
    code = format_code(b"\xff" * CODE_BYTES)
    assert normalize(code) == normalize(code.upper().replace("-", " ")) == code.replace("-", "")
    assert digest(PEPPER, code) == digest(PEPPER, f"  {code.upper()} ")


def test_the_digest_is_hmac_sha256_under_the_pepper() -> None:
    code = format_code(b"\x01" * CODE_BYTES)
    expected = hmac.new(
        PEPPER, b"recovery-code:" + code.replace("-", "").encode(), hashlib.sha256
    ).hexdigest()
    assert digest(PEPPER, code) == expected
    assert digest(b"q" * 32, code) != expected


@pytest.mark.parametrize(
    "typed", ["", "abcd", "aaaq-eayd-aqcq-mby", "aaaq-eayd-aqcq-mby1", "é" * 16]
)
def test_what_cannot_be_a_code_is_none(typed: str) -> None:
    assert normalize(typed) is None
    with pytest.raises(ValueError):
        digest(PEPPER, typed)


@given(st.text(max_size=40))
def test_normalize_never_raises(typed: str) -> None:
    result = normalize(typed)
    assert result is None or len(result) == 16


def test_only_ten_random_bytes_make_a_code() -> None:
    with pytest.raises(ValueError):
        format_code(b"\x00" * 9)
