"""A fake authorization server on a real socket, keys and tokens minted with joserfc.

The fake server is a small Starlette app run by uvicorn in a background thread on 127.0.0.1
(one per test process). Each test gets its own *tenant* of it, an issuer URL of its own
(``http://127.0.0.1:PORT/t/<id>``) with its own metadata, JWK Set, introspection answers and
request counters, so the verifier under test really fetches over HTTP and tests never share
state. Time moves through an injected clock; nothing sleeps.
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import pytest
import uvicorn
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ostiary.verify import IntrospectionConfig, TokenVerifier

AUDIENCE = "https://api.example.test"
CLIENT_ID = "resource server:1"  # a space and a colon: both must be form-urlencoded (6749 2.3.1)
CLIENT_SECRET = "s3cret/with+special=chars&more"
START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

PrivateKey = ECKey | RSAKey | OKPKey


class Clock:
    """An injectable clock that moves only when told to."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@dataclass
class Tenant:
    """One issuer on the fake server; tests edit it between requests."""

    name: str
    issuer: str
    keys: list[PrivateKey] = field(default_factory=list)
    # "oidc" serves openid-configuration, "oauth" only RFC 8414 metadata, "none" neither.
    discovery: str = "oidc"
    metadata_issuer: str | None = None  # override the issuer the metadata names
    jwks_status: int = 200
    introspection: dict[str, dict[str, Any]] = field(default_factory=dict)
    introspection_status: int = 200
    hits: Counter[str] = field(default_factory=Counter)
    authorizations: list[str | None] = field(default_factory=list)
    introspected_forms: list[dict[str, str]] = field(default_factory=list)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.as_dict(private=False) for k in self.keys]}

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.metadata_issuer or self.issuer,
            "jwks_uri": f"{self.issuer}/keys",
            "introspection_endpoint": f"{self.issuer}/introspect",
        }


class FakeAuthorizationServer:
    def __init__(self) -> None:
        self.tenants: dict[str, Tenant] = {}
        self.base_url = ""
        self.app = Starlette(
            routes=[
                Route("/t/{name}/.well-known/openid-configuration", self._oidc),
                Route("/.well-known/oauth-authorization-server/t/{name}", self._oauth),
                Route("/t/{name}/keys", self._keys),
                Route("/t/{name}/.well-known/jwks.json", self._keys),
                Route("/t/{name}/introspect", self._introspect, methods=["POST"]),
            ]
        )

    def tenant(self) -> Tenant:
        name = secrets.token_hex(6)
        tenant = Tenant(name=name, issuer=f"{self.base_url}/t/{name}")
        self.tenants[name] = tenant
        return tenant

    def _get(self, request: Request, route: str) -> Tenant | None:
        tenant = self.tenants.get(request.path_params["name"])
        if tenant is not None:
            tenant.hits[route] += 1
        return tenant

    async def _oidc(self, request: Request) -> Response:
        tenant = self._get(request, "oidc")
        if tenant is None or tenant.discovery != "oidc":
            return JSONResponse({"error": "not_found"}, status_code=404)
        return JSONResponse(tenant.metadata())

    async def _oauth(self, request: Request) -> Response:
        tenant = self._get(request, "oauth")
        if tenant is None or tenant.discovery not in ("oidc", "oauth"):
            return JSONResponse({"error": "not_found"}, status_code=404)
        return JSONResponse(tenant.metadata())

    async def _keys(self, request: Request) -> Response:
        tenant = self._get(request, "jwks")
        if tenant is None:
            return JSONResponse({"error": "not_found"}, status_code=404)
        if tenant.jwks_status != 200:
            return JSONResponse({"error": "server_error"}, status_code=tenant.jwks_status)
        return JSONResponse(tenant.jwks())

    async def _introspect(self, request: Request) -> Response:
        tenant = self._get(request, "introspect")
        if tenant is None:
            return JSONResponse({"error": "not_found"}, status_code=404)
        tenant.authorizations.append(request.headers.get("authorization"))
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        tenant.introspected_forms.append(form)
        if tenant.introspection_status != 200:
            return JSONResponse({"error": "server_error"}, status_code=tenant.introspection_status)
        if not _basic_ok(request.headers.get("authorization")):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        return JSONResponse(tenant.introspection.get(form.get("token", ""), {"active": False}))


def _basic_ok(header: str | None) -> bool:
    # Decoded independently of the code under test: RFC 6749 section 2.3.1 + Appendix B.
    if not header or not header.startswith("Basic "):
        return False
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return unquote_plus(user) == CLIENT_ID and unquote_plus(password) == CLIENT_SECRET


@pytest.fixture(scope="session")
def auth_server() -> Iterator[FakeAuthorizationServer]:
    fake = FakeAuthorizationServer()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    fake.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(fake.app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fake authorization server did not start")
        time.sleep(0.01)
    yield fake
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@dataclass(frozen=True)
class Keys:
    es256: ECKey
    rs256: RSAKey
    eddsa: OKPKey

    def by_alg(self, alg: str) -> PrivateKey:
        by_alg: dict[str, PrivateKey] = {"ES256": self.es256, "RS256": self.rs256}
        by_alg["EdDSA"] = self.eddsa
        return by_alg[alg]


def new_key(alg: str, kid: str | None = None) -> PrivateKey:
    parameters: dict[str, Any] = {"kid": kid or secrets.token_hex(8), "alg": alg, "use": "sig"}
    if alg == "ES256":
        return ECKey.generate_key("P-256", parameters=parameters)  # type: ignore[arg-type]
    if alg == "RS256":
        return RSAKey.generate_key(2048, parameters=parameters)  # type: ignore[arg-type]
    return OKPKey.generate_key("Ed25519", parameters=parameters)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(
        es256=new_key("ES256"),  # type: ignore[arg-type]
        rs256=new_key("RS256"),  # type: ignore[arg-type]
        eddsa=new_key("EdDSA"),  # type: ignore[arg-type]
    )


@pytest.fixture
def idp(auth_server: FakeAuthorizationServer, keys: Keys) -> Tenant:
    tenant = auth_server.tenant()
    tenant.keys = [keys.es256, keys.rs256, keys.eddsa]
    return tenant


@pytest.fixture
def clock() -> Clock:
    return Clock()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A compact JWS assembled by hand (for headers no library will sign)."""
    return ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), b64(signature)]
    )


class Minter:
    """Mints RFC 9068 access tokens for one tenant with joserfc."""

    def __init__(self, tenant: Tenant, clock: Clock) -> None:
        self.tenant = tenant
        self.clock = clock

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(self.clock().timestamp())
        claims: dict[str, Any] = {
            "iss": self.tenant.issuer,
            "aud": AUDIENCE,
            "sub": "user-1",
            "client_id": "client-1",
            "iat": now,
            "exp": now + 300,
            "jti": secrets.token_hex(8),
            "sid": "session-1",
            "scope": "models:read models:write",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(
        self,
        key: PrivateKey | OctKey | None = None,
        *,
        alg: str | None = None,
        header: dict[str, Any] | None = None,
        **claim_overrides: Any,
    ) -> str:
        key = key or self.tenant.keys[0]
        alg = alg or str(key.get("alg"))
        protected: dict[str, Any] = {"alg": alg, "kid": key.kid, "typ": "at+jwt"}
        protected.update(header or {})
        protected = {k: v for k, v in protected.items() if v is not None}
        return jwt.encode(
            protected, self.claims(**claim_overrides), key, algorithms=[alg], default_type=None
        )


@pytest.fixture
def mint(idp: Tenant, clock: Clock) -> Minter:
    return Minter(idp, clock)


MakeVerifier = Callable[..., TokenVerifier]


@pytest.fixture
async def make_verifier(idp: Tenant, clock: Clock) -> AsyncIterator[MakeVerifier]:
    made: list[TokenVerifier] = []

    def make(**kwargs: Any) -> TokenVerifier:
        kwargs.setdefault("clock", clock)
        issuer = kwargs.pop("issuer", idp.issuer)
        audience = kwargs.pop("audience", AUDIENCE)
        verifier = TokenVerifier(issuer, audience, **kwargs)
        made.append(verifier)
        return verifier

    yield make
    for verifier in made:
        await verifier.aclose()


@pytest.fixture
def verifier(make_verifier: MakeVerifier) -> TokenVerifier:
    return make_verifier()


def introspection_config(**overrides: Any) -> IntrospectionConfig:
    values: dict[str, Any] = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    values.update(overrides)
    return IntrospectionConfig(**values)
