"""Properties of ``safe_local_path`` (no open redirects, OWASP ASVS 4.0 V5.1.5)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ostiary.protocol.redirects import safe_local_path

DEFAULT = "/account"
# Far beyond any sensible limit on a return path (and beyond a 64 KiB form body).
OVERLONG = 1_000_000


def _is_control(ch: str) -> bool:
    # Unicode general category Cc: C0 controls, DEL and the C1 controls U+0080..U+009F.
    return unicodedata.category(ch) == "Cc"


def _assert_local(result: str) -> None:
    assert result.startswith("/")
    assert not result.startswith(("//", "/\\"))
    assert not any(_is_control(ch) for ch in result), ascii(result)
    assert "\\" not in result


# Prefixes that browsers may turn into a network-path reference or a scheme.
_tricky_prefixes = st.sampled_from(
    [
        "/",
        "//",
        "/\\",
        "\\",
        "\\\\",
        "/\t/",
        "/\n/",
        " /",
        "\t/",
        "/%2F",
        "/.//",
        "http:",
        "javascript:",
    ]
)
hostile = st.builds(lambda p, rest: p + rest, _tricky_prefixes, st.text(max_size=40))
long_paths = st.builds(
    lambda n, tail: "/" + "a" * n + tail, st.integers(1_000, 20_000), st.text(max_size=4)
)


@settings(max_examples=500)
@given(st.one_of(st.none(), st.text(), hostile, long_paths))
@example("/\x85evil")  # NEL, a C1 control
@example("/a\u009bb")  # CSI, a C1 control
def test_result_is_always_a_local_path_without_control_characters(candidate: str | None) -> None:
    result = safe_local_path(candidate)
    _assert_local(result)
    assert result in (candidate, DEFAULT)


@given(st.one_of(st.none(), st.text(), hostile))
def test_an_unsafe_candidate_gets_the_given_default(candidate: str | None) -> None:
    result = safe_local_path(candidate, default="/elsewhere")
    assert result in (candidate, "/elsewhere")


_segment = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"),
    min_size=1,
    max_size=12,
)
_query_word = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-._~%+"), min_size=1, max_size=10
)
simple_paths = st.builds(
    lambda segments, trailing, query: (
        "/"
        + "/".join(segments)
        + ("/" if trailing and segments else "")
        + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
    ),
    st.lists(_segment, max_size=6),
    st.booleans(),
    st.lists(st.tuples(_query_word, _query_word), max_size=4),
)


@given(simple_paths)
@example("/a/b?c=d")
@example("/")
@example("/account?notice=revoked")
def test_a_simple_safe_path_is_returned_unchanged(path: str) -> None:
    assert safe_local_path(path) == path


@pytest.mark.parametrize(
    "candidate",
    [
        "//evil.example",
        "//evil.example/account",
        "/\\evil.example",
        "\\\\evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "/\t/evil.example",
        "/\r\n/evil.example",
        "/account\r\nSet-Cookie: planted=1",
        " /account",
        "",
        None,
        "/" + "a" * OVERLONG,
    ],
)
def test_known_open_redirect_shapes_are_refused(candidate: str | None) -> None:
    assert safe_local_path(candidate) == DEFAULT
