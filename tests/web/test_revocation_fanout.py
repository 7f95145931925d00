"""Revocation reaches every node: Redis pub/sub when configured, the database poll always."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from ostiary.features.clients.service import ClientRegistration
from ostiary.web.app import create_app
from tests.conftest import Backend, make_settings


async def test_access_token_revoked_on_one_node_is_inactive_on_another(
    backend: Backend, tmp_path: Path, clock: Any
) -> None:
    settings = make_settings(backend, tmp_path)
    node_a, node_b = create_app(settings, clock=clock), create_app(settings, clock=clock)
    rt_a, rt_b = node_a.state.runtime, node_b.state.runtime
    async with rt_a.unit() as unit:
        await unit.keys.ensure_key("ES256")
        machine, secret = await unit.clients.register(
            ClientRegistration(name="m", grant_types=("client_credentials",), scopes=("x",))
        )
    listener = None
    if rt_b.revocation_bus is not None:
        listener = asyncio.create_task(rt_b.revocation_bus.listen(rt_b.revoked.add))
        await asyncio.sleep(0.2)  # subscribed
    auth = (machine.client_id, secret)
    a = httpx.AsyncClient(transport=httpx.ASGITransport(app=node_a), base_url="http://testserver")
    b = httpx.AsyncClient(transport=httpx.ASGITransport(app=node_b), base_url="http://testserver")
    try:
        token = (
            await a.post("/token", data={"grant_type": "client_credentials"}, auth=auth)
        ).json()["access_token"]
        assert (await b.post("/introspect", data={"token": token}, auth=auth)).json()["active"]
        assert (await a.post("/revoke", data={"token": token}, auth=auth)).status_code == 200
        if listener is not None:
            for _ in range(50):  # pub/sub: milliseconds, bounded wait
                if len(rt_b.revoked):
                    break
                await asyncio.sleep(0.02)
        else:
            async with rt_b.unit() as unit:
                assert await unit.revocation.sync() == 1  # what the 1 s poll does
        result = await b.post("/introspect", data={"token": token}, auth=auth)
        assert result.json() == {"active": False}
    finally:
        if listener is not None:
            listener.cancel()
        await a.aclose()
        await b.aclose()
        await rt_a.close()
        await rt_b.close()
