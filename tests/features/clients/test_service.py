"""Client registration rules and secrets (RFC 6749 section 2; HMAC-stored, rotated with overlap)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ostiary.features.clients.service import (
    ClientChanges,
    ClientRegistration,
    ClientService,
    InvalidClientMetadata,
)
from ostiary.features.clock import FrozenClock
from ostiary.protocol.destinations import DestinationPolicy
from ostiary.protocol.oauth_errors import ProtocolError
from ostiary.storage.sqla.oauth_repositories import SqlClientStore
from ostiary.storage.sqla.tables import audit_events, clients

CB = ("https://app.example/cb",)
PKJ = {"grant_types": ("client_credentials",), "auth_method": "private_key_jwt"}


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


@pytest.mark.parametrize("registered", ["client_secret_basic", "client_secret_post"])
async def test_a_client_with_a_secret_may_send_it_either_way(runtime: Any, registered: str) -> None:
    # RFC 6749 section 2.3.1: the server supports both secret methods for such a client.
    client, secret = await _register(runtime, redirect_uris=CB, auth_method=registered)
    async with runtime.unit() as unit:
        for method in ("client_secret_basic", "client_secret_post"):
            ok = await unit.clients.authenticate(client.client_id, method=method, secret=secret)
            assert ok.client_id == client.client_id
        for method, value in (
            ("client_secret_basic", "wrong"),
            ("client_secret_post", "wrong"),
            ("none", None),
            ("private_key_jwt", None),
        ):
            with pytest.raises(ProtocolError) as info:
                await unit.clients.authenticate(client.client_id, method=method, secret=value)
            assert info.value.error == "invalid_client"


@pytest.mark.parametrize(
    ("kw", "own"),
    [
        ({"redirect_uris": CB, "public": True}, "none"),
        ({"jwks": {"keys": []}, **PKJ}, "private_key_jwt"),
    ],
)
async def test_key_and_public_clients_stay_bound_to_their_method(
    runtime: Any, kw: dict[str, Any], own: str
) -> None:
    client, _ = await _register(runtime, **kw)
    async with runtime.unit() as unit:
        await unit.clients.authenticate(client.client_id, method=own)
        for method in {"client_secret_basic", "client_secret_post", "none"} - {own}:
            with pytest.raises(ProtocolError) as info:
                await unit.clients.authenticate(client.client_id, method=method, secret="x")
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
        {"redirect_uris": CB, "pkce": "plain"},
        {"redirect_uris": CB, "public": True, "pkce": "nonce"},
        {"redirect_uris": CB, "public": True, "pkce": "optional"},
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


async def test_pkce_defaults_nonce_for_confidential_and_required_for_public(
    runtime: Any,
) -> None:
    confidential, _ = await _register(runtime, redirect_uris=CB)
    public, _ = await _register(runtime, redirect_uris=CB, public=True)
    legacy, _ = await _register(runtime, redirect_uris=CB, pkce="optional")
    assert (confidential.pkce, public.pkce, legacy.pkce) == ("nonce", "required", "optional")
    async with runtime.unit() as unit:
        stored = await unit.clients.list()
    assert sorted(c.pkce for c in stored) == ["nonce", "optional", "required"]


async def test_update_changes_the_registration_but_not_the_id_or_secret(
    runtime: Any, clock: FrozenClock
) -> None:
    client, secret = await _register(runtime, redirect_uris=CB, access_token_ttl=600)
    clock.advance(timedelta(minutes=1))
    changes = ClientChanges(
        redirect_uris=("https://app.example/new",),
        scopes=("openid",),
        auth_method="client_secret_post",
        pkce="required",
        id_token_ttl=120,
        clear_ttls=frozenset({"access_token_ttl"}),
        first_party=True,
    )
    async with runtime.unit() as unit:
        updated = await unit.clients.update(client.client_id, changes, actor="admin")
    async with runtime.unit() as unit:
        stored = await unit.clients.get(client.client_id)
        assert stored is not None
        await unit.clients.authenticate(
            client.client_id, method="client_secret_basic", secret=secret
        )
        events = (await unit.conn.execute(audit_events.select())).all()
    assert stored == updated
    assert stored.redirect_uris == ["https://app.example/new"] and stored.scopes == ["openid"]
    assert stored.token_endpoint_auth_method == "client_secret_post" and stored.pkce == "required"
    assert (stored.access_token_ttl, stored.id_token_ttl) == (None, 120) and stored.first_party
    assert stored.post_logout_redirect_uris == client.post_logout_redirect_uris  # not given: kept
    assert stored.secret_hash == client.secret_hash and stored.created_at == client.created_at
    assert stored.updated_at > client.updated_at
    event = next(e for e in events if e.action == "client.update")
    assert event.actor == "admin" and event.target == client.client_id
    assert "redirect_uris" in event.details["changed"] and "pkce" in event.details["changed"]


@pytest.mark.parametrize(
    "changes",
    [
        ClientChanges(redirect_uris=("http://app.example/cb",)),
        ClientChanges(redirect_uris=()),
        ClientChanges(pkce="plain"),
        ClientChanges(auth_method="none"),
        ClientChanges(grant_types=("implicit",)),
        ClientChanges(access_token_ttl=5),
        ClientChanges(introspection_audiences=("not a uri",)),
        ClientChanges(name=" "),
    ],
)
async def test_update_is_validated_as_at_registration(runtime: Any, changes: ClientChanges) -> None:
    client, _ = await _register(runtime, redirect_uris=CB)
    async with runtime.unit() as unit:
        with pytest.raises(InvalidClientMetadata):
            await unit.clients.update(client.client_id, changes)
    async with runtime.unit() as unit:
        assert await unit.clients.get(client.client_id) == client  # nothing written


async def test_update_refuses_a_public_client_without_pkce_and_a_secret_it_lacks(
    runtime: Any,
) -> None:
    public, _ = await _register(runtime, redirect_uris=CB, public=True)
    keyed, _ = await _register(runtime, jwks={"keys": []}, **PKJ)
    async with runtime.unit() as unit:
        with pytest.raises(InvalidClientMetadata, match="PKCE"):
            await unit.clients.update(public.client_id, ClientChanges(pkce="optional"))
        with pytest.raises(InvalidClientMetadata, match="no secret"):
            await unit.clients.update(
                keyed.client_id, ClientChanges(auth_method="client_secret_basic")
            )
        with pytest.raises(LookupError):
            await unit.clients.update("ost_nobody", ClientChanges(pkce="required"))


async def test_update_is_seen_at_once_by_this_process_cache(runtime: Any) -> None:
    client, _ = await _register(runtime, redirect_uris=CB)
    async with runtime.unit() as unit:
        assert (await unit.clients.get(client.client_id)).pkce == "nonce"  # cached now
        await unit.clients.update(client.client_id, ClientChanges(pkce="required"))
    async with runtime.unit() as unit:
        assert (await unit.clients.get(client.client_id)).pkce == "required"
