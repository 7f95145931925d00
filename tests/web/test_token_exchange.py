"""RFC 8693 token exchange of an API key at /token (issue 12, section 3), driven with raw httpx
form posts and checked with joserfc against the published JWKS: the response of section
2.2.1, the claims, ``scope`` narrowing, ``resource``/``audience``, the lifetime cap by the key's
expiry, an authenticated client named in ``client_id``, the IP allowlist on the exchanging
client's address, and ``invalid_request`` (section 2.2.2) for every invalid key."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from ostiary.features.clients.service import ClientRegistration

ISSUER = "http://testserver"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
API_KEY_TYPE = "urn:ostiary:params:oauth:token-type:api-key"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
API = "https://api.example"


@pytest.fixture
async def setup(app: Any, clock: Any) -> dict[str, Any]:
    async with app.state.runtime.unit() as unit:
        await unit.keys.ensure_keys()
        owner = await unit.accounts.create_user(
            f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
        )
        org = await unit.orgs.create("Acme", actor=None)
        await unit.orgs.add_member(org.id, owner.id, actor=None)
        await unit.rbac.assign(org.id, ("user", owner.id), "owner", actor=None)
        bot = await unit.api_keys.create_service_account(
            org.id, "bot", roles=["member"], actor=None
        )
        keys = {
            "bot": await unit.api_keys.create_key(
                org.id, ("service_account", bot.id), models=["gpt-x"], actor=None
            ),
            "user": await unit.api_keys.create_key(
                org.id, ("user", owner.id), permissions=["models:invoke"], actor=None
            ),
            "short": await unit.api_keys.create_key(
                org.id,
                ("user", owner.id),
                expires_at=clock.now() + timedelta(seconds=90),
                actor=None,
            ),
            "fenced": await unit.api_keys.create_key(
                org.id, ("user", owner.id), allowed_ips=["198.51.100.0/24"], actor=None
            ),
            "peer": await unit.api_keys.create_key(
                org.id, ("user", owner.id), allowed_ips=["203.0.113.0/24"], actor=None
            ),
            "revoked": await unit.api_keys.create_key(org.id, ("user", owner.id), actor=None),
        }
        await unit.api_keys.revoke_key(org.id, keys["revoked"].key.id, actor=None)
        machine, machine_secret = await unit.clients.register(
            ClientRegistration(
                name="Gateway",
                grant_types=("client_credentials",),
                scopes=("models:read",),
                resources=(API,),
            )
        )
    return {
        "org": org,
        "owner": owner,
        "bot": bot,
        "keys": keys,
        "machine": (machine.client_id, machine_secret),
    }


def _form(key: str, **extra: Any) -> dict[str, Any]:
    return {
        "grant_type": EXCHANGE,
        "subject_token": key,
        "subject_token_type": API_KEY_TYPE,
        **extra,
    }


async def _claims(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    jwks = KeySet.import_key_set((await client.get("/.well-known/jwks.json")).json())
    decoded = jwt.decode(token, jwks, algorithms=["ES256"])
    assert decoded.header["typ"] == "at+jwt"
    return dict(decoded.claims)


async def test_a_service_account_key_becomes_a_short_lived_jwt(
    client: httpx.AsyncClient, setup: dict[str, Any], clock: Any
) -> None:
    key = setup["keys"]["bot"]
    response = await client.post("/token", data=_form(key.secret))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["issued_token_type"] == ACCESS_TOKEN_TYPE
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert "refresh_token" not in body
    claims = await _claims(client, body["access_token"])
    now = int(clock.now().timestamp())
    assert claims["iss"] == ISSUER and claims["aud"] == ISSUER
    assert claims["sub"] == setup["bot"].id
    assert claims["org_id"] == setup["org"].id
    assert claims["ost_key_id"] == key.key.id
    assert claims["ost_owner_type"] == "service_account"
    assert claims["client_id"] == key.key.id  # no client authenticated
    assert claims["models"] == ["gpt-x"]
    assert claims["permissions"] == sorted(
        ["models:invoke", "models:read", "keys:create", "keys:read", "members:read"]
    )
    assert claims["iat"] == now and claims["exp"] == now + 300 and claims["jti"]


async def test_scope_narrows_and_cannot_widen(
    client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    key = setup["keys"]["bot"].secret
    narrowed = await client.post("/token", data=_form(key, scope="models:invoke"))
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["scope"] == "models:invoke"
    claims = await _claims(client, narrowed.json()["access_token"])
    assert claims["permissions"] == ["models:invoke"] and claims["scope"] == "models:invoke"
    for scope in ("roles:manage", "*", "models:invoke  keys:read", "", "nonsense"):
        refused = await client.post("/token", data=_form(key, scope=scope))
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_scope"


async def test_the_lifetime_never_exceeds_the_keys(
    client: httpx.AsyncClient, setup: dict[str, Any], clock: Any
) -> None:
    short = setup["keys"]["short"].secret
    response = await client.post("/token", data=_form(short))
    assert response.json()["expires_in"] == 90
    clock.advance(timedelta(seconds=89, microseconds=500_000))
    late = await client.post("/token", data=_form(short))
    assert late.status_code == 400 and late.json()["error"] == "invalid_request"


async def test_an_authenticated_client_is_named_and_picks_resources(
    client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    key = setup["keys"]["user"].secret
    machine = setup["machine"]
    response = await client.post("/token", data=_form(key, resource=API), auth=machine)
    assert response.status_code == 200, response.text
    claims = await _claims(client, response.json()["access_token"])
    assert claims["client_id"] == machine[0]
    assert claims["sub"] == setup["owner"].id
    assert claims["aud"] == API
    assert claims["permissions"] == ["models:invoke"]
    assert "models" not in claims
    by_audience = await client.post("/token", data=_form(key, audience=API), auth=machine)
    assert (await _claims(client, by_audience.json()["access_token"]))["aud"] == API
    # Without a client, only this issuer may be the audience.
    refused = await client.post("/token", data=_form(key, resource=API))
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_target"
    # A client that fails to authenticate is refused, key or not.
    bad = await client.post("/token", data=_form(key), auth=(machine[0], "wrong"))
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"


async def test_every_invalid_key_is_invalid_request_with_one_description(
    client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    keys = setup["keys"]
    good = keys["user"].secret
    descriptions = set()
    for candidate in (
        "nonsense",
        keys["revoked"].secret,
        good[:-2] + ("zz" if not good.endswith("zz") else "yy"),
        "ost_sk_" + secrets.token_hex(12) + good[31:],
        keys["fenced"].secret,  # the exchanging client's address is outside its allowlist
    ):
        response = await client.post("/token", data=_form(candidate))
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_request"
        descriptions.add(response.json()["error_description"])
    assert descriptions == {"The subject_token is not a valid API key."}
    assert (await client.post("/token", data=_form(keys["peer"].secret))).status_code == 200


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"subject_token_type": ACCESS_TOKEN_TYPE}, "invalid_request"),
        ({"subject_token_type": None}, "invalid_request"),
        ({"subject_token": None}, "invalid_request"),
        (
            {"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"},
            "invalid_request",
        ),
        ({"actor_token": "x", "actor_token_type": ACCESS_TOKEN_TYPE}, "invalid_request"),
    ],
)
async def test_malformed_exchanges_are_refused(
    client: httpx.AsyncClient, setup: dict[str, Any], change: dict[str, Any], error: str
) -> None:
    form = _form(setup["keys"]["user"].secret)
    for name, value in change.items():
        if value is None:
            form.pop(name, None)
        else:
            form[name] = value
    response = await client.post("/token", data=form)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error


async def test_other_grants_still_need_a_client_and_discovery_lists_the_grant(
    client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    response = await client.post("/token", data={"grant_type": "client_credentials"})
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    metadata = (await client.get("/.well-known/openid-configuration")).json()
    assert EXCHANGE in metadata["grant_types_supported"]
    schema = (await client.get("/openapi.json")).json()
    form = schema["paths"]["/token"]["post"]["requestBody"]["content"]
    properties = form["application/x-www-form-urlencoded"]["schema"]["properties"]
    assert EXCHANGE in properties["grant_type"]["enum"]
    assert "subject_token" in properties


async def test_a_key_of_a_removed_member_cannot_be_exchanged(
    app: Any, client: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    async with app.state.runtime.unit() as unit:
        member = await unit.accounts.create_user(
            f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
        )
        await unit.orgs.add_member(setup["org"].id, member.id, actor=None)
        await unit.rbac.assign(setup["org"].id, ("user", member.id), "member", actor=None)
        issued = await unit.api_keys.create_key(setup["org"].id, ("user", member.id), actor=None)
    assert (await client.post("/token", data=_form(issued.secret))).status_code == 200
    async with app.state.runtime.unit() as unit:
        await unit.orgs.remove_member(setup["org"].id, member.id, actor=None)
    refused = await client.post("/token", data=_form(issued.secret))
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_request"


@pytest.mark.parametrize("stop", ["revoke", "remove_member", "disable_account", "delete_account"])
async def test_stopping_the_key_revokes_the_tokens_exchanged_for_it(
    app: Any, client: httpx.AsyncClient, setup: dict[str, Any], clock: Any, stop: str
) -> None:
    org = setup["org"].id
    async with app.state.runtime.unit() as unit:
        rs, rs_secret = await unit.clients.register(
            ClientRegistration(
                name="RS",
                grant_types=("client_credentials",),
                scopes=("models:read",),
                introspection_audiences=(ISSUER,),
            )
        )
        member = await unit.accounts.create_user(
            f"{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
        )
        await unit.orgs.add_member(org, member.id, actor=None)
        await unit.rbac.assign(org, ("user", member.id), "member", actor=None)
        owner = (
            ("service_account", setup["bot"].id)
            if stop.endswith("account")
            else ("user", member.id)
        )
        issued = await unit.api_keys.create_key(org, owner, actor=None)
        other = await unit.api_keys.create_key(org, ("user", setup["owner"].id), actor=None)
    tokens = []
    for key in (issued.secret, other.secret):
        response = await client.post("/token", data=_form(key))
        tokens.append(response.json()["access_token"])

    async def active(token: str) -> bool:
        response = await client.post(
            "/introspect", data={"token": token}, auth=(rs.client_id, rs_secret)
        )
        assert response.status_code == 200, response.text
        return bool(response.json()["active"])

    assert await active(tokens[0]) and await active(tokens[1])
    clock.advance(timedelta(seconds=1))
    async with app.state.runtime.unit() as unit:
        if stop == "revoke":
            await unit.api_keys.revoke_key(org, issued.key.id, actor=None)
        elif stop == "remove_member":
            await unit.orgs.remove_member(org, member.id, actor=None)
        elif stop == "disable_account":
            await unit.api_keys.set_service_account_disabled(org, setup["bot"].id, actor=None)
        else:
            await unit.api_keys.delete_service_account(org, setup["bot"].id, actor=None)
    assert not await active(tokens[0])
    assert await active(tokens[1])
