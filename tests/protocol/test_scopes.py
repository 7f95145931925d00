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


# -- granted_scopes: RFC 6749 section 3.3 (partial grants) ------------------------------------


def test_scopes_the_client_may_not_have_are_dropped_in_request_order() -> None:
    from ostiary.protocol.scopes import granted_scopes

    assert granted_scopes(("openid", "admin", "email"), ["email", "openid"]) == ("openid", "email")


def test_nothing_usable_is_refused() -> None:
    from ostiary.protocol.scopes import ScopeError, granted_scopes

    with pytest.raises(ScopeError, match="admin"):
        granted_scopes(("admin",), ["openid"])


def test_openid_not_allowed_is_refused_not_downgraded_to_plain_oauth() -> None:
    from ostiary.protocol.scopes import ScopeError, granted_scopes

    with pytest.raises(ScopeError, match="openid"):
        granted_scopes(("openid", "models:read"), ["models:read"])


def test_an_empty_request_stays_empty() -> None:
    from ostiary.protocol.scopes import granted_scopes

    assert granted_scopes((), ["openid"]) == ()


def test_claim_scopes_of_core_section_5_4() -> None:
    from ostiary.protocol.scopes import CLAIMS_BY_SCOPE

    assert CLAIMS_BY_SCOPE["phone"] == ("phone_number", "phone_number_verified")
    assert CLAIMS_BY_SCOPE["address"] == ("address",)
    assert {"given_name", "birthdate", "zoneinfo", "picture"} <= set(CLAIMS_BY_SCOPE["profile"])
