"""Browser sign-in, account page and session revocation, in-process over ASGI."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest

from tests.web.helpers import PASSWORD, csrf_from, sign_in

EMAIL = "ada@example.com"


@pytest.fixture
async def user(app: Any) -> Any:
    async with app.state.runtime.unit() as unit:
        return await unit.accounts.create_user(EMAIL, PASSWORD, name="Ada Lovelace")


def _other_client(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("198.51.100.4", 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def test_account_requires_sign_in(client: httpx.AsyncClient) -> None:
    response = await client.get("/account")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/account"


async def test_sign_in_then_account_lists_the_session(client: httpx.AsyncClient, user: Any) -> None:
    response = await sign_in(client, EMAIL)
    assert response.status_code == 303
    assert response.headers["location"] == "/account"
    page = await client.get("/account")
    assert page.status_code == 200
    assert "Ada Lovelace" in page.text
    assert EMAIL in page.text
    assert page.text.count("data-sid=") == 1
    assert 'class="current"' in page.text
    assert "203.0.113.7" in page.text  # the session records where it came from


async def test_session_cookie_attributes(client: httpx.AsyncClient, user: Any) -> None:
    response = await sign_in(client, EMAIL)
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("ostiary_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/" in cookie


async def test_https_issuer_uses_host_prefixed_secure_cookies(
    backend: Any, tmp_path: Any, clock: Any
) -> None:
    from ostiary.web.app import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(backend, tmp_path, issuer="https://id.example"), clock=clock)
    async with app.state.runtime.unit() as unit:
        await unit.accounts.create_user(EMAIL, PASSWORD)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://id.example") as c:
        page = await c.get("/login")
        assert "__Host-ostiary_csrf=" in page.headers["set-cookie"]
        assert "Secure" in page.headers["set-cookie"]
        response = await sign_in(c, EMAIL)
        assert response.headers["set-cookie"].startswith("__Host-ostiary_session=")
        assert "Secure" in response.headers["set-cookie"]
        assert (await c.get("/account")).status_code == 200
    await app.state.runtime.close()


async def test_wrong_password_and_unknown_email_look_the_same(
    client: httpx.AsyncClient, user: Any
) -> None:
    wrong = await sign_in(client, EMAIL, "not the password at all")
    unknown = await sign_in(client, "nobody@example.com", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert "Incorrect e-mail address or password." in wrong.text
    assert "Incorrect e-mail address or password." in unknown.text
    assert "set-cookie" not in wrong.headers or "ostiary_session" not in wrong.headers["set-cookie"]


@pytest.mark.parametrize(
    "next_path",
    ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", ""],
)
async def test_no_open_redirect(client: httpx.AsyncClient, user: Any, next_path: str) -> None:
    response = await sign_in(client, EMAIL, next_path=next_path)
    assert response.status_code == 303
    assert response.headers["location"] == "/account"


async def test_local_next_path_is_honoured(client: httpx.AsyncClient, user: Any) -> None:
    response = await sign_in(client, EMAIL, next_path="/account?tab=sessions")
    assert response.headers["location"] == "/account?tab=sessions"


async def test_login_without_valid_csrf_is_refused(client: httpx.AsyncClient, user: Any) -> None:
    await client.get("/login")
    data = {"email": EMAIL, "password": PASSWORD, "csrf_token": "0" * 64}
    response = await client.post("/login", data=data)
    assert response.status_code == 403
    assert (await client.get("/account")).status_code == 303


async def test_cross_origin_post_is_refused(client: httpx.AsyncClient, user: Any) -> None:
    page = await client.get("/login")
    data = {"email": EMAIL, "password": PASSWORD, "csrf_token": csrf_from(page.text)}
    response = await client.post("/login", data=data, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403


async def test_throttled_after_repeated_failures(
    client: httpx.AsyncClient, user: Any, app: Any
) -> None:
    limit = app.state.runtime.settings.login_account_failures
    for _ in range(limit):
        assert (await sign_in(client, EMAIL, "definitely wrong pw")).status_code == 401
    response = await sign_in(client, EMAIL, PASSWORD)
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0


async def test_session_id_changes_on_sign_in(client: httpx.AsyncClient, user: Any) -> None:
    # ASVS V3.2.1: a new session token on authentication; the previous one stops working.
    first = (await sign_in(client, EMAIL)).cookies["ostiary_session"]
    token = csrf_from((await client.get("/account")).text)
    response = await client.post(
        "/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 303
    second = response.cookies["ostiary_session"]
    assert second != first
    client.cookies.set("ostiary_session", first)
    assert (await client.get("/account")).status_code == 303


async def test_logout_ends_the_session(client: httpx.AsyncClient, user: Any) -> None:
    await sign_in(client, EMAIL)
    cookie = client.cookies["ostiary_session"]
    token = csrf_from((await client.get("/account")).text)
    response = await client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    client.cookies.set("ostiary_session", cookie)
    assert (await client.get("/account")).status_code == 303


async def test_logout_requires_csrf(client: httpx.AsyncClient, user: Any) -> None:
    await sign_in(client, EMAIL)
    response = await client.post("/logout", data={"csrf_token": "bad"})
    assert response.status_code == 403
    assert (await client.get("/account")).status_code == 200


async def test_revoke_another_session_and_sign_out_everywhere_else(
    client: httpx.AsyncClient, user: Any, app: Any
) -> None:
    await sign_in(client, EMAIL)
    async with _other_client(app) as second, _other_client(app) as third:
        await sign_in(second, EMAIL)
        await sign_in(third, EMAIL)
        page = await client.get("/account")
        assert page.text.count("data-sid=") == 3
        sids = [s.split('"')[0] for s in page.text.split('data-sid="')[1:]]
        current = page.text.split('data-sid="')[1:]
        own = next(s.split('"')[0] for s in current if 'class="current"' in s.split(">")[0])
        victim = next(s for s in sids if s != own)
        token = csrf_from(page.text)
        response = await client.post(
            f"/account/sessions/{victim}/revoke", data={"csrf_token": token}
        )
        assert response.status_code == 303
        statuses = {(await c.get("/account")).status_code for c in (second, third)}
        assert statuses == {200, 303}  # exactly one of them was revoked
        response = await client.post("/account/sessions/revoke-others", data={"csrf_token": token})
        assert response.status_code == 303
        assert (await second.get("/account")).status_code == 303
        assert (await third.get("/account")).status_code == 303
        assert (await client.get("/account")).status_code == 200


async def test_revoking_the_current_session_signs_out(client: httpx.AsyncClient, user: Any) -> None:
    await sign_in(client, EMAIL)
    page = await client.get("/account")
    sid = page.text.split('data-sid="')[1].split('"')[0]
    response = await client.post(
        f"/account/sessions/{sid}/revoke", data={"csrf_token": csrf_from(page.text)}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert (await client.get("/account")).status_code == 303


async def test_cannot_revoke_someone_elses_session(
    client: httpx.AsyncClient, user: Any, app: Any
) -> None:
    async with app.state.runtime.unit() as unit:
        await unit.accounts.create_user("eve@example.com", PASSWORD)
    async with _other_client(app) as eve:
        await sign_in(eve, "eve@example.com")
        eve_page = await eve.get("/account")
        eve_sid = eve_page.text.split('data-sid="')[1].split('"')[0]
        await sign_in(client, EMAIL)
        token = csrf_from((await client.get("/account")).text)
        response = await client.post(
            f"/account/sessions/{eve_sid}/revoke", data={"csrf_token": token}
        )
        assert response.status_code == 404
        assert (await eve.get("/account")).status_code == 200


async def test_disabled_user_is_signed_out_at_once(
    client: httpx.AsyncClient, user: Any, app: Any
) -> None:
    await sign_in(client, EMAIL)
    assert (await client.get("/account")).status_code == 200
    async with app.state.runtime.unit() as unit:
        await unit.accounts.disable(EMAIL)  # without ending sessions: the page must still refuse
    assert (await client.get("/account")).status_code == 303


async def test_security_headers_on_pages(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-content-type-options"] == "nosniff"


async def test_logs_of_a_sign_in_hold_no_secret(
    client: httpx.AsyncClient, user: Any, app: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from ostiary.web.logs import configure_logging, stop_logging

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging("debug", json=True)  # writes to the (captured) stderr
    try:
        response = await sign_in(client, EMAIL)
        await client.get("/account")
        async with _other_client(app) as other:
            assert (await sign_in(other, EMAIL, "wrong password here")).status_code == 401
    finally:
        stop_logging()  # the writer thread's queued lines go out before stderr is read
        root.handlers[:], level = saved
        root.setLevel(level)
    session_id = response.cookies["ostiary_session"]
    text = capsys.readouterr().err
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert any(line.get("route") == "/login" and line.get("request_id") for line in lines)
    assert PASSWORD not in text
    assert "wrong password here" not in text
    assert session_id not in text
    assert EMAIL not in text


async def test_concurrent_guesses_over_http_are_checked_at_most_limit_times(
    client: httpx.AsyncClient, user: Any, app: Any
) -> None:
    # Issue 9 item 1: the route counts the attempt before argon2, not after it.
    rt = app.state.runtime
    limit = rt.settings.login_account_failures
    verified: list[str] = []
    changed, gate = asyncio.Event(), asyncio.Event()
    original = rt.hasher.verify

    async def gated(stored: str | None, password: str) -> bool:
        verified.append(password)
        changed.set()
        await gate.wait()  # every guess is in flight before the first one fails
        return bool(await original(stored, password))

    rt.hasher.verify = gated
    token = csrf_from((await client.get("/login")).text)

    def post(password: str) -> asyncio.Task[httpx.Response]:
        data = {"email": EMAIL, "password": password, "csrf_token": token}
        task = asyncio.create_task(client.post("/login", data=data))
        task.add_done_callback(lambda _: changed.set())
        return task

    async def until(condition: Any) -> None:
        while not condition():
            changed.clear()
            await changed.wait()

    wrong = [post(f"wrong guess number {i}") for i in range(5 * limit)]
    await until(lambda: len(verified) + sum(t.done() for t in wrong) == len(wrong))
    checked = len(verified)
    right = post(PASSWORD)  # the owner's password, sent last
    await until(lambda: right.done() or len(verified) > checked)
    gate.set()
    statuses = [r.status_code for r in await asyncio.gather(*wrong)]
    assert (await right).status_code == 429
    assert len(verified) == limit
    assert statuses.count(401) == limit
    assert statuses.count(429) == len(wrong) - limit


async def test_known_device_cookie_survives_a_lockout_by_guessing(
    client: httpx.AsyncClient, user: Any, app: Any
) -> None:
    # Issue 9 item 7: wrong passwords from elsewhere must not lock the owner's browser out.
    first = await sign_in(client, EMAIL)
    assert first.status_code == 303
    device = next(
        c for c in first.headers.get_list("set-cookie") if c.startswith("ostiary_device=")
    )
    assert "HttpOnly" in device
    assert "SameSite=lax" in device
    assert f"Max-Age={90 * 86400}" in device
    await client.post(
        "/logout", data={"csrf_token": csrf_from((await client.get("/account")).text)}
    )
    limit = app.state.runtime.settings.login_account_failures
    async with _other_client(app) as attacker:
        for _ in range(limit):
            assert (await sign_in(attacker, EMAIL, "definitely wrong pw")).status_code == 401
        assert (await sign_in(attacker, EMAIL, PASSWORD)).status_code == 429
    # Same address as the owner, but a browser that never signed in: the account bound holds.
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50001))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as stranger:
        assert (await sign_in(stranger, EMAIL, PASSWORD)).status_code == 429
    response = await sign_in(client, EMAIL)
    assert response.status_code == 303
    assert (await client.get("/account")).status_code == 200
