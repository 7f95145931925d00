"""Published metadata: the JWK Set (RFC 7517 section 5).

The set changes only on rotation, so it is cached in process for a few seconds and served
with ``Cache-Control: public, max-age`` no longer than the key publish lead time, so a
verifier that honours it always sees a new key before it signs (OIDC Core section 10.1.1).
"""

from __future__ import annotations

import time

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from ostiary.web.deps import runtime_of

router = APIRouter(tags=["discovery"])

_LOCAL_TTL = 5.0


@router.get(
    "/.well-known/jwks.json",
    summary="JSON Web Key Set of the token signing keys (public members only)",
    response_class=Response,
    responses={200: {"content": {"application/jwk-set+json": {}, "application/json": {}}}},
)
async def jwks(request: Request) -> Response:
    rt = runtime_of(request)
    cached: tuple[float, bytes] | None = getattr(request.app.state, "jwks_cache", None)
    now = time.monotonic()
    if cached is None or now - cached[0] > _LOCAL_TTL:
        async with rt.unit() as unit:
            body = orjson.dumps(await unit.keys.jwks())
        cached = (now, body)
        request.app.state.jwks_cache = cached
    tokens = rt.settings.tokens
    max_age = min(tokens.jwks_max_age, int(tokens.key_publish_lead.total_seconds()) or 0)
    return Response(
        cached[1],
        media_type="application/json",
        headers={"Cache-Control": f"public, max-age={max_age}"},
    )
