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
