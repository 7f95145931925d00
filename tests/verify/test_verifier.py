"""ostiary.verify._verifier: RFC 9068 section 4 / RFC 8725 checks against tokens minted by joserfc.

Keys and metadata come from the fake authorization server over real HTTP (see conftest.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import RSAKey

from ostiary.verify import DEFAULT_ALGORITHMS, TokenError, TokenVerifier, VerifiedToken
from tests.verify.conftest import (
    AUDIENCE,
    Clock,
    Keys,
    MakeVerifier,
    Minter,
    Tenant,
    b64,
    new_key,
    unsigned,
)


async def refused(verifier: TokenVerifier, token: str, *scopes: str) -> TokenError:
    with pytest.raises(TokenError) as caught:
        await verifier.verify(token, scopes)
    return caught.value


def sign_raw(key: Any, header: dict[str, Any], payload: bytes) -> str:
    """A JWS over an arbitrary payload (not necessarily a JSON object)."""
    return jws.serialize_compact(header, payload, key, algorithms=[header["alg"]])


# -- valid tokens (RFC 9068 section 2) -------------------------------------------------------


@pytest.mark.parametrize("alg", DEFAULT_ALGORITHMS)
async def test_a_valid_token_of_each_default_algorithm_verifies(
    alg: str, keys: Keys, mint: Minter, verifier: TokenVerifier, clock: Clock
) -> None:
    key = keys.by_alg(alg)
    token = mint.token(key, jti="jti-1")
    verified = await verifier.verify(token, ["models:read"])
    assert isinstance(verified, VerifiedToken)
    assert verified.subject == "user-1"
    assert verified.client_id == "client-1"
    assert verified.scopes == frozenset({"models:read", "models:write"})
    assert verified.jti == "jti-1"
    assert verified.sid == "session-1"
    assert verified.expires_at == clock() + timedelta(seconds=300)
    assert verified.header == {"alg": alg, "kid": key.kid, "typ": "at+jwt"}
    assert verified.claims["aud"] == AUDIENCE
    assert verified.introspected is False


async def test_a_token_without_scope_or_sid_verifies_with_empty_scopes(
    mint: Minter, verifier: TokenVerifier
) -> None:
    verified = await verifier.verify(mint.token(scope=None, sid=None))
    assert verified.scopes == frozenset()
    assert verified.sid is None


async def test_an_audience_array_containing_ours_is_accepted(
    mint: Minter, verifier: TokenVerifier
) -> None:
    # RFC 7519 section 4.1.3: aud may be an array; one of its values must identify us.
    verified = await verifier.verify(mint.token(aud=["https://other.test", AUDIENCE]))
    assert verified.subject == "user-1"


async def test_any_of_several_configured_audiences_is_accepted(
    mint: Minter, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(audience=["https://a.test", "https://b.test"])
    verified = await verifier.verify(mint.token(aud="https://b.test"))
    assert verified.claims["aud"] == "https://b.test"


# -- signatures (RFC 7515 section 5.2) ------------------------------------------------------


@pytest.mark.parametrize("alg", DEFAULT_ALGORITHMS)
async def test_a_token_signed_by_a_foreign_key_with_the_same_kid_is_refused(
    alg: str, keys: Keys, mint: Minter, verifier: TokenVerifier
) -> None:
    foreign = new_key(alg, kid=keys.by_alg(alg).kid)
    error = await refused(verifier, mint.token(foreign))
    assert error.reason == "bad_signature"


async def test_a_tampered_payload_is_refused(mint: Minter, verifier: TokenVerifier) -> None:
    header, _, signature = mint.token().split(".")
    payload = b64(json.dumps(mint.claims(sub="admin", scope="admin")).encode())
    error = await refused(verifier, f"{header}.{payload}.{signature}")
    assert error.reason == "bad_signature"


async def test_a_tampered_signature_is_refused(mint: Minter, verifier: TokenVerifier) -> None:
    header, payload, signature = mint.token().split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    error = await refused(verifier, f"{header}.{payload}.{flipped}")
    assert error.reason == "bad_signature"


async def test_a_tampered_header_is_refused(mint: Minter, verifier: TokenVerifier) -> None:
    # The protected header is part of the signing input (RFC 7515 section 5.1 step 5).
    token = mint.token()
    _, payload, signature = token.split(".")
    kid = mint.tenant.keys[0].kid
    header = b64(json.dumps({"alg": "ES256", "kid": kid, "typ": "at+jwt", "x": 1}).encode())
    error = await refused(verifier, f"{header}.{payload}.{signature}")
    assert error.reason == "bad_signature"


# -- algorithm allowlist and confusion (RFC 8725 sections 2.1, 3.1) ---------------------------


@pytest.mark.parametrize("secret_form", ["pem", "jwk_json"])
async def test_hs256_signed_with_the_public_key_as_secret_is_refused_before_any_fetch(
    secret_form: str, idp: Tenant, keys: Keys, mint: Minter, verifier: TokenVerifier
) -> None:
    # The classic confusion: a verifier that feeds its RSA public key to HMAC would accept this.
    public = keys.rs256
    if secret_form == "pem":
        secret = public.as_pem(private=False)
    else:
        secret = json.dumps(public.as_dict(private=False)).encode()
    header = {"alg": "HS256", "kid": public.kid, "typ": "at+jwt"}
    # joserfc itself refuses a PEM public key as an HMAC secret, so sign by hand.
    signing_input = unsigned(header, mint.claims()).rsplit(".", 1)[0]
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64(mac)}"
    error = await refused(verifier, token)
    assert error.reason == "alg_not_allowed"
    assert idp.hits["jwks"] == 0  # refused before the key lookup


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
async def test_alg_none_is_refused(
    alg: str, idp: Tenant, mint: Minter, verifier: TokenVerifier
) -> None:
    header = {"alg": alg, "kid": idp.keys[0].kid, "typ": "at+jwt"}
    # The genuine "none" form has an empty signature: not even a JWS we would look at.
    assert (await refused(verifier, unsigned(header, mint.claims()))).reason == "malformed"
    with_signature = unsigned(header, mint.claims(), b"x" * 64)
    assert (await refused(verifier, with_signature)).reason == "alg_not_allowed"
    assert idp.hits["jwks"] == 0


@pytest.mark.parametrize("alg", [None, 256, ["ES256"], "HS512", "ES384"])
async def test_a_missing_or_foreign_alg_header_is_refused(
    alg: object, idp: Tenant, mint: Minter, verifier: TokenVerifier
) -> None:
    header: dict[str, Any] = {"kid": idp.keys[0].kid, "typ": "at+jwt"}
    if alg is not None:
        header["alg"] = alg
    error = await refused(verifier, unsigned(header, mint.claims(), b"x" * 64))
    assert error.reason in ("alg_not_allowed", "malformed")


@pytest.mark.parametrize(
    "algorithms", [["none"], ["HS256"], ["ES256", "HS384"], ["RSA-OAEP"], ["hs256"], []]
)
def test_none_symmetric_or_unknown_algorithms_cannot_be_configured(
    algorithms: list[str], idp: Tenant
) -> None:
    with pytest.raises(ValueError, match="never allowed"):
        TokenVerifier(idp.issuer, AUDIENCE, algorithms=algorithms)


async def test_an_algorithm_outside_the_configured_allowlist_is_refused(
    keys: Keys, mint: Minter, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(algorithms=["ES256"])
    error = await refused(verifier, mint.token(keys.eddsa))
    assert error.reason == "alg_not_allowed"


async def test_an_alg_that_does_not_fit_the_key_type_of_the_kid_is_refused(
    keys: Keys, mint: Minter, verifier: TokenVerifier
) -> None:
    # Signed with the RSA key, but the header names the EC key's kid.
    token = mint.token(keys.rs256, header={"kid": keys.es256.kid})
    error = await refused(verifier, token)
    assert error.reason == "alg_not_allowed"


async def test_an_alg_other_than_the_jwks_own_alg_of_the_key_is_refused(
    idp: Tenant, mint: Minter, make_verifier: MakeVerifier
) -> None:
    # The RSA key is published with "alg": "RS256"; a PS256 signature by it must not pass
    # even though PS256 is allowed and is an RSA algorithm (RFC 7517 section 4.4).
    rsa = new_key("RS256")
    idp.keys.append(rsa)
    verifier = make_verifier(algorithms=["RS256", "PS256"])
    pss = RSAKey.import_key(rsa.as_dict(private=True) | {"alg": "PS256"})
    token = mint.token(pss, alg="PS256")
    error = await refused(verifier, token)
    assert error.reason == "alg_not_allowed"
    assert (await verifier.verify(mint.token(rsa))).subject == "user-1"


# -- explicit typing (RFC 8725 section 3.11, RFC 9068 section 4) ------------------------------


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "AT+JWT", "Application/At+JWT"])
async def test_the_access_token_typ_is_accepted_in_any_spelling(
    typ: str, mint: Minter, verifier: TokenVerifier
) -> None:
    verified = await verifier.verify(mint.token(header={"typ": typ}))
    assert verified.header["typ"] == typ


@pytest.mark.parametrize("typ", [None, "JWT", "jwt", "id_token+jwt", "at+jwt+x", 1])
async def test_a_missing_or_other_typ_is_refused(
    typ: object, idp: Tenant, mint: Minter, verifier: TokenVerifier
) -> None:
    token = mint.token(header={"typ": typ}) if isinstance(typ, str | None) else None
    if token is None:  # a non-string typ no library will sign: assemble it by hand
        token = unsigned(
            {"alg": "ES256", "kid": idp.keys[0].kid, "typ": typ}, mint.claims(), b"x" * 64
        )
    error = await refused(verifier, token)
    assert error.reason == "wrong_typ"


async def test_the_typ_check_can_be_configured_off(
    mint: Minter, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(expected_typ=None)
    assert (await verifier.verify(mint.token(header={"typ": "JWT"}))).subject == "user-1"


# -- registered claims (RFC 7519 section 4.1, RFC 9068 section 4) -----------------------------


async def test_a_wrong_issuer_is_refused(mint: Minter, verifier: TokenVerifier) -> None:
    error = await refused(verifier, mint.token(iss="https://evil.test"))
    assert error.reason == "wrong_issuer"


async def test_an_issuer_differing_only_by_a_trailing_slash_is_refused(
    idp: Tenant, mint: Minter, verifier: TokenVerifier
) -> None:
    error = await refused(verifier, mint.token(iss=idp.issuer + "/"))
    assert error.reason == "wrong_issuer"


@pytest.mark.parametrize("aud", ["https://other.test", ["https://other.test"], [], None, 7])
async def test_a_wrong_or_missing_audience_is_refused(
    aud: object, mint: Minter, verifier: TokenVerifier
) -> None:
    error = await refused(verifier, mint.token(aud=aud))
    assert error.reason == "wrong_audience"


async def test_a_token_is_accepted_until_exp_plus_leeway(
    mint: Minter, verifier: TokenVerifier, clock: Clock
) -> None:
    token = mint.token()  # exp = now + 300 s; default leeway 30 s
    clock.advance(seconds=300 + 29)
    assert (await verifier.verify(token)).subject == "user-1"
    clock.advance(seconds=1)
    error = await refused(verifier, token)
    assert error.reason == "expired"
    assert error.status_code == 401


async def test_an_expired_token_beyond_the_leeway_is_refused(
    mint: Minter, verifier: TokenVerifier, clock: Clock
) -> None:
    now = int(clock().timestamp())
    error = await refused(verifier, mint.token(iat=now - 600, exp=now - 31))
    assert error.reason == "expired"


async def test_the_leeway_is_configurable(
    mint: Minter, make_verifier: MakeVerifier, clock: Clock
) -> None:
    verifier = make_verifier(leeway=timedelta(0))
    token = mint.token()
    clock.advance(seconds=300)
    assert (await refused(verifier, token)).reason == "expired"


async def test_nbf_in_the_future_beyond_the_leeway_is_refused(
    mint: Minter, verifier: TokenVerifier, clock: Clock
) -> None:
    now = int(clock().timestamp())
    error = await refused(verifier, mint.token(nbf=now + 60))
    assert error.reason == "not_yet_valid"
    assert (await verifier.verify(mint.token(nbf=now + 29))).subject == "user-1"


async def test_iat_in_the_future_beyond_the_leeway_is_refused(
    mint: Minter, verifier: TokenVerifier, clock: Clock
) -> None:
    now = int(clock().timestamp())
    error = await refused(verifier, mint.token(iat=now + 60))
    assert error.reason == "not_yet_valid"
    assert (await verifier.verify(mint.token(iat=now + 29))).subject == "user-1"


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "client_id", "jti"])
async def test_a_claim_rfc_9068_requires_is_required(
    claim: str, mint: Minter, verifier: TokenVerifier
) -> None:
    overrides: dict[str, Any] = {claim: None}
    error = await refused(verifier, mint.token(**overrides))
    assert error.reason == "malformed"


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("exp", "1767272400"),
        ("exp", True),
        ("exp", -1),
        ("exp", 10**20),
        ("nbf", [1]),
        ("sub", 42),
        ("sub", ""),
        ("client_id", ["c"]),
        ("scope", ["models:read"]),
        ("sid", 5),
    ],
)
async def test_a_claim_of_the_wrong_type_is_refused(
    claim: str, value: object, mint: Minter, verifier: TokenVerifier
) -> None:
    overrides: dict[str, Any] = {claim: value}
    error = await refused(verifier, mint.token(**overrides))
    assert error.reason == "malformed"


@pytest.mark.parametrize("literal", ["Infinity", "NaN", "1e999"])
async def test_a_non_finite_exp_is_refused(
    literal: str, idp: Tenant, mint: Minter, verifier: TokenVerifier
) -> None:
    # Python's json accepts these; exp=Infinity must not mean "never expires".
    claims = json.dumps({**mint.claims(), "exp": 0}).replace('"exp": 0', f'"exp": {literal}')
    key = idp.keys[0]
    token = sign_raw(key, {"alg": "ES256", "kid": key.kid, "typ": "at+jwt"}, claims.encode())
    error = await refused(verifier, token)
    assert error.reason == "malformed"


# -- scopes (RFC 9068 section 2.2.3, RFC 6750 section 3.1) -----------------------------------


async def test_missing_required_scopes_are_insufficient_scope_403(
    mint: Minter, verifier: TokenVerifier
) -> None:
    error = await refused(verifier, mint.token(), "models:read", "admin", "billing")
    assert error.reason == "insufficient_scope"
    assert error.status_code == 403
    assert error.required_scopes == ("models:read", "admin", "billing")
    assert 'scope="models:read admin billing"' in error.www_authenticate()


async def test_scope_is_matched_by_whole_space_separated_tokens(
    mint: Minter, verifier: TokenVerifier
) -> None:
    token = mint.token(scope="models:readwrite  models")
    assert (await refused(verifier, token, "models:read")).reason == "insufficient_scope"
    assert (await verifier.verify(token, ["models"])).scopes == {"models:readwrite", "models"}


async def test_required_scopes_may_be_one_space_separated_string(
    mint: Minter, verifier: TokenVerifier
) -> None:
    verified = await verifier.verify(mint.token(), "models:read models:write")
    assert verified.scopes == {"models:read", "models:write"}
    error = await refused(verifier, mint.token(scope="models:read"), "models:read models:write")
    assert error.required_scopes == ("models:read", "models:write")


# -- structure (RFC 7515 section 7.1, RFC 7519 section 7.2) -----------------------------------


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b", "a.b.c", "a.b.c.d.e", "...", "é.é.é", "eyJhbGciOiJFUzI1NiJ9..x"],
)
async def test_garbage_is_malformed(token: str, idp: Tenant, verifier: TokenVerifier) -> None:
    error = await refused(verifier, token)
    assert error.reason == "malformed"
    assert idp.hits["jwks"] == 0


async def test_a_header_that_is_not_an_object_is_malformed(verifier: TokenVerifier) -> None:
    token = f"{b64(b'[1]')}.{b64(b'{}')}.{b64(b'x')}"
    assert (await refused(verifier, token)).reason == "malformed"


@pytest.mark.parametrize("payload", [b"[1, 2]", b"not json", b'"a string"'])
async def test_a_signed_payload_that_is_not_a_json_object_is_malformed(
    payload: bytes, idp: Tenant, verifier: TokenVerifier
) -> None:
    key = idp.keys[0]
    token = sign_raw(key, {"alg": "ES256", "kid": key.kid, "typ": "at+jwt"}, payload)
    assert (await refused(verifier, token)).reason == "malformed"


async def test_a_token_without_kid_is_malformed(mint: Minter, verifier: TokenVerifier) -> None:
    error = await refused(verifier, mint.token(header={"kid": None}))
    assert error.reason == "malformed"


@pytest.mark.parametrize(
    "extra", [{"crit": ["x-ext"], "x-ext": "v"}, {"b64": False, "crit": ["b64"]}, {"b64": True}]
)
async def test_jws_extensions_are_refused(
    extra: dict[str, Any], idp: Tenant, mint: Minter, verifier: TokenVerifier
) -> None:
    # RFC 7515 section 4.1.11: reject a crit extension we do not understand (we understand none).
    key = idp.keys[0]
    header = {"alg": "ES256", "kid": key.kid, "typ": "at+jwt", **extra}
    registry = jws.JWSRegistry(algorithms=["ES256"], strict_check_header=False)
    registry.header_registry["x-ext"] = registry.header_registry["kid"]
    payload = json.dumps(mint.claims()).encode()
    if extra.get("b64") is False:
        token = unsigned(header, mint.claims())
    else:
        token = jws.serialize_compact(header, payload, key, registry=registry)
    assert (await refused(verifier, token)).reason == "malformed"


async def test_key_location_headers_are_never_followed(
    idp: Tenant, mint: Minter, verifier: TokenVerifier
) -> None:
    # RFC 8725 section 3.10: a token cannot bring its own key; jwk / jku are ignored.
    attacker = new_key("ES256", kid=idp.keys[0].kid)
    header = {"jwk": attacker.as_dict(private=False), "jku": "http://127.0.0.1:9/jwks"}
    registry = jws.JWSRegistry(algorithms=["ES256"], strict_check_header=False)
    claims = json.dumps(mint.claims()).encode()
    protected = {"alg": "ES256", "kid": attacker.kid, "typ": "at+jwt", **header}
    token = jws.serialize_compact(protected, claims, attacker, registry=registry)
    assert (await refused(verifier, token)).reason == "bad_signature"


# -- construction ----------------------------------------------------------------------------


@pytest.mark.parametrize("audience", ["", [], [""]])
def test_an_empty_audience_cannot_be_configured(audience: Any, idp: Tenant) -> None:
    with pytest.raises(ValueError, match="audience"):
        TokenVerifier(idp.issuer, audience)


def test_an_empty_issuer_cannot_be_configured() -> None:
    with pytest.raises(ValueError, match="issuer"):
        TokenVerifier("", AUDIENCE)


def test_a_negative_leeway_cannot_be_configured(idp: Tenant) -> None:
    with pytest.raises(ValueError, match="leeway"):
        TokenVerifier(idp.issuer, AUDIENCE, leeway=timedelta(seconds=-1))


async def test_the_default_clock_is_utc_wall_time(idp: Tenant, mint: Minter) -> None:
    mint.clock.now = datetime.now(UTC)
    async with TokenVerifier(idp.issuer, AUDIENCE) as verifier:
        assert (await verifier.verify(mint.token())).subject == "user-1"
