"""What the management API tests share: a world of two organizations with real users, and
access tokens minted by the server's own key ring (signed, typed and audienced as the token
endpoint mints them; the sign-in flow itself is covered by an Authlib test)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx

from ostiary.features.oauth.tokens import AccessTokenRequest, TokenMinter
from ostiary.protocol.scopes import MANAGE_SCOPE

ISSUER = "http://testserver"
PASSWORD = "correct horse battery staple 77"


@dataclass
class World:
    app: Any
    client: httpx.AsyncClient
    users: dict[str, str] = field(default_factory=dict)  # name -> user id
    tokens: dict[str, str] = field(default_factory=dict)  # name -> access token
    orgs: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> OrgOut

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    async def call(self, who: str, method: str, path: str, **kw: Any) -> httpx.Response:
        return await self.client.request(method, path, headers=self.auth(who), **kw)


async def mint(
    app: Any,
    subject: str,
    scope: str = MANAGE_SCOPE,
    *,
    user: bool = True,
    client_id: str = "ost_mgmt_tests",
    audience: list[str] | None = None,
) -> str:
    """An RFC 9068 access token as the token endpoint would issue it: for a user (with
    ``auth_time``), or for a client (client_credentials: ``sub`` is the client)."""
    rt = app.state.runtime
    async with rt.unit() as unit:
        await unit.keys.ensure_keys()
        minter = TokenMinter(unit.keys, rt.oauth_policy.issuer)
        now = rt.clock.now()
        minted = await minter.access_token(
            AccessTokenRequest(
                client_id=client_id,
                subject=subject if user else client_id,
                scope=scope,
                audience=audience or [rt.oauth_policy.issuer],
                ttl=timedelta(minutes=5),
                auth_time=now if user else None,
            ),
            now,
        )
    return minted.token


async def add_user(app: Any, email: str, name: str) -> str:
    async with app.state.runtime.unit() as unit:
        user = await unit.accounts.create_user(email, PASSWORD, name=name, email_verified=True)
    return str(user.id)


async def build_world(app: Any, client: httpx.AsyncClient) -> World:
    """alice owns org A, bob owns org B; carol is a plain member of A; dave an admin of A;
    erin belongs to no organization."""
    world = World(app, client)
    for name in ("alice", "bob", "carol", "dave", "erin"):
        world.users[name] = await add_user(app, f"{name}@example.com", name.title())
        world.tokens[name] = await mint(app, world.users[name])
    for owner, org in (("alice", "A"), ("bob", "B")):
        response = await world.call(owner, "POST", "/api/v1/orgs", json={"name": f"Org {org}"})
        assert response.status_code == 201, response.text
        world.orgs[org] = response.json()
    for name, role in (("carol", "member"), ("dave", "admin")):
        response = await world.call(
            "alice",
            "POST",
            f"/api/v1/orgs/{world.orgs['A']['id']}/members",
            json={"email": f"{name}@example.com", "roles": [role]},
        )
        assert response.status_code == 201, response.text
    return world
