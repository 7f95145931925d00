"""Client registration rules and secrets (RFC 6749 section 2; HMAC-stored, rotated with overlap)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ostiary.features.clients.service import (
    ClientRegistration,
    ClientService,
    InvalidClientMetadata,
)
from ostiary.features.clock import FrozenClock
from ostiary.protocol.destinations import DestinationPolicy
from ostiary.protocol.oauth_errors import ProtocolError
from ostiary.storage.sqla.oauth_repositories import SqlClientStore
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
        {"redirect_uris": CB, "id_token_signed_response_alg": "HS256"},
        {"redirect_uris": CB, "access_token_signed_response_alg": "none"},
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


PKJ = {"grant_types": ("client_credentials",), "auth_method": "private_key_jwt"}


@pytest.mark.parametrize(
    ("jwks_uri", "reason"),
    [
        ("http://keys.example/jwks.json", "https"),
        ("/jwks.json", "absolute"),
        ("https://user:pw@keys.example/jwks.json", "userinfo"),
        ("https://keys.example/jwks.json#k1", "fragment"),
        ("https://127.0.0.1:8443/jwks.json", "loopback"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://[fd00::1]/jwks.json", "private"),
        ("http://127.0.0.1:8080/jwks.json", "https"),  # http loopback only where allowed
    ],
)
async def test_unsafe_jwks_uris_are_refused_at_registration(
    runtime: Any, jwks_uri: str, reason: str
) -> None:
    # RFC 7591 section 2 and the OWASP SSRF cheat sheet: the server will fetch this URL.
    with pytest.raises(InvalidClientMetadata, match=f"jwks_uri refused: .*{reason}"):
        await _register(runtime, jwks_uri=jwks_uri, **PKJ)


async def test_jwks_and_jwks_uri_are_exclusive(runtime: Any) -> None:
    # RFC 7591 section 2: the two MUST NOT both be present.
    with pytest.raises(InvalidClientMetadata, match="both"):
        await _register(
            runtime, jwks={"keys": []}, jwks_uri="https://keys.example/jwks.json", **PKJ
        )


async def test_a_public_https_jwks_uri_is_registered(runtime: Any) -> None:
    client, secret = await _register(runtime, jwks_uri="https://keys.example/jwks.json", **PKJ)
    assert secret is None and client.jwks_uri == "https://keys.example/jwks.json"


@pytest.mark.parametrize(
    ("policy", "accepted"),
    [
        (DestinationPolicy(), False),
        (DestinationPolicy(allow_http_loopback=True), False),  # 127.0.0.1 is not public
        (DestinationPolicy(allow_private=True), False),  # http still needs its own setting
        (DestinationPolicy(allow_private=True, allow_http_loopback=True), True),
    ],
)
async def test_http_loopback_jwks_uri_follows_the_operator_policy(
    runtime: Any, policy: DestinationPolicy, accepted: bool
) -> None:
    registration = ClientRegistration(name="dev", jwks_uri="http://127.0.0.1:8080/jwks.json", **PKJ)
    async with runtime.unit() as unit:
        service = ClientService(
            SqlClientStore(unit.conn),
            runtime.token_pepper,
            unit.audit,
            runtime.clock,
            jwks_uri_policy=policy,
        )
        if accepted:
            client, _ = await service.register(registration)
            assert client.jwks_uri == "http://127.0.0.1:8080/jwks.json"
        else:
            with pytest.raises(InvalidClientMetadata, match="jwks_uri refused"):
                await service.register(registration)
