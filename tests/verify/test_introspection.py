"""ostiary.verify._introspection: RFC 7662 against the fake authorization server's endpoint."""

from __future__ import annotations

import base64
from urllib.parse import unquote_plus

import pytest

from ostiary.verify import IntrospectionConfig, TokenError, TokenVerifier
from ostiary.verify._introspection import basic_authorization
from tests.verify.conftest import (
    AUDIENCE,
    CLIENT_ID,
    CLIENT_SECRET,
    Clock,
    MakeVerifier,
    Minter,
    Tenant,
    introspection_config,
)

OPAQUE = "ost_at_" + "x" * 40


def active_answer(idp: Tenant, clock: Clock, **overrides: object) -> dict[str, object]:
    now = int(clock().timestamp())
    answer: dict[str, object] = {
        "active": True,
        "iss": idp.issuer,
        "aud": AUDIENCE,
        "sub": "user-9",
        "client_id": "client-9",
        "scope": "models:read",
        "exp": now + 300,
        "iat": now,
        "token_type": "Bearer",
    }
    answer.update(overrides)
    return {k: v for k, v in answer.items() if v is not None}


@pytest.fixture
def introspecting(make_verifier: MakeVerifier) -> TokenVerifier:
    return make_verifier(introspection=introspection_config())


async def refused(verifier: TokenVerifier, token: str, **kwargs: object) -> TokenError:
    with pytest.raises(TokenError) as caught:
        await verifier.verify(token, **kwargs)  # type: ignore[arg-type]
    return caught.value


# -- client authentication (RFC 6749 section 2.3.1) -----------------------------------------


def test_basic_credentials_are_form_urlencoded_before_base64() -> None:
    header = basic_authorization("my client:1", "p@ss w/rd+=%")
    assert header.startswith("Basic ")
    user, password = base64.b64decode(header[6:]).decode().split(":")
    assert user == "my+client%3A1"
    assert password == "p%40ss+w%2Frd%2B%3D%25"
    assert (unquote_plus(user), unquote_plus(password)) == ("my client:1", "p@ss w/rd+=%")


def test_the_client_secret_is_not_in_the_repr() -> None:
    assert CLIENT_SECRET not in repr(introspection_config())


# -- opaque tokens ---------------------------------------------------------------------------


async def test_an_active_opaque_token_is_verified_by_introspection_alone(
    idp: Tenant, clock: Clock, introspecting: TokenVerifier
) -> None:
    idp.introspection[OPAQUE] = active_answer(idp, clock)
    verified = await introspecting.verify(OPAQUE, ["models:read"])
    assert verified.subject == "user-9"
    assert verified.client_id == "client-9"
    assert verified.scopes == {"models:read"}
    assert verified.expires_at is not None
    assert verified.introspected is True
    assert verified.header == {}
    assert verified.jti is None
    # RFC 7662 section 2.1: form-encoded token + hint, with Basic client authentication.
    assert idp.introspected_forms == [{"token": OPAQUE, "token_type_hint": "access_token"}]
    assert idp.authorizations == [basic_authorization(CLIENT_ID, CLIENT_SECRET)]
    assert idp.hits["jwks"] == 0


async def test_an_inactive_opaque_token_is_refused(
    idp: Tenant, introspecting: TokenVerifier
) -> None:
    error = await refused(introspecting, OPAQUE)  # the fake answers {"active": false}
    assert error.reason == "inactive"
    assert error.status_code == 401


@pytest.mark.parametrize("active", ["true", 1, None])
async def test_only_json_true_counts_as_active(
    active: object, idp: Tenant, clock: Clock, introspecting: TokenVerifier
) -> None:
    idp.introspection[OPAQUE] = active_answer(idp, clock, active=active)
    error = await refused(introspecting, OPAQUE)
    assert error.reason == "introspection_unavailable"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"aud": "https://other.test"}, "wrong_audience"),
        ({"iss": "https://evil.test"}, "wrong_issuer"),
        ({"exp": 1_000_000}, "expired"),
        ({"nbf": 4_000_000_000}, "not_yet_valid"),
        ({"scope": "models:write"}, "insufficient_scope"),
        ({"sub": None}, "malformed"),
    ],
)
async def test_what_the_introspection_answer_says_is_still_checked(
    overrides: dict[str, object],
    reason: str,
    idp: Tenant,
    clock: Clock,
    introspecting: TokenVerifier,
) -> None:
    # RFC 7662 section 4: the protected resource checks aud, exp, scope, ... of the answer.
    idp.introspection[OPAQUE] = active_answer(idp, clock, **overrides)
    error = await refused(introspecting, OPAQUE, required_scopes=["models:read"])
    assert error.reason == reason


async def test_members_the_answer_omits_are_not_required(
    idp: Tenant, clock: Clock, introspecting: TokenVerifier
) -> None:
    idp.introspection[OPAQUE] = active_answer(
        idp, clock, iss=None, exp=None, iat=None, token_type=None
    )
    verified = await introspecting.verify(OPAQUE)
    assert verified.expires_at is None


async def test_an_answer_without_aud_is_refused(
    idp: Tenant, clock: Clock, introspecting: TokenVerifier
) -> None:
    # Nothing else would show that the opaque token is meant for this resource.
    idp.introspection[OPAQUE] = active_answer(idp, clock, aud=None)
    assert (await refused(introspecting, OPAQUE)).reason == "wrong_audience"


@pytest.mark.parametrize("token_type", ["refresh_token", "DPoP", "mac", 1])
async def test_an_active_token_that_is_not_a_bearer_access_token_is_refused(
    token_type: object, idp: Tenant, clock: Clock, introspecting: TokenVerifier
) -> None:
    # Ostiary's introspection also answers active for a live refresh token (token_type
    # "refresh_token", no aud): it must not pass as an access token.
    idp.introspection[OPAQUE] = active_answer(idp, clock, token_type=token_type)
    assert (await refused(introspecting, OPAQUE)).reason == "wrong_typ"


@pytest.mark.parametrize("token_type", ["Bearer", "bearer", "BEARER"])
async def test_the_bearer_token_type_is_case_insensitive(
    token_type: str, idp: Tenant, clock: Clock, introspecting: TokenVerifier
) -> None:
    idp.introspection[OPAQUE] = active_answer(idp, clock, token_type=token_type)
    assert (await introspecting.verify(OPAQUE)).subject == "user-9"


async def test_an_opaque_token_without_introspection_is_malformed(
    idp: Tenant, verifier: TokenVerifier
) -> None:
    assert (await refused(verifier, OPAQUE)).reason == "malformed"
    assert idp.hits["introspect"] == 0


# -- JWTs that must not be revoked (introspect=True) -----------------------------------------


async def test_a_jwt_is_also_introspected_when_asked(
    idp: Tenant, clock: Clock, mint: Minter, introspecting: TokenVerifier
) -> None:
    token = mint.token()
    idp.introspection[token] = active_answer(idp, clock)
    offline = await introspecting.verify(token)
    assert offline.introspected is False
    assert idp.hits["introspect"] == 0
    online = await introspecting.verify(token, introspect=True)
    assert online.introspected is True
    assert online.subject == "user-1"  # the claims are the JWT's
    assert idp.hits["introspect"] == 1


async def test_a_revoked_jwt_passes_offline_but_not_with_introspection(
    idp: Tenant, mint: Minter, introspecting: TokenVerifier
) -> None:
    token = mint.token()  # the fake knows nothing of it: {"active": false}
    assert (await introspecting.verify(token)).subject == "user-1"
    assert (await refused(introspecting, token, introspect=True)).reason == "inactive"


async def test_a_jwt_failing_offline_checks_is_not_introspected(
    idp: Tenant, mint: Minter, introspecting: TokenVerifier
) -> None:
    token = mint.token(aud="https://other.test")
    assert (await refused(introspecting, token, introspect=True)).reason == "wrong_audience"
    assert idp.hits["introspect"] == 0


async def test_introspect_without_a_config_is_a_programming_error(
    mint: Minter, verifier: TokenVerifier
) -> None:
    with pytest.raises(ValueError, match="IntrospectionConfig"):
        await verifier.verify(mint.token(), introspect=True)


# -- endpoint and failures -------------------------------------------------------------------


async def test_wrong_client_credentials_are_introspection_unavailable(
    idp: Tenant, clock: Clock, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(introspection=introspection_config(client_secret="wrong"))
    idp.introspection[OPAQUE] = active_answer(idp, clock)
    error = await refused(verifier, OPAQUE)
    assert error.reason == "introspection_unavailable"
    assert error.status_code == 503


async def test_a_failing_endpoint_is_introspection_unavailable(
    idp: Tenant, introspecting: TokenVerifier
) -> None:
    idp.introspection_status = 500
    assert (await refused(introspecting, OPAQUE)).reason == "introspection_unavailable"


async def test_an_explicit_endpoint_needs_no_discovery(
    idp: Tenant, clock: Clock, make_verifier: MakeVerifier
) -> None:
    config = IntrospectionConfig(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, endpoint=f"{idp.issuer}/introspect"
    )
    verifier = make_verifier(introspection=config)
    idp.introspection[OPAQUE] = active_answer(idp, clock)
    assert (await verifier.verify(OPAQUE)).subject == "user-9"
    assert idp.hits == {"introspect": 1}


async def test_no_discovered_endpoint_is_introspection_unavailable(
    idp: Tenant, introspecting: TokenVerifier
) -> None:
    idp.discovery = "none"  # keys from /.well-known/jwks.json, but no metadata at all
    error = await refused(introspecting, OPAQUE)
    assert error.reason == "introspection_unavailable"
    assert idp.hits["introspect"] == 0


async def test_opaque_tokens_are_verified_while_the_jwks_endpoint_fails(
    idp: Tenant, clock: Clock, introspecting: TokenVerifier
) -> None:
    idp.jwks_status = 500
    idp.introspection[OPAQUE] = active_answer(idp, clock)
    assert (await introspecting.verify(OPAQUE)).subject == "user-9"
    assert idp.hits == {"oidc": 1, "introspect": 1}  # discovery only, no key fetch


async def test_a_failed_discovery_is_not_retried_within_the_interval(
    idp: Tenant, clock: Clock, introspecting: TokenVerifier
) -> None:
    idp.metadata_issuer = "https://impostor.test"
    for _ in range(3):
        assert (await refused(introspecting, OPAQUE)).reason == "introspection_unavailable"
    assert idp.hits == {"oidc": 1}
    idp.metadata_issuer = None
    idp.introspection[OPAQUE] = active_answer(idp, clock)
    clock.advance(seconds=30)
    assert (await introspecting.verify(OPAQUE)).subject == "user-9"
    assert idp.hits == {"oidc": 2, "introspect": 1}
