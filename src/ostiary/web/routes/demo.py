"""A demo relying party at ``/demo`` (``ostiary dev`` only).

It is a real OAuth client of this server: it builds an authorization request with PKCE S256,
receives the code at ``/demo/callback``, and calls the token, userinfo, introspection and
revocation endpoints over HTTP exactly as an external application would, so a new user sees
the whole flow in their browser within a minute of starting the server.

Its buttons are forms that change state (start a sign-in, spend or revoke the refresh token,
log out), so each POST carries the CSRF token of the other pages (OWASP ASVS 4.0 V4.2.2; the
signed double-submit cookie of :mod:`ostiary.web.csrf`) and is refused with the same 403 page
without it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections import OrderedDict
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

if TYPE_CHECKING:
    import httpx

from ostiary.web.deps import read_form
from ostiary.web.errors import PageError
from ostiary.web.routes.browser import render_form, require_csrf

router = APIRouter(tags=["demo"], include_in_schema=False)

_COOKIE = "ostiary_demo"
_STATE: OrderedDict[str, dict[str, Any]] = OrderedDict()
_LIMIT = 256


def _store(request: Request) -> tuple[str, dict[str, Any]]:
    key = request.cookies.get(_COOKIE, "")
    if key not in _STATE:
        key = secrets.token_urlsafe(16)
        _STATE[key] = {}
        while len(_STATE) > _LIMIT:
            _STATE.popitem(last=False)
    return key, _STATE[key]


def _config(request: Request) -> dict[str, str]:
    demo: dict[str, str] | None = getattr(request.app.state, "demo_client", None)
    if not demo:
        raise PageError(404, "The demo runs only under `ostiary dev`.")
    return demo


def _respond(request: Request, key: str, response: Response) -> Response:
    response.set_cookie(_COOKIE, key, httponly=True, samesite="lax", path="/demo")
    return response


def _decode_segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    data: dict[str, Any] = orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return data


@router.get("/demo")
async def demo_home(request: Request) -> Response:
    demo = _config(request)
    key, state = _store(request)
    tokens = state.get("tokens")
    view: dict[str, Any] = {
        "client_id": demo["client_id"],
        "tokens": tokens,
        "result": state.pop("result", None),
    }
    if tokens:
        view["id_token"] = _decode_segment(tokens["id_token"], 1) if "id_token" in tokens else None
        view["access_header"] = _decode_segment(tokens["access_token"], 0)
        view["access_claims"] = _decode_segment(tokens["access_token"], 1)
        view["userinfo"] = state.get("userinfo")
    return _respond(request, key, render_form(request, "demo.html", **view, pretty=_pretty))


def _pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


async def _checked_form(request: Request) -> None:
    """Every demo POST: the CSRF token of the page it was sent from, or 403."""
    form = await read_form(request)
    require_csrf(request, form.get("csrf_token"))


@router.post("/demo/login")
async def demo_login(request: Request) -> Response:
    demo = _config(request)
    await _checked_form(request)
    key, state = _store(request)
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    state.update(
        verifier=verifier, state=secrets.token_urlsafe(12), nonce=secrets.token_urlsafe(12)
    )
    query = urlencode(
        {
            "response_type": "code",
            "client_id": demo["client_id"],
            "redirect_uri": demo["redirect_uri"],
            "scope": "openid profile email offline_access",
            "state": state["state"],
            "nonce": state["nonce"],
            "code_challenge": challenge.decode(),
            "code_challenge_method": "S256",
        }
    )
    return _respond(request, key, RedirectResponse(f"/authorize?{query}", status_code=303))


async def _call(demo: dict[str, str], path: str, data: dict[str, str]) -> httpx.Response:
    import httpx  # dev mode only: production workers never load it

    async with httpx.AsyncClient(base_url=demo["issuer"], timeout=10) as http:
        return await http.post(path, data=data, auth=(demo["client_id"], demo["client_secret"]))


@router.get("/demo/callback")
async def demo_callback(request: Request) -> Response:
    demo = _config(request)
    key, state = _store(request)
    params = request.query_params
    if params.get("error"):
        state["result"] = {
            "error": params.get("error"),
            "error_description": params.get("error_description"),
        }
        return _respond(request, key, RedirectResponse("/demo", status_code=303))
    if not state.get("state") or params.get("state") != state.get("state"):
        raise PageError(400, "The state does not match this browser's sign-in attempt.")
    if params.get("iss") != demo["issuer"]:
        raise PageError(400, "The response came from another issuer (RFC 9207).")
    response = await _call(
        demo,
        "/token",
        {
            "grant_type": "authorization_code",
            "code": params.get("code", ""),
            "redirect_uri": demo["redirect_uri"],
            "code_verifier": state.pop("verifier", ""),
        },
    )
    tokens = response.json()
    if response.status_code != 200:
        state["result"] = tokens
    else:
        state["tokens"] = tokens
        import httpx

        async with httpx.AsyncClient(base_url=demo["issuer"], timeout=10) as http:
            info = await http.get(
                "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
            )
        state["userinfo"] = info.json()
    return _respond(request, key, RedirectResponse("/demo", status_code=303))


@router.post("/demo/{action}")
async def demo_action(request: Request, action: str) -> Response:
    demo = _config(request)
    await _checked_form(request)
    key, state = _store(request)
    tokens = state.get("tokens") or {}
    if action == "refresh" and tokens.get("refresh_token"):
        response = await _call(
            demo,
            "/token",
            {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        )
        if response.status_code == 200:
            state["tokens"] = response.json()
        state["result"] = {
            "refresh": response.status_code,
            **({} if response.status_code == 200 else response.json()),
        }
    elif action in ("introspect-access", "introspect-refresh") and tokens:
        which = "access_token" if action == "introspect-access" else "refresh_token"
        response = await _call(demo, "/introspect", {"token": tokens.get(which, "")})
        state["result"] = {f"introspect {which}": response.json()}
    elif action == "revoke" and tokens:
        response = await _call(demo, "/revoke", {"token": tokens.get("refresh_token", "")})
        state["result"] = {"revoke refresh_token": response.status_code}
    elif action == "logout":
        id_token = tokens.get("id_token", "")
        state.clear()
        query = urlencode(
            {
                "id_token_hint": id_token,
                "post_logout_redirect_uri": demo["post_logout_redirect_uri"],
            }
        )
        return _respond(request, key, RedirectResponse(f"/end_session?{query}", status_code=303))
    else:
        raise PageError(404, "Unknown demo action.")
    return _respond(request, key, RedirectResponse("/demo", status_code=303))
