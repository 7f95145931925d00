"""CORS for browser-based public clients (OAuth 2.0 for Browser-Based Apps, section 6.1).

Only the endpoints a page calls directly get CORS headers (discovery, JWKS, token, userinfo,
revocation), and only for origins of redirect URIs registered by public clients: the
Fetch Standard's CORS protocol, with the origin echoed (never ``*``) and ``Vary: Origin``.
Credentials (cookies) are never allowed cross-origin.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CORS_PATHS", "PublicClientCors", "origin_of"]

CORS_PATHS = frozenset(
    {
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/.well-known/jwks.json",
        "/token",
        "/userinfo",
        "/revoke",
    }
)
_ALLOW_HEADERS = b"authorization, content-type, dpop"
_TTL = 5.0


def origin_of(uri: str) -> str | None:
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


class PublicClientCors:
    def __init__(self, app: ASGIApp, load_origins: Callable[[], Awaitable[frozenset[str]]]) -> None:
        self.app = app
        self._load = load_origins
        self._origins: frozenset[str] = frozenset()
        self._loaded_at = float("-inf")

    async def _allowed(self, origin: str) -> bool:
        now = time.monotonic()
        if now - self._loaded_at > _TTL:
            self._origins = await self._load()
            self._loaded_at = now
        return origin.lower() in self._origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in CORS_PATHS:
            await self.app(scope, receive, send)
            return
        origin = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"origin"), None)
        allowed = origin is not None and await self._allowed(origin)
        if scope["method"] == "OPTIONS" and origin is not None:
            headers = [(b"vary", b"Origin")]
            if allowed:
                assert origin is not None
                headers += [
                    (b"access-control-allow-origin", origin.encode("latin-1")),
                    (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
                    (b"access-control-allow-headers", _ALLOW_HEADERS),
                    (b"access-control-max-age", b"600"),
                ]
            await send(
                {
                    "type": "http.response.start",
                    "status": 204 if allowed else 403,
                    "headers": headers,
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"vary", b"Origin"))
                if allowed and origin is not None:
                    headers.append((b"access-control-allow-origin", origin.encode("latin-1")))
                    headers.append((b"access-control-expose-headers", b"www-authenticate"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_cors)
