"""Helpers for driving the HTML forms in-process, as a browser would."""

from __future__ import annotations

import re

import httpx

_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
PASSWORD = "correct horse battery staple 92"


def csrf_from(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


async def sign_in(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, next_path: str = "/account"
) -> httpx.Response:
    page = await client.get("/login")
    return await client.post(
        "/login",
        data={
            "email": email,
            "password": password,
            "csrf_token": csrf_from(page.text),
            "next": next_path,
        },
    )


_DATA_CSRF = re.compile(r'data-csrf="([0-9a-f]{64})"')


def data_csrf_from(html: str) -> str:
    """The CSRF token a page hands its passkey script (sent in the X-CSRF-Token header)."""
    match = _DATA_CSRF.search(html)
    assert match, "page has no passkey ceremony"
    return match.group(1)


async def ceremony(
    client: httpx.AsyncClient, page: str, options_url: str
) -> tuple[dict[str, str], dict[str, object]]:
    """What webauthn.js does first: the page's token, then the options (200 expected)."""
    html = (await client.get(page)).text
    headers = {"X-CSRF-Token": data_csrf_from(html)}
    answer = await client.post(options_url, json={}, headers=headers)
    assert answer.status_code == 200, answer.text
    return headers, answer.json()["publicKey"]
