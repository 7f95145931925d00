"""ostiary.verify against real tokens from the Ostiary app (over ASGI, through its own HTTP
client), including revocation seen through the introspection fallback."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ostiary.features.clients.service import ClientRegistration
from ostiary.verify import IntrospectionConfig, TokenError, TokenVerifier

ISSUER = "http://testserver"


async def test_real_tokens_verify_offline_and_revocation_via_introspection(
    app: Any, client: httpx.AsyncClient
) -> None:
    now = app.state.runtime.clock.now
    async with app.state.runtime.unit() as unit:
        await unit.keys.ensure_keys()
        machine, secret = await unit.clients.register(
            ClientRegistration(
                name="svc",
                grant_types=("client_credentials",),
                scopes=("models:read",),
                resources=("https://api.example",),
            )
        )
    auth = (machine.client_id, secret)
    response = await client.post(
        "/token", auth=auth, data={"grant_type": "client_credentials", "scope": "models:read"}
    )
    token = response.json()["access_token"]
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER)
    verifier = TokenVerifier(
        ISSUER,
        "https://api.example",
        http=http,
        clock=now,
        introspection=IntrospectionConfig(client_id=machine.client_id, client_secret=str(secret)),
    )
    try:
        verified = await verifier.verify(token, required_scopes=["models:read"])
        assert verified.subject == machine.client_id and "models:read" in verified.scopes
        with pytest.raises(TokenError) as scope_error:
            await verifier.verify(token, required_scopes=["models:write"])
        assert scope_error.value.reason == "insufficient_scope"
        other = TokenVerifier(ISSUER, "https://other.example", http=http, clock=now)
        with pytest.raises(TokenError) as audience_error:
            await other.verify(token)
        assert audience_error.value.reason == "wrong_audience"
        await client.post("/revoke", auth=auth, data={"token": token})
        assert (await verifier.verify(token)).subject == machine.client_id  # offline: still ok
        with pytest.raises(TokenError) as revoked:
            await verifier.verify(token, introspect=True)
        assert revoked.value.reason == "inactive"
    finally:
        await http.aclose()
