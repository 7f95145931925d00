"""Revocation reaches every node: Redis pub/sub when configured, the database poll always."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from ostiary.features.clients.service import ClientRegistration
from ostiary.web.app import create_app
from tests.conftest import Backend, make_settings


class _Listener:
    """The ``apply`` of node ``rt``'s pub/sub listener, recording what reached it, so that a
    test waits for a given message instead of sleeping and hoping. (The channel is shared by
    every Redis database index: other runs' messages may arrive too.)"""

    def __init__(self, rt: Any) -> None:
        self._rt = rt
        self._probe = f"subscription-probe-{secrets.token_hex(8)}"
        self._values: set[str] = set()
        self._arrived = asyncio.Event()

    def __call__(self, kind: str, value: str, revoked_at: datetime, expires_at: datetime) -> None:
        if value != self._probe:
            self._rt.revoked.add(kind, value, revoked_at, expires_at)
        self._values.add(value)
        self._arrived.set()

    async def received(self, value: str, bus: Any = None) -> None:
        """Wait until ``value`` arrives; with ``bus``, publish the probe until it does (pub/sub
        drops what is published before the listener has subscribed)."""
        async with asyncio.timeout(10):
            while value not in self._values:
                self._arrived.clear()
                if bus is not None:
                    now = datetime.now(UTC)
                    await bus.publish("jti", value, now, now)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), 0.05 if bus else None)

    async def subscribed(self, bus: Any) -> None:
        await self.received(self._probe, bus)


def _jti(token: str) -> str:
    payload = token.split(".")[1]
    return str(orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"])


async def test_access_token_revoked_on_one_node_is_inactive_on_another(
    backend: Backend, tmp_path: Path, clock: Any
) -> None:
    settings = make_settings(backend, tmp_path)
    node_a, node_b = create_app(settings, clock=clock), create_app(settings, clock=clock)
    rt_a, rt_b = node_a.state.runtime, node_b.state.runtime
    async with rt_a.unit() as unit:
        await unit.keys.ensure_keys()
        machine, secret = await unit.clients.register(
            ClientRegistration(name="m", grant_types=("client_credentials",), scopes=("x",))
        )
    listener = None
    on_b = _Listener(rt_b)
    if rt_b.revocation_bus is not None:
        listener = asyncio.create_task(rt_b.revocation_bus.listen(on_b))
        await on_b.subscribed(rt_a.revocation_bus)
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
            await on_b.received(_jti(token))  # pub/sub: milliseconds
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
