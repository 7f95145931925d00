"""Operations endpoints: liveness, readiness, Prometheus metrics (readable by the addresses in
``OSTIARY_METRICS_ALLOW_IPS`` when it is set)."""

from __future__ import annotations

import ipaddress

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from starlette.responses import JSONResponse, Response

from ostiary.storage.sqla.revision import HEAD_REVISION, current_revision, serves_revision
from ostiary.web.deps import runtime_of

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: database reachable, migrated to this release or newer, a key that signs",
    responses={503: {"description": "Not ready"}},
)
async def readyz(request: Request) -> Response:
    rt = runtime_of(request)
    checks: dict[str, str] = {}
    try:
        async with rt.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
        current = await current_revision(rt.engine)
        serves = serves_revision(current)
        checks["migrations"] = (
            "ok" if serves else f"at {current}, this release needs {HEAD_REVISION}"
        )
        if serves:
            # Not ready while no key can sign (a fresh database before the first key exists,
            # or a secret key that does not open it): the token endpoint would answer 503.
            checks["signing_key"] = "unknown"
            async with rt.unit() as unit:
                problem = await unit.keys.can_sign()
            checks["signing_key"] = problem or "ok"
    except Exception as exc:  # readiness must answer, whatever broke
        checks.setdefault("database", f"unreachable: {type(exc).__name__}")
        if checks.get("signing_key") == "unknown":
            checks["signing_key"] = f"cannot check: {type(exc).__name__}"
    if rt.redis is not None:
        try:
            await rt.redis.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"unreachable: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values()) and "migrations" in checks
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )


def _may_read_metrics(request: Request) -> bool:
    allowed = runtime_of(request).settings.metrics_networks
    if allowed is None:
        return True
    try:
        address = ipaddress.ip_address(request.client.host if request.client else "")
    except ValueError:
        return False  # no client address (a Unix socket, a test transport): not in any list
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # a dual-stack socket's view of an IPv4 client
    return any(address in network for network in allowed)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={403: {"description": "The client address is not in OSTIARY_METRICS_ALLOW_IPS"}},
)
async def metrics(request: Request) -> Response:
    if not _may_read_metrics(request):
        return JSONResponse(
            {"error": "forbidden", "error_description": "metrics are not open to this address"},
            status_code=403,
        )
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
