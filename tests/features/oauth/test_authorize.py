"""Authorization request validation: PKCE modes (RFC 9700 section 2.1.1, RFC 7636 section 4.3)
and ``redirect_uri`` omission (OAuth 2.1 section 4.1.1, OpenID Connect Core 1.0 3.1.2.1)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ostiary.features.clients.models import Client, PkceMode
from ostiary.features.oauth.authorize import (
    AuthorizationError,
    UntrustedAuthorizationRequest,
    validate_authorization_request,
)

CB = "https://app.example/cb"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _client(
    pkce: PkceMode, *, public: bool = False, redirect_uris: tuple[str, ...] = (CB,)
) -> Client:
    return Client(
        client_id="c1",
        name="App",
        client_type="public" if public else "confidential",
        token_endpoint_auth_method="none" if public else "client_secret_basic",
        created_at=NOW,
        updated_at=NOW,
        redirect_uris=list(redirect_uris),
        grant_types=["authorization_code"],
        scopes=["openid", "profile", "api"],
        pkce=pkce,
    )


def _params(**kw: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": "c1",
        "redirect_uri": CB,
        "state": "s",
        **kw,
    }
    return {k: v for k, v in params.items() if v is not None}


def _allowed(client: Client, **kw: str | None) -> bool:
    try:
        request = validate_authorization_request(_params(**kw), client)
    except AuthorizationError as exc:
        refusal = exc
    else:
        assert request.code_challenge == kw.get("code_challenge")
        return True
    assert refusal.error == "invalid_request" and refusal.redirect_uri == CB
    return False


PKCE = {"code_challenge": CHALLENGE, "code_challenge_method": "S256"}
# Request shapes: (label, params); every mode accepts the first (PKCE).
SHAPES: list[tuple[str, dict[str, Any]]] = [
    ("pkce_openid_nonce", {**PKCE, "scope": "openid", "nonce": "n"}),
    ("pkce_plain_oauth", {**PKCE, "scope": "api"}),
    ("openid_nonce", {"scope": "openid profile", "nonce": "n"}),
    ("openid_no_nonce", {"scope": "openid"}),
    ("oauth_nonce", {"scope": "api", "nonce": "n"}),
    ("oauth", {"scope": "api"}),
]
ALLOWED = {
    "required": {"pkce_openid_nonce", "pkce_plain_oauth"},
    "nonce": {"pkce_openid_nonce", "pkce_plain_oauth", "openid_nonce"},
    "optional": {label for label, _ in SHAPES},
}


@pytest.mark.parametrize("public", [False, True], ids=["confidential", "public"])
@pytest.mark.parametrize("mode", ["required", "nonce", "optional"])
@pytest.mark.parametrize(("label", "params"), SHAPES, ids=[label for label, _ in SHAPES])
def test_pkce_mode_decides_which_requests_may_go_without_a_challenge(
    mode: PkceMode, public: bool, label: str, params: dict[str, Any]
) -> None:
    # A public client is "required" whatever its stored row says (enforced by type).
    expected = label in ALLOWED["required" if public else mode]
    assert _allowed(_client(mode, public=public), **params) is expected


@pytest.mark.parametrize("mode", ["required", "nonce"])
def test_the_refusal_names_what_is_missing(mode: PkceMode) -> None:
    with pytest.raises(AuthorizationError) as info:
        validate_authorization_request(_params(scope="openid"), _client(mode))
    assert "code_challenge" in info.value.description
    assert ("nonce" in info.value.description) is (mode == "nonce")


@pytest.mark.parametrize("mode", ["required", "nonce", "optional"])
@pytest.mark.parametrize(
    "params",
    [
        {"code_challenge": CHALLENGE, "code_challenge_method": "plain"},
        {"code_challenge": CHALLENGE},  # method defaults to plain (RFC 7636 section 4.3)
        {"code_challenge_method": "plain"},
        {"code_challenge_method": "S256"},
        {"code_challenge": "short", "code_challenge_method": "S256"},
    ],
)
def test_plain_and_malformed_pkce_are_refused_in_every_mode(
    mode: PkceMode, params: dict[str, str]
) -> None:
    assert not _allowed(_client(mode), scope="openid", nonce="n", **params)


def test_an_openid_nonce_the_client_may_not_have_does_not_excuse_pkce() -> None:
    client = _client("nonce")
    client.scopes = ["api"]
    with pytest.raises(AuthorizationError) as info:
        validate_authorization_request(_params(scope="openid", nonce="n"), client)
    assert info.value.error == "invalid_scope"


def test_redirect_uri_may_be_omitted_only_outside_openid_requests() -> None:
    client = _client("optional")
    plain = validate_authorization_request(_params(redirect_uri=None, scope="api"), client)
    assert plain.redirect_uri == CB and not plain.redirect_uri_sent
    sent = validate_authorization_request(_params(scope="api"), client)
    assert sent.redirect_uri_sent
    with pytest.raises(UntrustedAuthorizationRequest, match="redirect_uri is required"):
        validate_authorization_request(_params(redirect_uri=None, scope="openid"), client)
    two = _client("optional", redirect_uris=(CB, CB + "2"))
    with pytest.raises(UntrustedAuthorizationRequest):
        validate_authorization_request(_params(redirect_uri=None, scope="api"), two)
