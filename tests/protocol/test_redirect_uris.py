"""RFC 9700 section 4.1.3 exact matching; RFC 8252 section 7.3 loopback ports."""

import pytest

from ostiary.protocol.redirect_uris import (
    RedirectUriError,
    matches_registered,
    validate_redirect_uri,
)

REGISTERED = ["https://app.example/cb", "http://127.0.0.1/native", "http://[::1]/v6"]


@pytest.mark.parametrize(
    "candidate",
    [
        "https://app.example/cb/",
        "https://app.example/cb?x=1",
        "https://APP.example/cb",
        "https://app.example/c",
        "https://app.example.evil/cb",
        "https://app.example/cb#frag",
        "http://app.example/cb",
    ],
)
def test_only_exact_matches(candidate: str) -> None:
    assert not matches_registered(candidate, REGISTERED, loopback_any_port=True)


def test_exact_match() -> None:
    assert matches_registered("https://app.example/cb", REGISTERED)


def test_loopback_any_port_only_when_allowed() -> None:
    assert matches_registered("http://127.0.0.1:51234/native", REGISTERED, loopback_any_port=True)
    assert matches_registered("http://[::1]:8080/v6", REGISTERED, loopback_any_port=True)
    assert not matches_registered("http://127.0.0.1:51234/native", REGISTERED)
    assert not matches_registered(
        "http://127.0.0.1:51234/other", REGISTERED, loopback_any_port=True
    )
    assert not matches_registered(
        "http://localhost:51234/native", REGISTERED, loopback_any_port=True
    )
    assert not matches_registered(
        "http://127.0.0.1:99999/native", REGISTERED, loopback_any_port=True
    )


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "/relative",
        "https://app.example/cb#f",
        "http://app.example/cb",
        "javascript:alert(1)",
        "myapp:/cb",
        "https://app .example/cb",
        "https:///nohost",
    ],
)
def test_registration_refuses(uri: str) -> None:
    with pytest.raises(RedirectUriError):
        validate_redirect_uri(uri)


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example/cb",
        "http://127.0.0.1:8080/cb",
        "http://localhost/cb",
        "com.example.app:/oauth2redirect",
    ],
)
def test_registration_accepts(uri: str) -> None:
    assert validate_redirect_uri(uri) == uri
