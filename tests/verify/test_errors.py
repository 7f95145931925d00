"""ostiary.verify._errors: status codes and RFC 6750 section 3 challenges."""

from __future__ import annotations

import pytest

from ostiary.verify import TokenError
from ostiary.verify._errors import bearer_challenge


def test_invalid_token_is_401_with_an_invalid_token_challenge() -> None:
    error = TokenError("expired", "the token has expired")
    assert error.status_code == 401
    assert error.www_authenticate("api") == (
        'Bearer realm="api", error="invalid_token", error_description="the token has expired"'
    )


def test_insufficient_scope_is_403_and_names_the_scope_needed() -> None:
    # RFC 6750 section 3.1: insufficient_scope is HTTP 403; section 3: the scope attribute.
    error = TokenError("insufficient_scope", "missing", required_scopes=("a", "b:c"))
    assert error.status_code == 403
    assert error.www_authenticate() == (
        'Bearer error="insufficient_scope", error_description="missing", scope="a b:c"'
    )


@pytest.mark.parametrize("reason", ["jwks_unavailable", "introspection_unavailable"])
def test_an_unreachable_authorization_server_is_503_without_an_error_code(reason: str) -> None:
    error = TokenError(reason, "down")  # type: ignore[arg-type]
    assert error.status_code == 503
    assert error.www_authenticate("api") == 'Bearer realm="api"'
    assert error.www_authenticate() == "Bearer"


def test_quoted_values_never_carry_quotes_backslashes_or_control_characters() -> None:
    # RFC 6750 section 3: error_description is %x20-21 / %x23-5B / %x5D-7E.
    error = TokenError("malformed", 'say "hi"\\\r\nnow é')
    header = error.www_authenticate('re"alm')
    assert header == (
        'Bearer realm="re?alm", error="invalid_token", error_description="say ?hi????now ?"'
    )


def test_a_request_without_a_token_gets_a_bare_challenge() -> None:
    # RFC 6750 section 3.1: no error code when the request has no authentication information.
    assert bearer_challenge("api") == 'Bearer realm="api"'
    assert bearer_challenge() == "Bearer"


def test_the_message_holds_reason_and_description() -> None:
    error = TokenError("bad_signature", "nope")
    assert str(error) == "bad_signature: nope"
    assert error.reason == "bad_signature"
    assert error.description == "nope"
