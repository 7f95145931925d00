"""Client registration rules and secrets (RFC 6749 section 2; HMAC-stored, rotated with overlap)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ostiary.features.clients.service import ClientRegistration, InvalidClientMetadata
from ostiary.features.clock import FrozenClock
from ostiary.protocol.oauth_errors import ProtocolError
from ostiary.storage.sqla.tables import clients

CB = ("https://app.example/cb",)


async def _register(rt: Any, **kw: Any) -> tuple[Any, str | None]:
    async with rt.unit() as unit:
        result: tuple[Any, str | None] = await unit.clients.register(
            ClientRegistration(name=kw.pop("name", "App"), **kw)
        )
        return result


async def test_secret_is_prefixed_shown_once_and_stored_as_hmac(runtime: Any) -> None:
    _client, secret = await _register(runtime, redirect_uris=CB)
    assert secret is not None and secret.startswith("ost_cs_") and len(secret) > 40
    async with runtime.unit() as unit:
        row = (await unit.conn.execute(clients.select())).one()
    assert secret not in str(tuple(row)) and len(row.secret_hash) == 64


async def test_authenticate_by_registered_method_only(runtime: Any) -> None:
    client, secret = await _register(runtime, redirect_uris=CB)
    async with runtime.unit() as unit:
        ok = await unit.clients.authenticate(
            client.client_id, method="client_secret_basic", secret=secret
        )
        assert ok.client_id == client.client_id
        for method, value in (
            ("client_secret_basic", "wrong"),
            ("client_secret_post", secret),
            ("none", None),
        ):
            with pytest.raises(ProtocolError) as info:
                await unit.clients.authenticate(client.client_id, method=method, secret=value)
            assert info.value.error == "invalid_client"


async def test_rotation_keeps_the_old_secret_for_the_overlap(
    runtime: Any, clock: FrozenClock
) -> None:
    client, old = await _register(runtime, redirect_uris=CB)
    async with runtime.unit() as unit:
        _, new = await unit.clients.rotate_secret(client.client_id, overlap=timedelta(hours=1))
    async with runtime.unit() as unit:
        for secret in (old, new):
            await unit.clients.authenticate(
                client.client_id, method="client_secret_basic", secret=secret
            )
    clock.advance(timedelta(hours=1))
    runtime.clients_cache.invalidate(client.client_id)
    async with runtime.unit() as unit:
        await unit.clients.authenticate(client.client_id, method="client_secret_basic", secret=new)
        with pytest.raises(ProtocolError):
            await unit.clients.authenticate(
                client.client_id, method="client_secret_basic", secret=old
            )


@pytest.mark.parametrize(
    "kw",
    [
        {"name": ""},
        {"redirect_uris": ()},
        {"redirect_uris": ("http://app.example/cb",)},
        {"redirect_uris": ("https://app.example/cb#x",)},
        {"redirect_uris": CB, "public": True, "grant_types": ("client_credentials",)},
        {"redirect_uris": CB, "public": True, "auth_method": "client_secret_basic"},
        {"redirect_uris": CB, "auth_method": "none"},
        {"redirect_uris": CB, "auth_method": "private_key_jwt"},
        {"redirect_uris": CB, "grant_types": ("implicit",)},
        {"redirect_uris": CB, "scopes": ('bad"scope',)},
    ],
)
async def test_invalid_registrations_are_refused(runtime: Any, kw: dict[str, Any]) -> None:
    with pytest.raises(InvalidClientMetadata):
        await _register(runtime, **kw)


async def test_public_client_has_no_secret_and_authenticates_with_none(runtime: Any) -> None:
    client, secret = await _register(runtime, redirect_uris=CB, public=True)
    assert secret is None and client.token_endpoint_auth_method == "none"
    async with runtime.unit() as unit:
        await unit.clients.authenticate(client.client_id, method="none")


async def test_disabled_and_deleted_clients_fail_authentication(runtime: Any) -> None:
    client, secret = await _register(runtime, grant_types=("client_credentials",))
    async with runtime.unit() as unit:
        await unit.clients.set_disabled(client.client_id, True)
        with pytest.raises(ProtocolError):
            await unit.clients.authenticate(
                client.client_id, method="client_secret_basic", secret=secret
            )
        assert await unit.clients.delete(client.client_id)
        with pytest.raises(ProtocolError):
            await unit.clients.authenticate(
                client.client_id, method="client_secret_basic", secret=secret
            )
