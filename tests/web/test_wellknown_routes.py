"""Discovery documents (OIDC Discovery 1.0 section 3, RFC 8414 section 2) as an independent
library reads them: Authlib's metadata classes validate every member they know."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata

from ostiary.features.clock import FrozenClock
from ostiary.web.app import create_app
from tests.conftest import Backend, make_settings


@pytest.mark.parametrize("issuer", ["https://id.example.com", "http://127.0.0.1:8000"])
async def test_both_documents_validate_with_authlib(
    backend: Backend, tmp_path: Path, clock: FrozenClock, issuer: str
) -> None:
    app = create_app(make_settings(backend, tmp_path, issuer=issuer), clock=clock)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url=issuer) as client:
            oidc: dict[str, Any] = (await client.get("/.well-known/openid-configuration")).json()
            oauth: dict[str, Any] = (
                await client.get("/.well-known/oauth-authorization-server")
            ).json()
    finally:
        await app.state.runtime.close()
    assert oidc["issuer"] == oauth["issuer"] == issuer
    # Each raises ValueError naming the first member that breaks its specification.
    OpenIDProviderMetadata(oidc).validate()
    AuthorizationServerMetadata(oauth).validate()
    AuthorizationServerMetadata(oidc).validate()


async def test_jwt_client_authentication_names_its_algorithms_wherever_it_is_offered(
    client: httpx.AsyncClient,
) -> None:
    """RFC 8414 section 2: ``*_auth_signing_alg_values_supported`` is REQUIRED where
    ``private_key_jwt`` is listed, and lists what the verifier accepts (never ``none``)."""
    doc = (await client.get("/.well-known/oauth-authorization-server")).json()
    for endpoint in ("token_endpoint", "introspection_endpoint", "revocation_endpoint"):
        if "private_key_jwt" in doc[f"{endpoint}_auth_methods_supported"]:
            algs = doc[f"{endpoint}_auth_signing_alg_values_supported"]
            assert algs and "none" not in algs and "HS256" not in algs
            assert {"RS256", "ES256", "EdDSA"} <= set(algs)


async def test_a_key_this_process_signs_with_is_in_the_jwks_it_serves_at_once(
    backend: Backend, tmp_path: Path, clock: FrozenClock
) -> None:
    """OIDC Core 10.1.1: a verifier must find the key of every token it gets. The JWKS
    response is cached in process for seconds; a key rotated in elsewhere with no publish lead
    (``keys rotate --lead-seconds 0``) and picked up by the signer must not wait for that."""
    from datetime import timedelta

    from ostiary.web.runtime import Runtime

    settings = make_settings(backend, tmp_path)
    app = create_app(settings, clock=clock)
    rt = app.state.runtime
    other = Runtime(settings, clock=clock)  # another process: its own caches
    transport = httpx.ASGITransport(app=app)
    try:
        async with rt.unit() as unit:
            first = await unit.keys.rotate("ES256", lead=timedelta(0))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            kids = [k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]]
            assert kids == [first.kid]
            clock.advance(timedelta(seconds=1))  # the newer key activates later: it signs
            async with other.unit() as unit:
                second = await unit.keys.rotate("RS256", lead=timedelta(0))
            clock.advance(timedelta(seconds=6))  # past the signer's key-list cache
            async with rt.unit() as unit:
                assert (await unit.keys.signer("RS256")).kid == second.kid
            body = (await client.get("/.well-known/jwks.json")).json()
        assert second.kid in {k["kid"] for k in body["keys"]}
    finally:
        await other.close()
        await rt.close()


async def test_discovery_lists_the_enabled_id_token_algorithms(
    backend: Backend, tmp_path: Path, clock: FrozenClock
) -> None:
    """OIDC Discovery 1.0 section 3 ``id_token_signing_alg_values_supported``: what a client
    may be registered for (OSTIARY_SIGNING_ALGS), RS256 among them by default (Core 15.1)."""
    for algs, expected in (
        (None, ["ES256", "RS256", "EdDSA"]),
        ("RS256,ES256", ["ES256", "RS256"]),
    ):
        extra = {} if algs is None else {"signing_algs": algs}
        app = create_app(make_settings(backend, tmp_path, **extra), clock=clock)
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                doc = (await c.get("/.well-known/openid-configuration")).json()
        finally:
            await app.state.runtime.close()
        assert doc["id_token_signing_alg_values_supported"] == expected
