"""ostiary.verify._jwks: discovery, the JWKS cache, rotation and refetch rate limiting.

Every count below is of requests the fake authorization server really received over HTTP.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from typing import Any

import httpx
import pytest
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OctKey, RSAKey

from ostiary.verify import TokenError, TokenVerifier
from ostiary.verify._http import MAX_BODY_BYTES, FetchError, request_json
from ostiary.verify._jwks import _metadata_urls, key_fits_alg, parse_jwks
from tests.verify.conftest import (
    AUDIENCE,
    Clock,
    FakeAuthorizationServer,
    Keys,
    MakeVerifier,
    Minter,
    Tenant,
    new_key,
)


async def refused(verifier: TokenVerifier, token: str) -> TokenError:
    with pytest.raises(TokenError) as caught:
        await verifier.verify(token)
    return caught.value


# -- discovery (OpenID Connect Discovery section 4, RFC 8414 section 3) ----------------------


async def test_keys_are_found_through_openid_configuration(
    idp: Tenant, mint: Minter, verifier: TokenVerifier
) -> None:
    await verifier.verify(mint.token())
    assert idp.hits == {"oidc": 1, "jwks": 1}


async def test_rfc_8414_metadata_is_the_fallback(
    idp: Tenant, mint: Minter, verifier: TokenVerifier
) -> None:
    idp.discovery = "oauth"
    await verifier.verify(mint.token())
    assert idp.hits == {"oidc": 1, "oauth": 1, "jwks": 1}


async def test_well_known_jwks_json_is_the_last_resort(
    idp: Tenant, mint: Minter, verifier: TokenVerifier
) -> None:
    idp.discovery = "none"
    await verifier.verify(mint.token())
    assert idp.hits == {"oidc": 1, "oauth": 1, "jwks": 1}


def test_rfc_8414_inserts_the_well_known_path_before_the_issuer_path() -> None:
    assert _metadata_urls("https://id.example/tenant/a/") == [
        "https://id.example/tenant/a/.well-known/openid-configuration",
        "https://id.example/.well-known/oauth-authorization-server/tenant/a",
    ]
    assert _metadata_urls("https://id.example") == [
        "https://id.example/.well-known/openid-configuration",
        "https://id.example/.well-known/oauth-authorization-server",
    ]


@pytest.mark.parametrize("discovery", ["oidc", "oauth"])
async def test_metadata_naming_another_issuer_is_not_used(
    discovery: str, idp: Tenant, mint: Minter, verifier: TokenVerifier
) -> None:
    # OpenID Connect Discovery section 4.3 / RFC 8414 section 3.3: the issuer must be identical.
    idp.discovery = discovery
    idp.metadata_issuer = idp.issuer + "/"
    error = await refused(verifier, mint.token())
    assert error.reason == "jwks_unavailable"
    assert error.status_code == 503
    assert idp.hits["jwks"] == 0  # no key is taken from a mismatched document
    assert idp.hits["oauth"] == (1 if discovery == "oauth" else 0)  # and no fallback either


async def test_a_verifier_configured_with_another_issuer_finds_no_keys(
    idp: Tenant, auth_server: FakeAuthorizationServer, mint: Minter, make_verifier: MakeVerifier
) -> None:
    # The metadata lives at the configured issuer's URL but names the real one.
    other = auth_server.tenant()
    other.metadata_issuer = idp.issuer
    verifier = make_verifier(issuer=other.issuer)
    assert (await refused(verifier, mint.token(iss=other.issuer))).reason == "jwks_unavailable"


async def test_an_unreachable_issuer_is_jwks_unavailable(mint: Minter) -> None:
    async with TokenVerifier("http://127.0.0.1:9/nothing", AUDIENCE) as verifier:
        error = await refused(verifier, mint.token())
    assert error.reason == "jwks_unavailable"


async def test_prefetch_loads_the_keys_so_the_first_token_costs_no_request(
    idp: Tenant, mint: Minter, verifier: TokenVerifier
) -> None:
    await verifier.prefetch()
    assert idp.hits == {"oidc": 1, "jwks": 1}
    await verifier.verify(mint.token())
    assert idp.hits == {"oidc": 1, "jwks": 1}


async def test_prefetch_fails_loudly_when_keys_are_unavailable(
    idp: Tenant, verifier: TokenVerifier
) -> None:
    idp.jwks_status = 500
    with pytest.raises(TokenError) as caught:
        await verifier.prefetch()
    assert caught.value.reason == "jwks_unavailable"


async def test_a_caller_supplied_http_client_is_used_and_left_open(
    idp: Tenant, mint: Minter, make_verifier: MakeVerifier
) -> None:
    async with httpx.AsyncClient() as http:
        verifier = make_verifier(http=http)
        await verifier.verify(mint.token())
        await verifier.aclose()
        assert not http.is_closed
        assert idp.hits["jwks"] == 1


# -- caching ---------------------------------------------------------------------------------


async def test_keys_are_cached_for_the_ttl_then_refetched(
    idp: Tenant, mint: Minter, verifier: TokenVerifier, clock: Clock
) -> None:
    for _ in range(5):
        await verifier.verify(mint.token())
    assert idp.hits["jwks"] == 1
    clock.advance(minutes=4, seconds=59)
    await verifier.verify(mint.token())
    assert idp.hits["jwks"] == 1
    clock.advance(seconds=1)
    await verifier.verify(mint.token())
    assert idp.hits == {"oidc": 1, "jwks": 2}  # metadata is not refetched with the keys


async def test_concurrent_first_requests_share_one_fetch(
    idp: Tenant, mint: Minter, verifier: TokenVerifier
) -> None:
    results = await asyncio.gather(*(verifier.verify(mint.token()) for _ in range(20)))
    assert len(results) == 20
    assert idp.hits == {"oidc": 1, "jwks": 1}


async def test_a_key_removed_from_the_jwks_stops_verifying_after_the_ttl(
    idp: Tenant, keys: Keys, mint: Minter, verifier: TokenVerifier, clock: Clock
) -> None:
    token = mint.token(keys.rs256, exp=int(clock().timestamp()) + 3600)
    await verifier.verify(token)
    idp.keys.remove(keys.rs256)
    clock.advance(minutes=5)
    assert (await refused(verifier, token)).reason == "unknown_kid"


async def test_stale_keys_stay_in_use_while_the_jwks_endpoint_fails(
    idp: Tenant, mint: Minter, verifier: TokenVerifier, clock: Clock
) -> None:
    await verifier.verify(mint.token())
    idp.jwks_status = 503
    clock.advance(minutes=6)
    await verifier.verify(mint.token())  # refetch fails; the held keys still verify
    fetches = idp.hits["jwks"]
    assert fetches == 2
    clock.advance(seconds=10)
    await verifier.verify(mint.token())  # within min_refetch_interval: no retry
    assert idp.hits["jwks"] == fetches
    idp.jwks_status = 200
    clock.advance(seconds=20)
    await verifier.verify(mint.token())
    assert idp.hits["jwks"] == fetches + 1


async def test_an_unavailable_jwks_is_retried_only_once_per_interval(
    idp: Tenant, mint: Minter, verifier: TokenVerifier, clock: Clock
) -> None:
    idp.jwks_status = 500
    for _ in range(10):
        assert (await refused(verifier, mint.token())).reason == "jwks_unavailable"
    assert idp.hits["jwks"] == 1
    idp.jwks_status = 200
    clock.advance(seconds=30)
    assert (await verifier.verify(mint.token())).subject == "user-1"
    assert idp.hits["jwks"] == 2
    # A failed key fetch forgets the metadata (the jwks_uri may have moved): discovered again.
    assert idp.hits["oidc"] == 2


async def test_a_clock_stepping_backwards_does_not_freeze_the_cache(
    idp: Tenant, mint: Minter, verifier: TokenVerifier, clock: Clock
) -> None:
    await verifier.verify(mint.token())
    clock.advance(hours=-1)
    unknown = mint.token(new_key("ES256"))
    assert (await refused(verifier, unknown)).reason == "unknown_kid"
    assert idp.hits["jwks"] == 2


# -- rotation and unknown kid ----------------------------------------------------------------


async def test_a_new_key_after_rotation_verifies_after_exactly_one_refetch(
    idp: Tenant, mint: Minter, verifier: TokenVerifier, clock: Clock
) -> None:
    await verifier.verify(mint.token())
    assert idp.hits["jwks"] == 1
    rotated = new_key("ES256")
    idp.keys.insert(0, rotated)
    token = mint.token(rotated)
    # Right after a fetch, an unknown kid does not trigger another (min_refetch_interval).
    assert (await refused(verifier, token)).reason == "unknown_kid"
    assert idp.hits["jwks"] == 1
    clock.advance(seconds=30)
    verified = await verifier.verify(token)
    assert verified.header["kid"] == rotated.kid
    assert idp.hits["jwks"] == 2
    await verifier.verify(token)
    assert idp.hits["jwks"] == 2


async def test_a_new_key_verifies_at_once_when_the_interval_is_zero(
    idp: Tenant, mint: Minter, make_verifier: MakeVerifier
) -> None:
    verifier = make_verifier(min_refetch_interval=timedelta(0))
    await verifier.verify(mint.token())
    rotated = new_key("EdDSA")
    idp.keys.append(rotated)
    assert (await verifier.verify(mint.token(rotated))).header["kid"] == rotated.kid
    assert idp.hits["jwks"] == 2


async def test_a_flood_of_unknown_kids_costs_at_most_one_fetch_per_interval(
    idp: Tenant, mint: Minter, verifier: TokenVerifier, clock: Clock
) -> None:
    await verifier.verify(mint.token())
    clock.advance(seconds=30)
    forged = [mint.token(header={"kid": secrets.token_hex(8)}) for _ in range(50)]
    errors = await asyncio.gather(*(refused(verifier, t) for t in forged))
    assert {e.reason for e in errors} == {"unknown_kid"}
    assert idp.hits["jwks"] == 2  # one extra fetch for the whole concurrent flood
    for token in forged:
        assert (await refused(verifier, token)).reason == "unknown_kid"
    assert idp.hits["jwks"] == 2  # and none for the sequential one within the interval
    clock.advance(seconds=29)
    assert (await refused(verifier, forged[0])).reason == "unknown_kid"
    assert idp.hits["jwks"] == 2
    clock.advance(seconds=1)
    assert (await refused(verifier, forged[0])).reason == "unknown_kid"
    assert idp.hits["jwks"] == 3


async def test_a_flood_right_after_the_first_fetch_costs_nothing_more(
    idp: Tenant, mint: Minter, verifier: TokenVerifier
) -> None:
    forged = [mint.token(header={"kid": secrets.token_hex(8)}) for _ in range(50)]
    errors = await asyncio.gather(*(refused(verifier, t) for t in forged))
    assert {e.reason for e in errors} == {"unknown_kid"}
    assert idp.hits == {"oidc": 1, "jwks": 1}


# -- which JWKs are used (RFC 7517) ----------------------------------------------------------


def _jwk(key: Any, **extra: Any) -> dict[str, Any]:
    return {**key.as_dict(private=False), **extra}


def test_only_public_asymmetric_signature_keys_are_taken(keys: Keys) -> None:
    with pytest.warns(SecurityWarning):
        small_rsa = RSAKey.generate_key(1024, parameters={"kid": "small"})
    document = {
        "keys": [
            _jwk(keys.es256),
            {"kty": "oct", "kid": "oct", "k": "c2VjcmV0"},
            _jwk(keys.rs256, kid="enc", use="enc"),
            _jwk(keys.rs256, kid="wrap", key_ops=["wrapKey"]),
            _jwk(keys.rs256, kid="verify", key_ops=["verify"]),
            keys.eddsa.as_dict(private=True) | {"kid": "private"},
            _jwk(small_rsa),
            _jwk(keys.es256, kid=None),
            {"kty": "EC", "kid": "broken", "crv": "P-256", "x": "AAAA", "y": "AAAA"},
            {"kty": "XYZ", "kid": "unknown"},
            "not an object",
        ]
    }
    parsed = parse_jwks(document)
    assert set(parsed) == {keys.es256.kid, "verify"}


def test_a_jwks_without_a_keys_array_is_refused() -> None:
    with pytest.raises(FetchError):
        parse_jwks({"keys": {}})


def test_keys_sharing_a_kid_are_told_apart_by_the_alg(keys: Keys) -> None:
    # RFC 7517 section 4.5: keys of different kty may share a kid.
    parsed = parse_jwks({"keys": [_jwk(keys.es256, kid="k"), _jwk(keys.rs256, kid="k")]})
    ec, rsa = parsed["k"]
    assert key_fits_alg(ec, "ES256")
    assert not key_fits_alg(ec, "RS256")
    assert key_fits_alg(rsa, "RS256")
    assert not key_fits_alg(rsa, "ES256")


async def test_a_token_picks_its_key_among_keys_sharing_a_kid(
    idp: Tenant, keys: Keys, mint: Minter, verifier: TokenVerifier
) -> None:
    shared_ec = ECKey.import_key(keys.es256.as_dict(private=True) | {"kid": "shared"})
    shared_rsa = RSAKey.import_key(keys.rs256.as_dict(private=True) | {"kid": "shared"})
    idp.keys = [shared_ec, shared_rsa]
    assert (await verifier.verify(mint.token(shared_rsa))).header["alg"] == "RS256"
    assert (await verifier.verify(mint.token(shared_ec))).header["alg"] == "ES256"


def test_curves_must_match_the_algorithm() -> None:
    p384 = ECKey.generate_key("P-384")
    assert key_fits_alg(p384, "ES384")
    assert not key_fits_alg(p384, "ES256")
    assert not key_fits_alg(OctKey.generate_key(256), "HS256")  # type: ignore[arg-type]


async def test_an_hs256_token_naming_an_oct_key_published_in_the_jwks_is_refused(
    idp: Tenant, mint: Minter, make_verifier: MakeVerifier
) -> None:
    # Even a (misconfigured) JWKS that publishes a secret cannot enable HMAC.
    secret = OctKey.generate_key(256, parameters={"kid": "hmac", "alg": "HS256"})
    idp.keys.append(secret)  # type: ignore[arg-type]
    verifier = make_verifier(algorithms=["ES256"])
    assert (await refused(verifier, mint.token(secret))).reason == "alg_not_allowed"
    es256_kid_of_secret = mint.token(header={"kid": "hmac"})
    assert (await refused(verifier, es256_kid_of_secret)).reason == "unknown_kid"


# -- bounded HTTP ----------------------------------------------------------------------------


async def test_oversized_and_non_object_answers_are_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/big":
            return httpx.Response(200, content=b"[" + b"0," * MAX_BODY_BYTES + b"0]")
        if request.url.path == "/list":
            return httpx.Response(200, json=[1])
        return httpx.Response(200, content=b"{not json")

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        for path in ("/big", "/list", "/garbage"):
            with pytest.raises(FetchError):
                await request_json(http, "GET", f"http://x{path}")
        with pytest.raises(FetchError):
            await request_json(http, "GET", "http://[bad")
