"""The suite's shared FastAPI route state (tests/shared_routes.py) keeps each app its own.

The whole in-process suite runs with the route state of our routers built once per process:
these tests check that an app built later still answers with its own state and dependency
overrides, and that an inclusion that differs is built anew.
"""

from __future__ import annotations

from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request

from tests.shared_routes import share_route_state

router = APIRouter()


def greeting() -> str:
    return "hello"


@router.get("/greet")
async def greet(request: Request, word: Annotated[str, Depends(greeting)]) -> dict[str, str]:
    return {"word": word, "app": request.app.state.name}


def _app(name: str, **include: object) -> FastAPI:
    app = FastAPI()
    app.state.name = name
    app.include_router(router, **include)  # type: ignore[arg-type]
    return app


async def _get(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.get(path)


async def test_later_apps_answer_with_their_own_state_and_overrides() -> None:
    with share_route_state() as patched:
        if not patched:
            pytest.skip("this FastAPI has no per-inclusion route state to share")
        first, second = _app("first"), _app("second")
        second.dependency_overrides[greeting] = lambda: "overridden"
        assert (await _get(first, "/greet")).json() == {"word": "hello", "app": "first"}
        assert (await _get(second, "/greet")).json() == {"word": "overridden", "app": "second"}
        assert (await _get(first, "/greet")).json() == {"word": "hello", "app": "first"}


async def test_a_different_inclusion_is_built_anew() -> None:
    with share_route_state() as patched:
        if not patched:
            pytest.skip("this FastAPI has no per-inclusion route state to share")
        plain, prefixed = _app("plain"), _app("prefixed", prefix="/v2")
        assert (await _get(plain, "/greet")).status_code == 200
        assert (await _get(prefixed, "/v2/greet")).json() == {"word": "hello", "app": "prefixed"}
        assert (await _get(prefixed, "/greet")).status_code == 404
