"""Properties of ``redact`` and ``mask_email`` (OWASP ASVS 4.0 V7.1; GDPR Art. 5(1)(c))."""

from __future__ import annotations

import string
import time
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from ostiary.protocol.masking import REDACTED, is_secret_field, mask_email, redact

SECRET_WORDS = (
    "password",
    "passwd",
    "secret",
    "token",
    "cookie",
    "authorization",
    "session_id",
    "csrf",
    "code_verifier",
    "private",
    "otp",
    "recovery",
)
SENTINEL = "S3NT1NEL"

# -- strategies -----------------------------------------------------------------------------

# Names spelled without d, e, o, p, r, s, t, w cannot contain any secret word.
plain_keys = st.text(st.sampled_from("abcfghijklmnquvxyz_0123456789"), min_size=1, max_size=10)


@st.composite
def secret_keys(draw: st.DrawFn) -> str:
    word = draw(st.sampled_from(SECRET_WORDS))
    cased = "".join(draw(st.sampled_from([c.lower(), c.upper()])) for c in word)
    prefix = draw(st.sampled_from(["", "x_", "client_", "X-", "new", "refresh_", "id_"]))
    suffix = draw(st.sampled_from(["", "_hash", "s", "-Header", "Value", "_2"]))
    return prefix + cased + suffix


secret_values = st.sampled_from(
    [
        SENTINEL,
        f"Bearer {SENTINEL}",
        [SENTINEL, "x"],
        (SENTINEL,),
        {"inner": SENTINEL},
        {"password": SENTINEL},
        SENTINEL.encode(),
        [{"deep": [SENTINEL]}],
    ]
)


# Leaves never contain the sentinel (upper-case S, digits 3 and 1 and N are not drawn together).
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(st.sampled_from(string.ascii_lowercase + " .,-"), max_size=12),
)


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    plain_dicts = st.dictionaries(plain_keys, children, max_size=4)
    dicts_with_secret = st.builds(
        lambda d, k, v: {**d, k: v}, plain_dicts, secret_keys(), secret_values
    )
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        plain_dicts,
        dicts_with_secret,
    )


# Lists, tuples and dicts nested at random, some dicts holding a secret-named field.
nested_with_secrets = st.recursive(leaves, _extend, max_leaves=30)


def _contains(value: Any, needle: str) -> bool:
    if isinstance(value, dict):
        return any(_contains(k, needle) or _contains(v, needle) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_contains(v, needle) for v in value)
    if isinstance(value, bytes):
        return needle.encode() in value
    return needle in str(value)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list | tuple):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


# -- secrets --------------------------------------------------------------------------------


@given(secret_keys())
def test_every_spelling_of_a_secret_word_is_a_secret_field(name: str) -> None:
    assert is_secret_field(name)


@given(plain_keys)
def test_plain_names_are_not_secret_fields(name: str) -> None:
    assert not is_secret_field(name)


@given(nested_with_secrets)
def test_a_secret_fields_value_never_survives_at_any_depth(value: Any) -> None:
    assume(_contains(value, SENTINEL))
    redacted = redact(value)
    assert not _contains(redacted, SENTINEL), redacted
    assert SENTINEL not in repr(redacted)


plain_nested = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(plain_keys, children, max_size=3)
    ),
    max_leaves=25,
)


@given(plain_nested)
def test_nothing_else_changes_within_eight_levels(value: Any) -> None:
    assume(_depth(value) <= 8)
    assert redact(value) == value


@given(st.integers(min_value=9, max_value=10_000), st.booleans())
def test_structures_deeper_than_eight_levels_are_cut_off(depth: int, lists: bool) -> None:
    value: Any = SENTINEL
    for _ in range(depth):
        value = [value] if lists else {"k": value}
    assert SENTINEL not in repr(redact(value))  # and no RecursionError on the way


@dataclass
class _Account:
    email: str
    password_hash: str


def test_a_secret_field_of_a_dataclass_in_a_log_event_does_not_survive() -> None:
    # e.g. a careless ``log.info("signed in", user=user)`` with the feature's User dataclass
    event = {"event": "signed in", "user": _Account("a@example.com", f"$argon2id${SENTINEL}")}
    assert SENTINEL not in repr(redact(event))


# -- e-mail addresses -----------------------------------------------------------------------

_local_common = st.text(
    st.sampled_from(string.ascii_letters + string.digits + "._%+-"), min_size=1, max_size=30
)
_label = st.text(st.sampled_from(string.ascii_lowercase + string.digits), min_size=1, max_size=12)
_tld = st.text(st.sampled_from(string.ascii_lowercase), min_size=2, max_size=6)
common_emails = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join(labels)}.{tld}",
    _local_common,
    st.lists(_label, min_size=1, max_size=3),
    _tld,
)
# RFC 6531 (internationalized) local parts and domains: letters of any script.
_letters = st.characters(whitelist_categories=("Ll", "Lu", "Lo"))
international_emails = st.builds(
    lambda local, domain, tld: f"{local}@{domain}.{tld}",
    st.text(_letters, min_size=1, max_size=12),
    st.text(_letters, min_size=1, max_size=12),
    st.sampled_from(["com", "de", "xn--p1ai", "рф", "中国"]),
)
surroundings = st.text(st.sampled_from(string.ascii_letters + " :,;<>()[]\"'\n\t=/"), max_size=20)


def _assert_masked_in_text(email: str, before: str, after: str) -> None:
    text = f"{before}{email}{after}"
    out = redact(text)
    assert email not in out, out
    assert redact({"message": text})["message"] == out
    assert email not in repr(redact([{"details": (text,)}]))


@given(common_emails, surroundings, surroundings)
@example("alice@example.com", "user ", " signed in")
@example("a@b.co", "", "")
def test_a_common_address_never_appears_in_redacted_text(
    email: str, before: str, after: str
) -> None:
    _assert_masked_in_text(email, before, after)


@given(st.emails(), surroundings, surroundings)
@example("o'brien!@example.com", "", "")
@example("user#@example.com", "to: ", "")
def test_an_rfc_5322_address_never_appears_in_redacted_text(
    email: str, before: str, after: str
) -> None:
    assume("*" not in email)  # "a***@x.com" already reads as masked; nothing to hide
    _assert_masked_in_text(email, before, after)


@given(international_emails, surroundings, surroundings)
@example("josé@example.com", "new user ", "")
@example("alice@bücher.de", "", "")
@example("用户@例子.中国", "", "")
def test_an_internationalized_address_never_appears_in_redacted_text(
    email: str, before: str, after: str
) -> None:
    _assert_masked_in_text(email, before, after)


@given(st.one_of(common_emails, st.emails(), international_emails))
def test_mask_email_hides_all_but_the_first_character_of_the_local_part(email: str) -> None:
    assume("*" not in email)
    local, _, domain = email.rpartition("@")
    masked = mask_email(email)
    assert email not in masked
    assert local[1:] == "" or local not in masked.partition("@")[0]
    assert masked.endswith(domain)


@given(st.text().filter(lambda t: "@" not in t))
def test_mask_email_of_anything_without_at_sign_is_fully_masked(text: str) -> None:
    assert mask_email(text) == "***"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a" * 30_000, id="one-long-word"),
        pytest.param("x@" + "a" * 30_000, id="at-sign-then-long-word"),
    ],
)
def test_redact_takes_linear_time_on_long_text(text: str) -> None:
    # Every log event goes through redact, so a careless log of request data must not turn a
    # long header or path into seconds of CPU (a linear scan of 30 kB takes milliseconds).
    started = time.perf_counter()
    redact({"message": text})
    assert time.perf_counter() - started < 0.25


def test_redacted_marker_is_stable() -> None:
    assert redact({"password": "x"}) == {"password": REDACTED}
