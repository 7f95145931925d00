"""private_key_jwt client authentication (RFC 7523), with Authlib and hand-made assertions."""

from __future__ import annotations

import base64
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc import jws, jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

from ostiary.features.clients.service import ClientRegistration
from ostiary.features.clock import FrozenClock

ISSUER = "http://testserver"
TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture
def clock() -> FrozenClock:
    """Assertions are made with the wall clock, so the server's clock starts there too."""
    return FrozenClock(datetime.now(UTC))


@pytest.fixture
async def keyed_client(app: Any) -> tuple[Any, RSAKey]:
    key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    async with app.state.runtime.unit() as unit:
        await unit.keys.ensure_keys()
        client, secret = await unit.clients.register(
            ClientRegistration(
                name="signed",
                grant_types=("client_credentials",),
                scopes=("models:read",),
                auth_method="private_key_jwt",
                jwks={"keys": [key.as_dict(private=False)]},
            )
        )
    assert secret is None
    return client, key


def _assertion(client_id: str, key: Any, alg: str = "RS256", **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": f"{ISSUER}/token",
        "exp": now + 60,
        "iat": now,
        "jti": str(uuid.uuid4()),
    }
    claims.update(overrides)
    return jwt.encode({"alg": alg, "kid": "k1"}, claims, key)


async def _token(client: httpx.AsyncClient, assertion: str) -> httpx.Response:
    return await client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": TYPE,
            "client_assertion": assertion,
        },
    )


async def test_authlib_private_key_jwt(app: Any, keyed_client: tuple[Any, RSAKey]) -> None:
    client, key = keyed_client
    oauth = AsyncOAuth2Client(
        client_id=client.client_id,
        client_secret=key.as_pem(private=True).decode(),
        token_endpoint_auth_method=PrivateKeyJWT(f"{ISSUER}/token", alg="RS256"),
        transport=httpx.ASGITransport(app=app),
        base_url=ISSUER,
    )
    token = await oauth.fetch_token(
        f"{ISSUER}/token", grant_type="client_credentials", scope="models:read"
    )
    assert token["token_type"] == "Bearer" and token["scope"] == "models:read"


async def test_replayed_assertion_is_refused(
    client: httpx.AsyncClient, keyed_client: tuple[Any, RSAKey]
) -> None:
    c, key = keyed_client
    assertion = _assertion(c.client_id, key)
    assert (await _token(client, assertion)).status_code == 200
    replay = await _token(client, assertion)
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "overrides",
    [
        {"aud": "https://other.example/token"},
        {"iss": "someone-else"},
        {"exp": int(time.time()) - 3600},
        {"exp": int(time.time()) + 86400},
        {"jti": None},
        {"nbf": int(time.time()) + 3600},
    ],
)
async def test_bad_claims_are_refused(
    client: httpx.AsyncClient, keyed_client: tuple[Any, RSAKey], overrides: dict[str, Any]
) -> None:
    c, key = keyed_client
    claims = {k: v for k, v in overrides.items() if v is not None}
    assertion = _assertion(c.client_id, key, **claims)
    if overrides.get("jti", "x") is None:
        now = int(time.time())
        assertion = jwt.encode(
            {"alg": "RS256", "kid": "k1"},
            {"iss": c.client_id, "sub": c.client_id, "aud": f"{ISSUER}/token", "exp": now + 60},
            key,
        )
    response = await _token(client, assertion)
    assert response.status_code == 401


async def test_foreign_key_and_symmetric_algorithms_are_refused(
    client: httpx.AsyncClient, keyed_client: tuple[Any, RSAKey]
) -> None:
    c, _ = keyed_client
    other = RSAKey.generate_key(2048)
    assert (await _token(client, _assertion(c.client_id, other))).status_code == 401
    ec = ECKey.generate_key("P-256")
    assert (await _token(client, _assertion(c.client_id, ec, alg="ES256"))).status_code == 401
    hmac_key = OctKey.import_key(b"x" * 32)
    forged = jwt.encode(
        {"alg": "HS256"},
        {
            "iss": c.client_id,
            "sub": c.client_id,
            "aud": f"{ISSUER}/token",
            "exp": int(time.time()) + 60,
            "jti": "j",
        },
        hmac_key,
    )
    assert (await _token(client, forged)).status_code == 401


async def test_garbage_assertion_is_a_client_error(client: httpx.AsyncClient) -> None:
    for value in ("not-a-jwt", "a.b.c", "x" * 10000):
        response = await _token(client, value)
        assert response.status_code == 401
    wrong_type = await client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:x",
            "client_assertion": "a.b.c",
        },
    )
    assert wrong_type.status_code == 401


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _signed_raw(key: RSAKey, payload: bytes) -> str:
    """An RS256 JWS over ``payload`` exactly as given (joserfc's jwt.encode would re-serialize
    the claims, and json refuses nothing: nesting, NaN and 1e20 must reach the server)."""
    return jws.serialize_compact({"alg": "RS256", "kid": "k1"}, payload, key)


async def test_deeply_nested_json_is_invalid_client_not_a_server_error(
    client: httpx.AsyncClient, keyed_client: tuple[Any, RSAKey]
) -> None:
    c, key = keyed_client
    nested = b"[" * 40000
    unsigned = [
        f"{_b64(nested)}.{_b64(b'{}')}.AAAA",
        f"{_b64(b'{}')}.{_b64(nested)}.AAAA",
        f"{_b64(b'{}')}.{_b64(b'[' * 3000 + b']' * 3000)}.AAAA",  # fits the 8 KiB limit
    ]
    now = int(time.time())
    deep_claim = b'"x":' + b"[" * 900 + b"]" * 900
    signed = _signed_raw(
        key,
        b'{"iss":"%s","sub":"%s","aud":"%s/token","exp":%d,"jti":"%s",%s}'
        % (
            c.client_id.encode(),
            c.client_id.encode(),
            ISSUER.encode(),
            now + 60,
            uuid.uuid4().hex.encode(),
            deep_claim,
        ),
    )
    for assertion in [*unsigned, signed]:
        response = await _token(client, assertion)
        assert response.status_code == 401, (assertion[:40], response.text)
        assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "dates",
    [
        b'"exp":1e20',
        b'"exp":-1e20',
        b'"exp":Infinity',
        b'"exp":NaN',
        b'"exp":true',
        b'"exp":"soon"',
        b'"exp":%(exp)d,"nbf":1e20',
        b'"exp":%(exp)d,"iat":-1e300',
        b'"exp":%(exp)d,"iat":"now"',
        b'"exp":%(exp)d,"nbf":1' + b"0" * 400,
    ],
)
async def test_unusable_numeric_dates_are_invalid_client(
    client: httpx.AsyncClient, keyed_client: tuple[Any, RSAKey], dates: bytes
) -> None:
    c, key = keyed_client
    payload = b'{"iss":"%s","sub":"%s","aud":"%s","jti":"%s",%s}' % (
        c.client_id.encode(),
        c.client_id.encode(),
        ISSUER.encode(),
        uuid.uuid4().hex.encode(),
        dates % {b"exp": int(time.time()) + 60},
    )
    response = await _token(client, _signed_raw(key, payload))
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "aud",
    [
        [ISSUER, "https://attacker.example"],
        ["https://attacker.example", f"{ISSUER}/token"],
        [ISSUER, f"{ISSUER}/token"],  # ours twice is still not a single audience
        [],
        5,
        {"aud": ISSUER},
        f"{ISSUER}/introspect",
        f"{ISSUER}/",
    ],
)
async def test_audience_must_be_this_issuer_alone(
    client: httpx.AsyncClient, keyed_client: tuple[Any, RSAKey], aud: Any
) -> None:
    """draft-ietf-oauth-rfc7523bis: the issuer as the sole audience (the token endpoint alone
    is kept for older clients); an assertion that also names another server is refused."""
    c, key = keyed_client
    response = await _token(client, _assertion(c.client_id, key, aud=aud))
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize("aud", [ISSUER, f"{ISSUER}/token", [ISSUER], [f"{ISSUER}/token"]])
async def test_issuer_or_token_endpoint_alone_is_accepted(
    client: httpx.AsyncClient, keyed_client: tuple[Any, RSAKey], aud: Any
) -> None:
    c, key = keyed_client
    response = await _token(client, _assertion(c.client_id, key, aud=aud))
    assert response.status_code == 200, response.text
