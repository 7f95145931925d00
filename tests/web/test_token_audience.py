"""Who a token is for, through the endpoints (issue 9, item 7).

- RFC 7662 section 4 (introspection): an access token is described to the client it was
  issued to and to resource servers registered for one of its audiences; a refresh token to
  its client only; anyone else gets ``{"active": false}`` (section 2.2).
- RFC 6750 section 3.1 / RFC 9068 section 4: ``/userinfo`` accepts only access tokens whose
  ``aud`` includes this issuer; ``invalid_token`` otherwise.
- RFC 8707 section 2.2: at the token endpoint ``resource`` may repeat, narrows the access
  token's audience to granted resources, and is ``invalid_target`` when not granted (for
  authorization_code, refresh_token and client_credentials alike).

Requests are plain form posts with httpx (repeated keys where the RFC allows them) and
Authlib; tokens are read with joserfc against the published JWKS.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import KeySet

from ostiary.features.clients.service import ClientRegistration
from tests.web.helpers import PASSWORD, sign_in

ISSUER = "http://testserver"
REDIRECT = "https://app.example/callback"
API = "https://api.example"
FILES = "https://files.example"
OTHER = "https://other.example"


@pytest.fixture
async def setup(app: Any, client: httpx.AsyncClient) -> dict[str, Any]:
    async with app.state.runtime.unit() as unit:
        await unit.keys.ensure_keys()
        user = await unit.accounts.create_user("ada@example.com", PASSWORD, email_verified=True)
        clients: dict[str, Any] = {}
        for name, registration in {
            # A first-party web app whose users may get tokens for two APIs and this issuer.
            "web": ClientRegistration(
                name="Web",
                redirect_uris=(REDIRECT,),
                resources=(API, FILES, ISSUER, OTHER),
                first_party=True,
            ),
            "machine": ClientRegistration(
                name="Batch",
                grant_types=("client_credentials",),
                scopes=("models:read",),
                resources=(API, FILES),
            ),
            "nosy": ClientRegistration(
                name="Nosy", grant_types=("client_credentials",), scopes=("models:read",)
            ),
            "api": ClientRegistration(
                name="API",
                grant_types=("client_credentials",),
                scopes=("models:read",),
                introspection_audiences=(API,),
            ),
            "userinfo_rs": ClientRegistration(
                name="Issuer RS",
                grant_types=("client_credentials",),
                scopes=("models:read",),
                introspection_audiences=(ISSUER,),
            ),
        }.items():
            registered, secret = await unit.clients.register(registration)
            clients[name] = (registered.client_id, secret)
    assert (await sign_in(client, user.email)).status_code == 303
    return {"user": user, "clients": clients}


async def _jwks(client: httpx.AsyncClient) -> KeySet:
    return KeySet.import_key_set((await client.get("/.well-known/jwks.json")).json())


async def _aud(client: httpx.AsyncClient, token: str) -> list[str]:
    aud = jwt.decode(token, await _jwks(client), algorithms=["ES256"]).claims["aud"]
    return [aud] if isinstance(aud, str) else list(aud)


async def _code(client: httpx.AsyncClient, web: tuple[str, str], *resources: str) -> dict[str, str]:
    """A code from /authorize for a signed-in user and a first-party client (no consent page),
    with ``resource`` repeated; returns the token request form for it."""
    verifier = generate_token(48)
    query = [
        ("response_type", "code"),
        ("client_id", web[0]),
        ("redirect_uri", REDIRECT),
        ("scope", "openid email"),
        ("state", secrets.token_urlsafe(8)),
        ("code_challenge", create_s256_code_challenge(verifier)),
        ("code_challenge_method", "S256"),
        *(("resource", r) for r in resources),
    ]
    response = await client.get("/authorize?" + urlencode(query))
    assert response.status_code == 303, response.text
    code = parse_qs(urlsplit(response.headers["location"]).query)["code"][0]
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }


async def _token(
    client: httpx.AsyncClient, who: tuple[str, str], form: dict[str, Any]
) -> httpx.Response:
    return await client.post("/token", data=form, auth=who)


async def _introspect(
    client: httpx.AsyncClient, who: tuple[str, str], token: str
) -> dict[str, Any]:
    response = await client.post("/introspect", data={"token": token}, auth=who)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# -- resource at the token endpoint (RFC 8707 section 2.2) --------------------------------


async def test_code_grant_resource_narrows_repeats_and_is_refused_when_not_granted(
    client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    web = setup["clients"]["web"]
    form = await _code(client, web, API, FILES)
    # OTHER is registered for the client but was not granted with this code.
    refused = await _token(client, web, {**form, "resource": [API, OTHER]})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_target"
    narrowed = await _token(client, web, {**form, "resource": FILES})  # the code still works
    assert narrowed.status_code == 200, narrowed.text
    tokens = narrowed.json()
    assert await _aud(client, tokens["access_token"]) == [FILES]

    # Refresh: any granted subset, repeated; the family keeps the whole grant.
    both = await _token(
        client,
        web,
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "resource": [FILES, API],
        },
    )
    assert both.status_code == 200, both.text
    assert await _aud(client, both.json()["access_token"]) == [FILES, API]
    not_granted = await _token(
        client,
        web,
        {
            "grant_type": "refresh_token",
            "refresh_token": both.json()["refresh_token"],
            "resource": OTHER,
        },
    )
    assert not_granted.status_code == 400 and not_granted.json()["error"] == "invalid_target"
    # A refused refresh spends nothing: the same refresh token still works, for everything.
    everything = await _token(
        client,
        web,
        {"grant_type": "refresh_token", "refresh_token": both.json()["refresh_token"]},
    )
    assert everything.status_code == 200, everything.text
    assert await _aud(client, everything.json()["access_token"]) == [API, FILES]


async def test_without_resources_granted_only_the_issuer_may_be_asked_for(
    client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    web = setup["clients"]["web"]
    form = await _code(client, web)
    assert (await _token(client, web, {**form, "resource": API})).json()["error"] == (
        "invalid_target"
    )
    issued = await _token(client, web, {**form, "resource": ISSUER})
    assert await _aud(client, issued.json()["access_token"]) == [ISSUER]


async def test_client_credentials_resources_repeat_and_narrow(
    app: Any, client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    machine = setup["clients"]["machine"]
    async with AsyncOAuth2Client(
        client_id=machine[0],
        client_secret=machine[1],
        transport=httpx.ASGITransport(app=app),
        base_url=ISSUER,
    ) as oauth:
        token = await oauth.fetch_token(
            f"{ISSUER}/token", grant_type="client_credentials", resource=FILES
        )
    assert await _aud(client, token["access_token"]) == [FILES]
    default = await _token(client, machine, {"grant_type": "client_credentials"})
    assert await _aud(client, default.json()["access_token"]) == [API, FILES]
    both = await _token(
        client, machine, {"grant_type": "client_credentials", "resource": [FILES, API]}
    )
    assert await _aud(client, both.json()["access_token"]) == [FILES, API]
    for refused in ([API, OTHER], [OTHER], [""]):
        response = await _token(
            client, machine, {"grant_type": "client_credentials", "resource": refused}
        )
        assert response.status_code == 400 and response.json()["error"] == "invalid_target"


async def test_only_resource_may_repeat(client: httpx.AsyncClient, setup: dict[str, Any]) -> None:
    machine = setup["clients"]["machine"]
    response = await _token(
        client, machine, {"grant_type": "client_credentials", "scope": ["models:read"] * 2}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "repeated" in response.json()["error_description"]


# -- /userinfo and the audience (RFC 6750 section 3.1) -----------------------------------


async def test_userinfo_refuses_tokens_for_another_audience(
    client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    web = setup["clients"]["web"]
    api_only = (await _token(client, web, await _code(client, web, API))).json()
    response = await client.get(
        "/userinfo", headers={"Authorization": f"Bearer {api_only['access_token']}"}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]

    with_issuer = (await _token(client, web, await _code(client, web, API, ISSUER))).json()
    assert await _aud(client, with_issuer["access_token"]) == [API, ISSUER]
    response = await client.get(
        "/userinfo", headers={"Authorization": f"Bearer {with_issuer['access_token']}"}
    )
    assert response.status_code == 200
    assert response.json()["sub"] == setup["user"].id


# -- introspection (RFC 7662 section 4) --------------------------------------------------


async def test_introspection_by_the_tokens_client_and_registered_resource_servers_only(
    client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    clients = setup["clients"]
    web, api, nosy, issuer_rs = (clients[n] for n in ("web", "api", "nosy", "userinfo_rs"))
    for_api = (await _token(client, web, await _code(client, web, API, FILES))).json()
    for_issuer = (await _token(client, web, await _code(client, web))).json()

    own = await _introspect(client, web, for_api["access_token"])
    assert own["active"] is True and own["sub"] == setup["user"].id
    by_rs = await _introspect(client, api, for_api["access_token"])
    assert by_rs["active"] is True and by_rs["aud"] == [API, FILES]
    assert by_rs["scope"] == "openid email"
    # Another client, and a resource server of another audience, learn nothing.
    assert await _introspect(client, nosy, for_api["access_token"]) == {"active": False}
    assert await _introspect(client, issuer_rs, for_api["access_token"]) == {"active": False}
    assert await _introspect(client, api, for_issuer["access_token"]) == {"active": False}
    assert (await _introspect(client, issuer_rs, for_issuer["access_token"]))["active"] is True

    # Refresh tokens: their client only, even for a resource server of their audience.
    assert (await _introspect(client, web, for_api["refresh_token"]))["active"] is True
    for other in (api, nosy):
        assert await _introspect(client, other, for_api["refresh_token"]) == {"active": False}


async def test_a_client_introspects_its_own_client_credentials_token(
    client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    machine, nosy, api = (setup["clients"][n] for n in ("machine", "nosy", "api"))
    token = (await _token(client, machine, {"grant_type": "client_credentials"})).json()
    assert (await _introspect(client, machine, token["access_token"]))["active"] is True
    assert (await _introspect(client, api, token["access_token"]))["active"] is True  # aud API
    assert await _introspect(client, nosy, token["access_token"]) == {"active": False}
    nosy_token = (await _token(client, nosy, {"grant_type": "client_credentials"})).json()
    assert await _introspect(client, machine, nosy_token["access_token"]) == {"active": False}
