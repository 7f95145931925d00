"""ostiary.verify._fastapi: the dependency in a FastAPI app, over httpx.ASGITransport.

The app runs in-process; the verifier inside it fetches keys from the fake authorization
server over real HTTP. (No ``from __future__ import annotations`` here: FastAPI must see the
route annotations, which name dependencies local to a fixture, as objects, not strings.)
"""

from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI

from ostiary.verify import TokenVerifier, VerifiedToken, require_token
from tests.verify.conftest import (
    AUDIENCE,
    Clock,
    MakeVerifier,
    Minter,
    Tenant,
    introspection_config,
)


@pytest.fixture
def protected(make_verifier: MakeVerifier) -> TokenVerifier:
    return make_verifier(introspection=introspection_config())


@pytest.fixture
async def client(protected: TokenVerifier) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    Reader = Annotated[VerifiedToken, Depends(require_token(protected, "models:read"))]
    Admin = Annotated[VerifiedToken, Depends(require_token(protected, "admin", realm="admin"))]
    Live = Annotated[VerifiedToken, Depends(require_token(protected, introspect=True))]

    @app.get("/me")
    async def me(token: Reader) -> dict[str, object]:
        return {"sub": token.subject, "scopes": sorted(token.scopes)}

    @app.get("/admin")
    async def admin(token: Admin) -> dict[str, str]:
        return {"sub": token.subject}

    @app.get("/live")
    async def live(token: Live) -> dict[str, object]:
        return {"sub": token.subject, "introspected": token.introspected}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_good_token_reaches_the_route(client: httpx.AsyncClient, mint: Minter) -> None:
    response = await client.get("/me", headers=bearer(mint.token()))
    assert response.status_code == 200
    assert response.json() == {"sub": "user-1", "scopes": ["models:read", "models:write"]}


async def test_the_scheme_name_is_case_insensitive(client: httpx.AsyncClient, mint: Minter) -> None:
    response = await client.get("/me", headers={"Authorization": f"bearer {mint.token()}"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}]
)
async def test_no_bearer_token_is_401_with_a_bare_challenge(
    headers: dict[str, str], client: httpx.AsyncClient
) -> None:
    # RFC 6750 section 3.1: no error code when the request carries no token.
    response = await client.get("/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == f'Bearer realm="{AUDIENCE}"'


@pytest.mark.parametrize("value", ["Bearer a b", "Bearer tok\u00e9n", "Bearer ==abc"])
async def test_a_malformed_bearer_value_is_401_invalid_token(
    value: str, client: httpx.AsyncClient
) -> None:
    response = await client.get("/me", headers=[(b"Authorization", value.encode("utf-8"))])
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith(
        f'Bearer realm="{AUDIENCE}", error="invalid_token"'
    )


async def test_a_token_is_not_read_from_the_query_string(
    client: httpx.AsyncClient, mint: Minter
) -> None:
    # RFC 6750 section 2.3 is the least safe method; this dependency does not offer it.
    response = await client.get("/me", params={"access_token": mint.token()})
    assert response.status_code == 401


async def test_an_expired_token_is_401_invalid_token(
    client: httpx.AsyncClient, mint: Minter, clock: Clock
) -> None:
    token = mint.token()
    clock.advance(minutes=10)
    response = await client.get("/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="{AUDIENCE}", error="invalid_token", '
        'error_description="the token has expired"'
    )
    assert response.json() == {"detail": "the token has expired"}


async def test_insufficient_scope_is_403_naming_the_scope(
    client: httpx.AsyncClient, mint: Minter
) -> None:
    response = await client.get("/admin", headers=bearer(mint.token()))
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="admin", error="insufficient_scope"')
    assert challenge.endswith('scope="admin"')


async def test_an_unreachable_authorization_server_is_503_not_401(
    client: httpx.AsyncClient, idp: Tenant, mint: Minter
) -> None:
    idp.jwks_status = 500
    response = await client.get("/me", headers=bearer(mint.token()))
    assert response.status_code == 503
    assert "www-authenticate" not in response.headers


async def test_a_revocation_sensitive_route_introspects(
    client: httpx.AsyncClient, idp: Tenant, mint: Minter
) -> None:
    token = mint.token()
    revoked = await client.get("/live", headers=bearer(token))
    assert revoked.status_code == 401
    assert 'error_description="the token is not active"' in revoked.headers["www-authenticate"]
    idp.introspection[token] = {"active": True}
    response = await client.get("/live", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == {"sub": "user-1", "introspected": True}


async def test_the_bearer_scheme_is_declared_in_openapi(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    scheme = schema["components"]["securitySchemes"]["OstiaryAccessToken"]
    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"
    assert schema["paths"]["/me"]["get"]["security"] == [{"OstiaryAccessToken": []}]


@pytest.mark.parametrize("scope", ["", "two words", 'quo"te'])
def test_an_invalid_scope_is_refused_when_the_dependency_is_built(
    scope: str, protected: TokenVerifier
) -> None:
    with pytest.raises(ValueError, match="scope-token"):
        require_token(protected, scope)


def test_introspect_without_a_config_is_refused_when_the_dependency_is_built(
    verifier: TokenVerifier,
) -> None:
    with pytest.raises(ValueError, match="IntrospectionConfig"):
        require_token(verifier, introspect=True)
