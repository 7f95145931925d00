"""Malformed and hostile HTTP input gets a 4xx, never a 5xx, and leaves no partial state.

Every test runs on each configured backend (the ``client`` fixture). Failures of the "never a
5xx" kind show up either as a 500 status or, because the test client re-raises exceptions the
app did not handle, as the exception itself.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from ostiary.features.clock import FrozenClock
from ostiary.storage.sqla.tables import audit_events, sessions
from ostiary.web.app import create_app
from tests.conftest import Backend, make_settings

FORM = {"content-type": "application/x-www-form-urlencoded"}
EMAIL = "hostile.input@example.com"
PASSWORD = "correct horse battery staple 42"
SESSION_COOKIE = "ostiary_session"
CSRF_COOKIE = "ostiary_csrf"
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
_NEXT_FIELD = re.compile(r'name="next" value="([^"]*)"')
MIB = 1024 * 1024


# -- helpers --------------------------------------------------------------------------------


async def csrf_token(client: httpx.AsyncClient, page: str = "/login") -> str:
    """Load a form page: the client keeps the CSRF cookie, the token is returned."""
    response = await client.get(page)
    assert response.status_code == 200, response.status_code
    found = _CSRF_FIELD.search(response.text)
    assert found, "no CSRF token in the page"
    return found.group(1)


async def create_user(app: Any) -> Any:
    async with app.state.runtime.unit() as unit:
        return await unit.accounts.create_user(EMAIL, PASSWORD, name="Hostile Input")


async def sign_in(client: httpx.AsyncClient, app: Any) -> tuple[Any, str]:
    """Create the test user and sign in; returns the user and the account page's CSRF token."""
    user = await create_user(app)
    token = await csrf_token(client)
    response = await client.post(
        "/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 303, response.text
    assert client.cookies.get(SESSION_COOKIE)
    return user, await csrf_token(client, "/account")


async def session_rows(runtime: Any) -> int:
    async with runtime.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(sessions))).scalar_one())


async def audit_rows(runtime: Any) -> int:
    async with runtime.engine.connect() as conn:
        query = select(func.count()).select_from(audit_events)
        return int((await conn.execute(query)).scalar_one())


async def live_sessions(runtime: Any, user_id: str) -> list[Any]:
    async with runtime.unit() as unit:
        return list(await unit.sessions.list_for_user(user_id))


def assert_client_error(response: httpx.Response, *expected: int) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    if expected:
        assert response.status_code in expected, (response.status_code, response.text[:300])


def hidden_next(page: str) -> str:
    found = _NEXT_FIELD.search(page)
    assert found, "no next field in the sign-in form"
    return found.group(1)


FORM_ROUTES = [
    "/login",
    "/logout",
    "/account/sessions/revoke-others",
    "/account/sessions/some-sid/revoke",
]


# -- form bodies ----------------------------------------------------------------------------


async def test_repeated_email_on_sign_in_is_a_400(client: httpx.AsyncClient, app: Any) -> None:
    await create_user(app)
    token = await csrf_token(client)
    body = f"email={EMAIL}&email=other%40example.com&password={PASSWORD}&csrf_token={token}"
    response = await client.post("/login", content=body.encode(), headers=FORM)
    assert_client_error(response, 400)
    assert "repeated" in response.text
    assert SESSION_COOKIE not in response.cookies


@pytest.mark.parametrize(
    "route",
    [
        *FORM_ROUTES,
        "/authorize",
        "/authorize/consent",
        "/account/apps/some-client/revoke",
        "/end_session",
    ],
)
async def test_repeated_parameter_is_a_400_on_every_form(
    client: httpx.AsyncClient, route: str
) -> None:
    token = await csrf_token(client)
    body = f"csrf_token={token}&csrf_token={token}"
    response = await client.post(route, content=body.encode(), headers=FORM)
    assert_client_error(response, 400)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"email=\xff\xfe&password=x&csrf_token=x", id="raw-invalid-utf8"),
        pytest.param(b"email=%FF%FE&password=x&csrf_token=x", id="percent-encoded-invalid-utf8"),
        pytest.param(b"email=%ED%A0%80&password=x", id="encoded-surrogate"),
        pytest.param("email=caf\xe9&password=x".encode("latin-1"), id="latin-1"),
    ],
)
@pytest.mark.parametrize("route", ["/login", "/account/sessions/revoke-others"])
async def test_invalid_utf8_form_body_is_a_400(
    client: httpx.AsyncClient, route: str, body: bytes
) -> None:
    response = await client.post(route, content=body, headers=FORM)
    assert_client_error(response, 400)
    assert "Malformed form" in response.text


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"email=a%00b%40example.com&password=x&csrf_token=x", id="encoded-in-value"),
        pytest.param(b"email=a\x00b%40example.com&password=x&csrf_token=x", id="raw-in-value"),
        pytest.param(b"em%00ail=a&password=x&csrf_token=x", id="in-name"),
        pytest.param(b"email=a&password=%00&csrf_token=x", id="in-password"),
    ],
)
async def test_nul_byte_in_a_field_is_a_400(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post("/login", content=body, headers=FORM)
    assert_client_error(response, 400)
    assert "NUL" in response.text


async def test_too_many_fields_is_a_400(client: httpx.AsyncClient) -> None:
    body = b"&".join(b"f%d=1" % i for i in range(65))
    response = await client.post("/login", content=body, headers=FORM)
    assert_client_error(response, 400)


async def test_form_over_64_kib_is_a_400(client: httpx.AsyncClient) -> None:
    body = b"email=" + b"a" * (64 * 1024) + b"&password=x&csrf_token=x"
    response = await client.post("/login", content=body, headers=FORM)
    assert_client_error(response, 400)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"json": {"email": EMAIL, "password": "x", "csrf_token": "x"}}, id="json"),
        pytest.param(
            {"files": {"email": ("e", b"x")}, "data": {"csrf_token": "x"}}, id="multipart"
        ),
        pytest.param({"content": b"email=x", "headers": {"content-type": "text/plain"}}, id="text"),
        pytest.param({"content": b"email=x"}, id="no-content-type"),
        pytest.param(
            {"content": b"email=x", "headers": {"content-type": b"\xff\xfe/\x01"}}, id="junk"
        ),
        pytest.param(
            {
                "content": b"email=x",
                "headers": {"content-type": "application/x-www-form-urlencodedX"},
            },
            id="lookalike",
        ),
    ],
)
@pytest.mark.parametrize("route", ["/login", "/account/sessions/some-sid/revoke"])
async def test_wrong_content_type_is_a_415(
    client: httpx.AsyncClient, route: str, kwargs: dict[str, Any]
) -> None:
    response = await client.post(route, **kwargs)
    assert_client_error(response, 415)


# -- body size and Content-Length -----------------------------------------------------------


async def test_body_over_1_mib_is_a_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/login", content=b"a" * (MIB + 1), headers=FORM)
    assert_client_error(response, 413)
    assert response.json()["error"] == "request_too_large"
    assert REQUEST_ID.match(response.headers["x-request-id"])


async def test_streamed_body_over_1_mib_without_length_is_a_413(
    client: httpx.AsyncClient,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"a" * 64 * 1024

    response = await client.post("/login", content=chunks(), headers=FORM)
    assert "content-length" not in response.request.headers
    assert_client_error(response, 413)


@pytest.mark.parametrize("route", ["/login", "/healthz", "/no-such-route"])
async def test_huge_content_length_is_a_413(client: httpx.AsyncClient, route: str) -> None:
    headers = {**FORM, "content-length": "9" * 40}
    response = await client.post(route, content=b"email=x", headers=headers)
    assert_client_error(response, 413)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"abc", id="letters"),
        pytest.param(b"-1", id="negative"),
        pytest.param(b"1.5", id="decimal"),
        pytest.param(b"0x10", id="hex"),
        pytest.param(b"", id="empty"),
        pytest.param(b"1 2", id="inner-space"),
        pytest.param("\uff17".encode(), id="fullwidth-digit-as-utf8"),
        # Latin-1 digits that str.isdigit() accepts but int() refuses: "²", "³", "¹".
        pytest.param(b"\xb2", id="superscript-two"),
        pytest.param(b"\xb3\xb9", id="superscript-three-one"),
    ],
)
async def test_non_numeric_content_length_is_a_4xx(client: httpx.AsyncClient, value: bytes) -> None:
    headers = {**FORM, "content-length": value}
    response = await client.post("/login", content=b"email=x", headers=headers)
    assert_client_error(response)
    assert REQUEST_ID.match(response.headers["x-request-id"])


# -- cookies --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cookie",
    [
        pytest.param(f"{SESSION_COOKIE}={'a' * 10_000}".encode(), id="session-10kb"),
        pytest.param(f"{SESSION_COOKIE}={'a' * 128}".encode(), id="session-at-length-limit"),
        pytest.param(b'ostiary_session="\\"\\\\\x01;;==; ===; ;', id="invalid-characters"),
        pytest.param(b"ostiary_session=\xe9\xff\xfe; ostiary_csrf=\xc3\x28", id="non-ascii"),
        pytest.param(b"ostiary_session=ab\x00cd", id="nul"),
        pytest.param(b'ostiary_session="unterminated', id="unbalanced-quote"),
        pytest.param(b"ostiary_session=\\303\\251\\000", id="octal-escapes"),
        pytest.param("; ".join(f"c{i}=v{i}" for i in range(3000)).encode(), id="3000-cookies"),
        pytest.param(f"{CSRF_COOKIE}={'b' * 10_000}".encode(), id="csrf-10kb"),
    ],
)
async def test_garbage_cookies_read_as_signed_out(client: httpx.AsyncClient, cookie: bytes) -> None:
    account = await client.get("/account", headers={"cookie": cookie})
    assert account.status_code == 303
    assert account.headers["location"] == "/login?next=/account"
    login = await client.get("/login", headers={"cookie": cookie})
    assert login.status_code == 200
    assert _CSRF_FIELD.search(login.text)
    logout = await client.post(
        "/logout", content=b"csrf_token=" + b"0" * 64, headers={**FORM, "cookie": cookie}
    )
    assert_client_error(logout, 403)


async def test_oversized_session_cookie_with_a_valid_csrf_pair_signs_out_cleanly(
    client: httpx.AsyncClient,
) -> None:
    client.cookies.set(SESSION_COOKIE, "a" * 10_000)
    token = await csrf_token(client)  # the token is bound to the session cookie sent
    response = await client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


# /login checks the token itself; the account forms check it before the session.
@pytest.mark.parametrize("route", ["/login", "/account/sessions/x/revoke"])
@pytest.mark.parametrize(
    "token",
    [
        pytest.param("\xe9" * 64, id="64-latin-1-letters"),
        pytest.param("\u20ac" * 64, id="64-euro-signs"),
        pytest.param("0" * 63 + "\xe9", id="63-hex-and-one-non-ascii"),
        pytest.param("0" * 65, id="65-chars"),
        pytest.param("", id="empty"),
    ],
)
async def test_malformed_csrf_token_with_a_csrf_cookie_is_a_403(
    client: httpx.AsyncClient, route: str, token: str
) -> None:
    await csrf_token(client)  # the browser holds a real CSRF cookie
    response = await client.post(route, data={"email": EMAIL, "password": "x", "csrf_token": token})
    assert_client_error(response, 403)


# -- parameters, paths, methods, headers ----------------------------------------------------


async def test_5000_char_next_is_kept_or_dropped_consistently(
    client: httpx.AsyncClient, app: Any
) -> None:
    long_next = "/" + "a" * 4999
    page = await client.get("/login", params={"next": long_next})
    assert page.status_code == 200
    kept = html.unescape(hidden_next(page.text))
    assert kept in (long_next, "/account")

    await create_user(app)
    token = _CSRF_FIELD.search(page.text)
    assert token
    form = {"email": EMAIL, "password": "wrong", "csrf_token": token.group(1), "next": long_next}
    wrong = await client.post("/login", data=form)
    assert_client_error(wrong, 401)
    assert html.unescape(hidden_next(wrong.text)) == kept
    right = await client.post("/login", data={**form, "password": PASSWORD})
    assert right.status_code == 303
    assert right.headers["location"] == kept


async def test_overlong_next_falls_back_to_the_account_page(
    client: httpx.AsyncClient, app: Any
) -> None:
    await create_user(app)
    token = await csrf_token(client)
    overlong = "/" + "a" * 60_000  # the form stays under 64 KiB
    form = {"email": EMAIL, "password": PASSWORD, "csrf_token": token, "next": overlong}
    response = await client.post("/login", data=form)
    assert response.status_code == 303
    assert response.headers["location"] == "/account"


@pytest.mark.parametrize(
    ("next_value", "kept"),
    [
        ('/"><script>alert(1)</script>', True),
        ("/%0d%0aSet-Cookie:x=y", True),
        ("/\x00/evil.example", False),
        ("/\r\nSet-Cookie:x=y", False),
        ("//evil.example", False),
        ("/\\evil.example", False),
        ("https://evil.example/", False),
        ("javascript:alert(1)", False),
    ],
)
async def test_hostile_next_is_dropped_or_kept_escaped(
    client: httpx.AsyncClient, next_value: str, kept: bool
) -> None:
    page = await client.get("/login", params={"next": next_value})
    assert page.status_code == 200
    assert "<script>alert(1)" not in page.text
    assert "\x00" not in page.text
    assert html.unescape(hidden_next(page.text)) == (next_value if kept else "/account")


async def test_invalid_percent_encoding_in_the_query_is_harmless(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/login?next=%ZZ%FF%00&next=%")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "accept",
    [None, "application/json", "*/*", b"\xff\xfe", "text/plain"],
)
async def test_unknown_route_is_a_json_404_unless_html_is_accepted(
    client: httpx.AsyncClient, accept: str | bytes | None
) -> None:
    headers = {"accept": accept} if accept is not None else {}
    response = await client.get("/no/such/route", headers=headers)
    assert_client_error(response, 404)
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "not_found", "error_description": "Not Found"}


@pytest.mark.parametrize("accept", ["text/html", "text/html,application/xhtml+xml,*/*;q=0.8"])
async def test_unknown_route_is_an_html_page_for_browsers(
    client: httpx.AsyncClient, accept: str
) -> None:
    response = await client.get("/<script>alert(1)</script>", headers={"accept": accept})
    assert_client_error(response, 404)
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>Not found</h1>" in response.text
    assert "<script>alert(1)" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    [
        "/static/..%2f..%2f..%2fetc%2fpasswd",
        "/static/a%00b",
        "/static/" + "a" * 5000,
        "/account/sessions/%FF%FE/revoke",
        "/%00",
    ],
)
async def test_odd_paths_are_a_4xx(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert_client_error(response)


@pytest.mark.parametrize(
    ("method", "route"),
    [
        ("GET", "/logout"),
        ("PUT", "/login"),
        ("DELETE", "/account"),
        ("PATCH", "/account/sessions/x/revoke"),
        ("GET", "/account/sessions/revoke-others"),
        ("POST", "/healthz"),
        ("FOO", "/login"),
    ],
)
async def test_wrong_method_is_a_405(client: httpx.AsyncClient, method: str, route: str) -> None:
    response = await client.request(method, route)
    assert_client_error(response, 405)
    assert response.json()["error"] == "method_not_allowed"
    assert method not in _allowed(response)


@pytest.mark.parametrize(
    ("route", "allowed"),
    [
        ("/logout", {"POST"}),
        ("/account", {"GET"}),
        ("/account/sessions/x/revoke", {"POST"}),
        ("/healthz", {"GET"}),
        # Two handlers share this path; RFC 9110 section 15.5.6: the Allow header of a 405
        # MUST list the resource's currently supported methods, so both.
        ("/login", {"GET", "POST"}),
    ],
)
async def test_405_allow_header_lists_every_method_of_the_resource(
    client: httpx.AsyncClient, route: str, allowed: set[str]
) -> None:
    response = await client.request("PATCH", route)
    assert_client_error(response, 405)
    assert _allowed(response) == allowed


def _allowed(response: httpx.Response) -> set[str]:
    return {m.strip() for m in response.headers["allow"].split(",") if m.strip()}


async def test_wrong_method_gets_an_html_page_for_browsers(client: httpx.AsyncClient) -> None:
    response = await client.get("/logout", headers={"accept": "text/html"})
    assert_client_error(response, 405)
    assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("route", ["/healthz", "/login", "/account", "/no-such-route"])
async def test_very_long_header_values_are_harmless(client: httpx.AsyncClient, route: str) -> None:
    headers = {
        "user-agent": "u" * 100_000,
        "x-anything": "x" * 100_000,
        "accept-language": "en;q=0.9," * 5_000,
        "origin": "http://" + "o" * 10_000,
    }
    response = await client.get(route, headers=headers)
    assert response.status_code < 500
    assert REQUEST_ID.match(response.headers["x-request-id"])


async def test_sign_in_with_a_100_kb_user_agent_stores_a_bounded_one(
    client: httpx.AsyncClient, app: Any, runtime: Any
) -> None:
    user = await create_user(app)
    token = await csrf_token(client)
    response = await client.post(
        "/login",
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": token},
        headers={"user-agent": "Mozilla/5.0 " + "u" * 100_000},
    )
    assert response.status_code == 303
    (stored,) = await live_sessions(runtime, user.id)
    assert stored.user_agent is not None
    assert 0 < len(stored.user_agent) <= 512


async def test_very_long_session_id_in_the_path_is_a_404(
    client: httpx.AsyncClient, app: Any
) -> None:
    _user, token = await sign_in(client, app)
    response = await client.post(
        "/account/sessions/" + "s" * 10_000 + "/revoke", data={"csrf_token": token}
    )
    assert_client_error(response, 404)


# -- request ids ----------------------------------------------------------------------------


async def test_well_formed_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"x-request-id": "trace-01.AB_cd"})
    assert response.headers["x-request-id"] == "trace-01.AB_cd"


@pytest.mark.parametrize(
    "incoming",
    [
        pytest.param(b"abc\r\nSet-Cookie: ostiary_session=planted", id="crlf"),
        pytest.param(b"<script>alert(1)</script>", id="markup"),
        pytest.param(b"a" * 65, id="65-chars"),
        pytest.param(b"", id="empty"),
        pytest.param(b"has space", id="space"),
        pytest.param(b"../../etc/passwd", id="slashes"),
        pytest.param(b"id\x00nul", id="nul"),
        pytest.param("caf\xe9".encode("latin-1"), id="latin-1"),
        pytest.param("\u2603".encode(), id="utf-8"),
        pytest.param(b"trailing-newline\n", id="trailing-newline"),
    ],
)
@pytest.mark.parametrize("route", ["/healthz", "/no-such-route"])
async def test_hostile_request_id_is_replaced(
    client: httpx.AsyncClient, route: str, incoming: bytes
) -> None:
    response = await client.get(route, headers={"x-request-id": incoming})
    outgoing = response.headers["x-request-id"]
    assert REQUEST_ID.match(outgoing), outgoing
    assert outgoing.encode() != incoming
    assert response.headers.get_list("x-request-id") == [outgoing]
    assert "planted" not in response.headers.get("set-cookie", "")


# -- no partial state -----------------------------------------------------------------------


def _rejections(token: str) -> dict[str, dict[str, Any]]:
    good = f"email={EMAIL}&password={PASSWORD.replace(' ', '+')}"
    return {
        "bad-csrf": {"content": f"{good}&csrf_token={'0' * 64}".encode(), "headers": FORM},
        "no-csrf": {"content": good.encode(), "headers": FORM},
        "foreign-origin": {
            "content": f"{good}&csrf_token={token}".encode(),
            "headers": {**FORM, "origin": "https://evil.example"},
        },
        "repeated-email": {
            "content": f"{good}&email={EMAIL}&csrf_token={token}".encode(),
            "headers": FORM,
        },
        "accepted": {
            "content": f"{good}&csrf_token={token}&next=%2Faccount".encode(),
            "headers": FORM,
        },
        "nul-in-field": {
            "content": f"{good}&csrf_token={token}&extra=%00".encode(),
            "headers": FORM,
        },
        "json": {
            "json": {"email": EMAIL, "password": PASSWORD, "csrf_token": token},
        },
        "over-1-mib": {
            "content": f"{good}&csrf_token={token}&pad={'p' * MIB}".encode(),
            "headers": FORM,
        },
    }


@pytest.mark.parametrize(
    "kind",
    [
        "bad-csrf",
        "no-csrf",
        "foreign-origin",
        "repeated-email",
        "nul-in-field",
        "json",
        "over-1-mib",
    ],
)
async def test_rejected_sign_in_leaves_no_session_and_no_audit_event(
    client: httpx.AsyncClient, app: Any, runtime: Any, kind: str
) -> None:
    user = await create_user(app)
    token = await csrf_token(client)
    rows_before, events_before = await session_rows(runtime), await audit_rows(runtime)
    response = await client.post("/login", **_rejections(token)[kind])

    assert_client_error(response)
    assert SESSION_COOKIE not in response.cookies
    assert await session_rows(runtime) == rows_before == 0
    assert await live_sessions(runtime, user.id) == []
    assert await audit_rows(runtime) == events_before
    # ...and the same credentials still work: nothing was throttled or locked by the rejection.
    ok = await client.post(
        "/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token}
    )
    assert ok.status_code == 303
    assert len(await live_sessions(runtime, user.id)) == 1


async def test_the_no_partial_state_check_sees_a_real_sign_in(
    client: httpx.AsyncClient, app: Any, runtime: Any
) -> None:
    """Control for the test above: an accepted sign-in is visible to the same probes."""
    user = await create_user(app)
    token = await csrf_token(client)
    events_before = await audit_rows(runtime)
    response = await client.post("/login", **_rejections(token)["accepted"])
    assert response.status_code == 303
    assert response.headers["location"] == "/account"
    assert SESSION_COOKIE in response.cookies
    assert len(await live_sessions(runtime, user.id)) == 1
    assert await audit_rows(runtime) > events_before
    if runtime.redis is None:
        assert await session_rows(runtime) == 1


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/logout", "csrf_token=" + "0" * 64),
        ("/logout", "csrf_token=x&csrf_token=x"),
        ("/account/sessions/revoke-others", "csrf_token=" + "0" * 64),
    ],
)
async def test_rejected_sign_out_keeps_the_session(
    client: httpx.AsyncClient, app: Any, runtime: Any, route: str, body: str
) -> None:
    user, _token = await sign_in(client, app)
    (before,) = await live_sessions(runtime, user.id)
    response = await client.post(route, content=body.encode(), headers=FORM)
    assert_client_error(response)
    assert [s.sid for s in await live_sessions(runtime, user.id)] == [before.sid]
    assert (await client.get("/account")).status_code == 200


async def test_revoking_own_session_with_a_forged_token_keeps_it(
    client: httpx.AsyncClient, app: Any, runtime: Any
) -> None:
    user, _token = await sign_in(client, app)
    (current,) = await live_sessions(runtime, user.id)
    response = await client.post(
        f"/account/sessions/{current.sid}/revoke", data={"csrf_token": "f" * 64}
    )
    assert_client_error(response, 403)
    assert [s.sid for s in await live_sessions(runtime, user.id)] == [current.sid]


# -- sessions kept in SQL (the deployment without Redis) --------------------------------------


@pytest.fixture
async def sql_sessions_app(backend: Backend, tmp_path: Path) -> AsyncIterator[Any]:
    """The app with sessions in the database even on the postgres backend (no Redis)."""
    application = create_app(make_settings(backend, tmp_path, redis_url=None), clock=FrozenClock())
    yield application
    await application.state.runtime.close()


@pytest.fixture
async def sql_sessions_client(sql_sessions_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sql_sessions_app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.mark.parametrize(
    "sid",
    ["a%00b", "%00", "x" * 63 + "%00", "%C3%A9%F0%9F%92%A5", "%E2%80%AE"],
)
async def test_odd_session_ids_are_a_4xx_with_sessions_in_sql(
    sql_sessions_client: httpx.AsyncClient, sql_sessions_app: Any, sid: str
) -> None:
    _user, token = await sign_in(sql_sessions_client, sql_sessions_app)
    response = await sql_sessions_client.post(
        f"/account/sessions/{sid}/revoke", data={"csrf_token": token}
    )
    assert_client_error(response, 400, 404)


@pytest.mark.parametrize("client_id", ["a%00b", "%00", "%C3%A9%F0%9F%92%A5", "c" * 300])
async def test_odd_client_ids_in_withdraw_are_a_4xx(
    client: httpx.AsyncClient, app: Any, client_id: str
) -> None:
    _user, token = await sign_in(client, app)
    response = await client.post(f"/account/apps/{client_id}/revoke", data={"csrf_token": token})
    assert_client_error(response, 400, 404)


async def test_control_characters_in_user_agent_never_break_sign_in_with_sessions_in_sql(
    sql_sessions_client: httpx.AsyncClient, sql_sessions_app: Any
) -> None:
    await create_user(sql_sessions_app)
    token = await csrf_token(sql_sessions_client)
    response = await sql_sessions_client.post(
        "/login",
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": token},
        headers={"user-agent": b"Mozilla/5.0\x00\x01\x7f (X11)"},
    )
    assert response.status_code in (303, 400), response.status_code


# -- OAuth endpoints (JSON errors, RFC 6749 section 5.2 / RFC 6750 section 3.1) -------------

OAUTH_FORM_ROUTES = ["/token", "/introspect", "/revoke"]


@pytest.mark.parametrize("route", OAUTH_FORM_ROUTES)
@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param(
            {"content": b"grant_type=a&grant_type=b&token=x", "headers": FORM}, id="repeated"
        ),
        pytest.param({"content": b"grant_type=\xff&token=\xfe", "headers": FORM}, id="bad-utf8"),
        pytest.param({"content": b"grant_type=%00&token=%00", "headers": FORM}, id="nul"),
        pytest.param({"json": {"grant_type": "x", "token": "x"}}, id="json"),
    ],
)
async def test_malformed_oauth_form_is_a_json_invalid_request(
    client: httpx.AsyncClient, route: str, kwargs: dict[str, Any]
) -> None:
    response = await client.post(route, **kwargs)
    assert_client_error(response, 400, 415)
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("route", ["/token", "/introspect"])
@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(b"Basic \xff\xfe", id="latin-1-bytes"),
        pytest.param(b"Basic !!!not-base64", id="not-base64"),
        pytest.param(b"Basic " + base64.b64encode(b"\xff\xfe:\x00"), id="not-utf8-inside"),
        pytest.param(b"Basic " + base64.b64encode(b"no-colon"), id="no-colon"),
        pytest.param(b"Basic " + base64.b64encode(b"a%00b:secret"), id="percent-encoded-nul"),
        pytest.param(b"Basic " + base64.b64encode(b"a%ZZ:%ZZ"), id="bad-percent-escapes"),
        pytest.param(b"Basic " + base64.b64encode(b"a" * 5000 + b":" + b"b" * 5000), id="10kb"),
        pytest.param(b"Basic", id="no-credentials"),
    ],
)
async def test_malformed_basic_credentials_are_a_401(
    client: httpx.AsyncClient, route: str, authorization: bytes
) -> None:
    response = await client.post(
        route,
        content=b"grant_type=client_credentials&token=x",
        headers={**FORM, "authorization": authorization},
    )
    assert_client_error(response, 400, 401)
    assert response.json()["error"] in ("invalid_client", "invalid_request")


@pytest.fixture(params=["no-signing-key-yet", "with-a-signing-key"])
async def signing_keys(request: pytest.FixtureRequest, app: Any) -> str:
    if request.param == "with-a-signing-key":
        async with app.state.runtime.unit() as unit:
            await unit.keys.ensure_keys()
    return str(request.param)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_ES256 = _b64(b'{"alg":"ES256","typ":"at+jwt"}')
_HOSTILE_JWTS = [
    pytest.param(f"{_b64(b'[' * 40000)}.e30.AAAA", id="nested-header"),
    pytest.param(f"{_b64(b'[' * 3000)}.e30.AAAA", id="nested-header-under-8kib"),
    pytest.param(f"{_ES256}.{_b64(b'[' * 5000)}.AAAA", id="nested-claims"),
    pytest.param(_ES256 + "." + _b64(b'{"exp":1e20,"iat":-1e20}') + ".AAAA", id="exp-1e20"),
    pytest.param(_ES256 + "." + _b64(b'{"exp":Infinity,"iat":NaN}') + ".AAAA", id="exp-inf"),
    pytest.param("a.b.c", id="three-dots"),
    pytest.param("eyJhbGciOiJub25lIn0.e30.", id="alg-none"),
    pytest.param("eyJhbGciOiJFUzI1NiIsImtpZCI6W119.e30.AAAA", id="kid-is-a-list"),
    pytest.param("a" * 10_000, id="10kb"),
]


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize(
    "authorization",
    [
        *[pytest.param(f"Bearer {p.values[0]}", id=f"bearer-{p.id}") for p in _HOSTILE_JWTS],
        pytest.param(b"Bearer \xff\xfe", id="latin-1-bytes"),
        pytest.param("Bearer", id="no-token"),
        pytest.param("Basic Zm9vOmJhcg==", id="basic-scheme"),
    ],
)
async def test_hostile_bearer_token_at_userinfo_is_a_401(
    client: httpx.AsyncClient,
    signing_keys: str,
    method: str,
    authorization: str | bytes,
) -> None:
    response = await client.request(method, "/userinfo", headers={"authorization": authorization})
    assert_client_error(response, 400, 401)
    if response.status_code == 401:
        # RFC 6750 section 3: a 401 from a protected resource carries the Bearer challenge.
        assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("route", ["/introspect", "/revoke"])
@pytest.mark.parametrize("token", _HOSTILE_JWTS)
async def test_hostile_tokens_at_introspection_and_revocation_are_harmless(
    client: httpx.AsyncClient, app: Any, signing_keys: str, route: str, token: str
) -> None:
    """RFC 7662 section 2.2: an unusable token is ``active: false``; RFC 7009 section 2.2:
    revoking one is a 200. Neither may be a 500."""
    from ostiary.features.clients.service import ClientRegistration

    async with app.state.runtime.unit() as unit:
        registered, secret = await unit.clients.register(
            ClientRegistration(name="rs", grant_types=("client_credentials",), scopes=("x",))
        )
    response = await client.post(
        route, data={"token": token}, auth=(registered.client_id, str(secret))
    )
    assert response.status_code == 200, response.text
    if route == "/introspect":
        assert response.json() == {"active": False}


@pytest.mark.parametrize("hint", _HOSTILE_JWTS)
async def test_hostile_id_token_hint_at_end_session_is_a_400(
    client: httpx.AsyncClient, signing_keys: str, hint: str
) -> None:
    response = await client.get("/end_session", params={"id_token_hint": hint})
    assert_client_error(response, 400)
