"""A changed e-mail address gets a link that verifies it (web/email_links.py,
web/routes/email_verification.py), in-process over ASGI under ``ostiary dev`` settings (the dev
outbox): mailed after the change, confirmed with a CSRF-checked POST by the signed-in owner
only; another account, a forged or expired link, or an address changed since is refused."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import Backend, make_settings
from tests.web.helpers import PASSWORD, csrf_from, sign_in

OLD, NEW = "ada@example.com", "ada.lovelace@example.org"


@pytest.fixture
async def dev_app(backend: Backend, tmp_path: Path, clock: Any) -> AsyncIterator[Any]:
    from ostiary.web.app import create_app

    application = create_app(make_settings(backend, tmp_path, dev_mode=True), clock=clock)
    async with application.state.runtime.unit() as unit:
        await unit.accounts.create_user(OLD, PASSWORD, email_verified=True)
        await unit.accounts.create_user("eve@example.com", PASSWORD)
    yield application
    await application.state.runtime.close()


def _browser(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def _change(client: httpx.AsyncClient, email: str) -> httpx.Response:
    page = await client.get("/account/email")
    return await client.post(
        "/account/email",
        data={"csrf_token": csrf_from(page.text), "email": email, "current_password": PASSWORD},
    )


def _link(app: Any, to: str) -> str:
    texts = [e.message.text for e in app.state.runtime.dev_outbox.messages() if e.message.to == to]
    assert texts, "no message"
    found = re.search(r"http://testserver(/account/email/verify\?token=\S+)", texts[0])
    assert found, texts[0]
    return found.group(1)


async def _verified(app: Any, email: str) -> bool:
    async with app.state.runtime.unit() as unit:
        return bool((await unit.accounts.get_by_email(email)).email_verified)


async def test_the_new_address_is_mailed_a_link_that_verifies_it(dev_app: Any) -> None:
    async with _browser(dev_app) as client:
        await sign_in(client, OLD)
        changed = await _change(client, NEW)
        assert changed.headers["location"] == "/account?notice=email_changed_mailed"
        assert not await _verified(dev_app, NEW)
        link = _link(dev_app, NEW)
        page = await client.get(link)
        assert page.status_code == 200 and NEW in page.text
        assert not await _verified(dev_app, NEW)  # opening the link alone changes nothing
        token = parse_qs(urlsplit(link).query)["token"][0]
        no_csrf = await client.post("/account/email/verify", data={"token": token})
        assert no_csrf.status_code == 403
        done = await client.post(
            "/account/email/verify", data={"csrf_token": csrf_from(page.text), "token": token}
        )
        assert done.status_code == 303 and done.headers["location"].endswith("email_verified")
    assert await _verified(dev_app, NEW)


async def test_the_link_is_refused_to_others_forged_expired_or_stale(
    dev_app: Any, clock: Any
) -> None:
    async with _browser(dev_app) as client:
        await sign_in(client, OLD)
        await _change(client, NEW)
        link = _link(dev_app, NEW)
        token = parse_qs(urlsplit(link).query)["token"][0]
        body, mac = token.split(".")
        # The MAC's last character carries 4 bits of 6: flipping an unused one spells the
        # same bytes another way, which lenient base64 decoding accepted (1 run in ~1,000
        # also hit it by chance with "AA" below).
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        respelled = f"{body}.{mac[:-1]}{alphabet[alphabet.index(mac[-1]) ^ 1]}"
        different = f"{body}.{mac[:-2]}{'AA' if mac[-2:] != 'AA' else 'BA'}"
        for forged in (respelled, different, f"{body[:-2]}xx.{mac}", "", "x" * 5000, "a.b.c"):
            answer = await client.get("/account/email/verify", params={"token": forged})
            assert answer.status_code == 400, forged[:20]
        async with _browser(dev_app) as eve:  # another account's session
            await sign_in(eve, "eve@example.com")
            assert (await eve.get(link)).status_code == 400
        async with _browser(dev_app) as stranger:  # no session: sign in first, then back
            to_login = await stranger.get(link)
            assert to_login.status_code == 303 and to_login.headers["location"].startswith(
                "/login?next=%2Faccount%2Femail%2Fverify"
            )
        clock.advance(timedelta(hours=24))
        await sign_in(client, NEW)
        assert (await client.get(link)).status_code == 400  # expired
    assert not await _verified(dev_app, NEW)


async def test_a_link_for_an_address_changed_since_is_worthless(dev_app: Any) -> None:
    async with _browser(dev_app) as client:
        await sign_in(client, OLD)
        await _change(client, NEW)
        first = _link(dev_app, NEW)
        await _change(client, "third@example.net")
        assert (await client.get(first)).status_code == 400
    assert not await _verified(dev_app, "third@example.net")


async def test_without_a_mailer_the_change_says_nothing_was_sent(
    app: Any, client: httpx.AsyncClient
) -> None:
    async with app.state.runtime.unit() as unit:
        await unit.accounts.create_user(OLD, PASSWORD)
    await sign_in(client, OLD)
    changed = await _change(client, NEW)
    assert changed.headers["location"] == "/account?notice=email_changed"
