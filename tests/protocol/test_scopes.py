"""RFC 6749 section 3.3 scope syntax."""

import pytest

from ostiary.protocol.scopes import ScopeError, format_scope, parse_scope


def test_parse_dedupes_and_keeps_order() -> None:
    assert parse_scope("openid email openid  profile") == ("openid", "email", "profile")
    assert parse_scope("") == () and parse_scope(None) == ()
    assert format_scope(("a", "b")) == "a b"


@pytest.mark.parametrize("value", ['openid "quoted"', "back\\slash", "tab\there", "é"])
def test_characters_outside_the_grammar_are_refused(value: str) -> None:
    with pytest.raises(ScopeError):
        parse_scope(value)


def test_too_many_scopes() -> None:
    with pytest.raises(ScopeError):
        parse_scope(" ".join(f"s{i}" for i in range(65)))
