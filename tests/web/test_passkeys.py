"""/account/security's passkeys (web/routes/passkeys.py), in-process over ASGI on
http://localhost (a secure context; the RP ID is ``localhost``): adding one through the two JSON
calls with a software authenticator (tests/soft_authenticator.py), recovery codes for a first
factor, renaming and removing; CSRF in a header, the signed single-use challenge state, the
re-authentication gate, clear 4xx answers to bad input; and pages that say passkeys are off
when the issuer cannot carry them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ostiary.config import Settings
from ostiary.features.clock import FrozenClock
from ostiary.features.mfa.models import Passkey
from ostiary.storage.sqla.mfa_repositories import SqlPasskeyStore
from ostiary.storage.sqla.tables import audit_events, webauthn_credentials
from tests.conftest import Backend, make_settings
from tests.soft_authenticator import SoftAuthenticator
from tests.web.helpers import PASSWORD, ceremony, csrf_from, data_csrf_from, sign_in

ORIGIN = "http://localhost"
PAGE = "/account/security"
OPTIONS = f"{PAGE}/passkeys/options"
VERIFY = f"{PAGE}/passkeys/verify"
EMAIL = "grace@example.com"
STATE = "ostiary_webauthn"


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    return make_settings(backend, tmp_path, issuer=ORIGIN)


def _browser(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    return httpx.AsyncClient(transport=transport, base_url=ORIGIN)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with _browser(app) as browser:
        yield browser


@pytest.fixture
async def grace(app: Any, client: httpx.AsyncClient) -> Any:
    async with app.state.runtime.unit() as unit:
        user = await unit.accounts.create_user(EMAIL, PASSWORD, name="Grace Hopper")
    assert (await sign_in(client, EMAIL)).status_code == 303
    return user


async def _add(
    client: httpx.AsyncClient, device: SoftAuthenticator, name: str = "Laptop"
) -> httpx.Response:
    headers, options = await ceremony(client, PAGE, OPTIONS)
    answer = device.create(options, ORIGIN)
    return await client.post(VERIFY, json={"name": name, "credential": answer}, headers=headers)


async def _rows(app: Any) -> list[Any]:
    async with app.state.runtime.unit() as unit:
        return list(await unit.conn.execute(select(webauthn_credentials)))


async def _audited(app: Any, action: str) -> list[Any]:
    async with app.state.runtime.unit() as unit:
        query = select(audit_events).where(audit_events.c.action == action)
        return list(await unit.conn.execute(query.order_by(audit_events.c.seq)))


async def test_adding_a_first_passkey_shows_recovery_codes_once_and_lists_it(
    app: Any, client: httpx.AsyncClient, grace: Any
) -> None:
    page = await client.get(PAGE)
    assert 'id="add-passkey"' in page.text and 'id="passkeys-none"' in page.text
    assert '<script src="/static/webauthn.js" defer></script>' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp

    headers, options = await ceremony(client, PAGE, OPTIONS)
    assert options["rp"]["id"] == "localhost"
    assert options["user"]["name"] == EMAIL
    assert options["authenticatorSelection"]["residentKey"] == "required"
    state = client.cookies.get(STATE)
    assert state and state.count(".") == 4
    device = SoftAuthenticator(backup_eligible=False, backup_state=False)
    added = await client.post(
        VERIFY,
        json={"name": "Office key", "credential": device.create(options, ORIGIN)},
        headers=headers,
    )
    assert added.status_code == 200, added.text
    body = added.json()
    assert body["redirect"] == f"{PAGE}?notice=passkey_added"
    assert len(body["recovery_codes"]) == 10
    assert STATE not in added.cookies  # the state is cleared (and spent)

    listed = await client.get(body["redirect"])
    assert "The passkey was added." in listed.text
    assert '<td class="passkey-name">Office key</td>' in listed.text
    assert "This device only" in listed.text and "Never" in listed.text
    assert 'id="recovery-left">10<' in listed.text
    [event] = await _audited(app, "mfa.passkey.added")
    assert event.details == {"kind": "hwk", "aaguid": "00112233-4455-6677-8899-aabbccddeeff"}

    second = await _add(client, SoftAuthenticator(), "Phone")
    assert second.status_code == 200 and second.json()["recovery_codes"] == []
    page = await client.get(PAGE)
    assert "Synced" in page.text
    assert len(await _rows(app)) == 2


async def test_known_credentials_are_excluded(
    app: Any, client: httpx.AsyncClient, grace: Any
) -> None:
    device = SoftAuthenticator()
    assert (await _add(client, device)).status_code == 200
    _, options = await ceremony(client, PAGE, OPTIONS)
    excluded = options["excludeCredentials"]
    assert [c["id"] for c in excluded] == [device.create(options, ORIGIN)["id"]]


async def test_the_json_calls_need_the_csrf_header(
    app: Any, client: httpx.AsyncClient, grace: Any
) -> None:
    await client.get(PAGE)
    for headers in ({}, {"X-CSRF-Token": "0" * 64}):
        refused = await client.post(OPTIONS, json={}, headers=headers)
        assert refused.status_code == 403
        assert refused.json()["error"] == "csrf"
        assert STATE not in refused.cookies
    token = data_csrf_from((await client.get(PAGE)).text)
    evil = await client.post(
        OPTIONS, json={}, headers={"X-CSRF-Token": token, "Origin": "https://evil.example"}
    )
    assert evil.status_code == 403


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b'{"name": "x"}', "application/json", 400),
        (b'{"name": "x", "credential": "abc"}', "application/json", 400),
        (b'{"name": 5, "credential": {}}', "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        (b"name=x", "application/x-www-form-urlencoded", 415),
        (b"{" + b'"a":' * 70_000 + b"}", "application/json", 413),
    ],
)
async def test_malformed_bodies_get_a_clear_4xx_and_change_nothing(
    app: Any, client: httpx.AsyncClient, grace: Any, content: bytes, content_type: str, status: int
) -> None:
    headers, _ = await ceremony(client, PAGE, OPTIONS)
    answer = await client.post(
        VERIFY, content=content, headers={**headers, "Content-Type": content_type}
    )
    assert answer.status_code == status, answer.text
    if status != 413:
        assert answer.json()["error_description"]
    assert await _rows(app) == []


async def test_a_forged_or_garbled_response_is_refused_with_a_message(
    app: Any, client: httpx.AsyncClient, grace: Any
) -> None:
    headers, options = await ceremony(client, PAGE, OPTIONS)
    answer = SoftAuthenticator().create(options, "http://localhost:1234")  # another origin
    refused = await client.post(VERIFY, json={"name": "K", "credential": answer}, headers=headers)
    assert refused.status_code == 400
    assert refused.json()["error_description"] == "That passkey could not be verified. Try again."
    garbled = {**answer, "response": {"clientDataJSON": "AAAA", "attestationObject": "AAAA"}}
    refused = await client.post(VERIFY, json={"name": "K", "credential": garbled}, headers=headers)
    assert refused.status_code == 400
    assert await _rows(app) == []
    assert [e.outcome for e in await _audited(app, "mfa.passkey.add")] == ["failure", "failure"]


async def test_verify_needs_the_state_of_this_browser_and_spends_it(
    app: Any, client: httpx.AsyncClient, grace: Any
) -> None:
    headers, options = await ceremony(client, PAGE, OPTIONS)
    state = client.cookies.get(STATE)
    first = SoftAuthenticator().create(options, ORIGIN)
    # No state at all: nothing to check the challenge against.
    client.cookies.delete(STATE)
    missing = await client.post(VERIFY, json={"name": "K", "credential": first}, headers=headers)
    assert missing.status_code == 400 and missing.json()["error"] == "no_ceremony"
    # The state copied into another browser (another CSRF cookie) does not verify.
    async with _browser(app) as other:
        assert (await sign_in(other, EMAIL)).status_code == 303
        other_headers = {"X-CSRF-Token": data_csrf_from((await other.get(PAGE)).text)}
        other.cookies.set(STATE, state or "")
        stolen = await other.post(
            VERIFY, json={"name": "K", "credential": first}, headers=other_headers
        )
        assert stolen.status_code == 400 and stolen.json()["error"] == "no_ceremony"
    client.cookies.set(STATE, state or "")
    assert (
        await client.post(VERIFY, json={"name": "K", "credential": first}, headers=headers)
    ).status_code == 200
    # Replayed: the same state with a second authenticator's answer to the same challenge.
    client.cookies.set(STATE, state or "")
    again = SoftAuthenticator().create(options, ORIGIN)
    replay = await client.post(VERIFY, json={"name": "K2", "credential": again}, headers=headers)
    assert replay.status_code == 400 and replay.json()["error"] == "no_ceremony"
    assert len(await _rows(app)) == 1


async def test_a_state_expires_after_five_minutes(
    app: Any, client: httpx.AsyncClient, grace: Any, clock: FrozenClock
) -> None:
    headers, options = await ceremony(client, PAGE, OPTIONS)
    clock.advance(timedelta(seconds=301))
    late = await client.post(
        VERIFY,
        json={"name": "K", "credential": SoftAuthenticator().create(options, ORIGIN)},
        headers=headers,
    )
    assert late.status_code in (400, 401)  # expired state, or the sign-in is too old
    assert await _rows(app) == []


async def test_an_old_sign_in_must_sign_in_again_first(
    app: Any, client: httpx.AsyncClient, grace: Any, clock: FrozenClock
) -> None:
    token = data_csrf_from((await client.get(PAGE)).text)
    clock.advance(timedelta(seconds=601))
    answer = await client.post(OPTIONS, json={}, headers={"X-CSRF-Token": token})
    assert answer.status_code == 401
    assert answer.json()["error"] == "reauthenticate"
    assert answer.json()["redirect"].startswith("/login?next=%2Faccount%2Fsecurity&reauth=1")


async def test_signed_out_json_calls_are_401(app: Any, client: httpx.AsyncClient) -> None:
    await client.get("/login")
    token = data_csrf_from((await client.get("/login")).text)
    answer = await client.post(OPTIONS, json={}, headers={"X-CSRF-Token": token})
    assert answer.status_code == 401 and answer.json()["redirect"] == "/login"


_RENAME = re.compile(r'action="(/account/security/passkeys/[A-Za-z0-9_-]+)/rename"')


async def test_rename_and_remove_with_csrf_and_only_ones_own(
    app: Any, client: httpx.AsyncClient, grace: Any
) -> None:
    assert (await _add(client, SoftAuthenticator())).status_code == 200
    page = await client.get(PAGE)
    [base] = _RENAME.findall(page.text)
    token = csrf_from(page.text)
    assert (await client.post(f"{base}/rename", data={"name": "x"})).status_code == 403
    renamed = await client.post(
        f"{base}/rename", data={"csrf_token": token, "name": "  Work\tlaptop "}
    )
    assert renamed.status_code == 303
    assert renamed.headers["location"] == f"{PAGE}?notice=passkey_renamed"
    assert '<td class="passkey-name">Work laptop</td>' in (await client.get(PAGE)).text
    bad = await client.post(f"{base}/rename", data={"csrf_token": token, "name": ""})
    assert bad.status_code == 400
    unknown = await client.post(
        f"{PAGE}/passkeys/AAAAAAAAAAAAAAAAAAAAAA/remove", data={"csrf_token": token}
    )
    assert unknown.status_code == 404
    async with _browser(app) as other:
        async with app.state.runtime.unit() as unit:
            await unit.accounts.create_user("eve@example.com", PASSWORD)
        assert (await sign_in(other, "eve@example.com")).status_code == 303
        other_token = csrf_from((await other.get(PAGE)).text)
        stolen = await other.post(f"{base}/remove", data={"csrf_token": other_token})
        assert stolen.status_code == 404
    removed = await client.post(f"{base}/remove", data={"csrf_token": token})
    assert removed.status_code == 303
    assert await _rows(app) == []
    async with app.state.runtime.unit() as unit:
        factors = await unit.mfa.factors(grace.id)
    assert not factors.any and factors.recovery_codes_left == 0  # the codes went with it
    actions = [e.action for e in await _audited(app, "mfa.passkey.renamed")]
    actions += [e.action for e in await _audited(app, "mfa.passkey.removed")]
    assert actions == ["mfa.passkey.renamed", "mfa.passkey.removed"]


async def test_pages_say_so_when_the_issuer_cannot_carry_passkeys(
    backend: Backend, tmp_path: Path, clock: FrozenClock
) -> None:
    from ostiary.web.app import create_app

    settings = make_settings(backend, tmp_path, issuer="http://127.0.0.1:8000")
    application = create_app(settings, clock=clock)
    try:
        transport = httpx.ASGITransport(app=application, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
            login = await c.get("/login")
            assert 'id="passkeys-off"' in login.text and "webauthn.js" not in login.text
            assert 'autocomplete="username"' in login.text
            async with application.state.runtime.unit() as unit:
                await unit.accounts.create_user(EMAIL, PASSWORD)
            assert (await sign_in(c, EMAIL)).status_code == 303
            page = await c.get(PAGE)
            assert page.status_code == 200 and 'id="passkeys-off"' in page.text
            assert 'id="add-passkey"' not in page.text
            token = csrf_from(page.text)
            off = await c.post(OPTIONS, json={}, headers={"X-CSRF-Token": token})
            assert off.status_code == 404 and off.json()["error"] == "passkeys_off"
            off = await c.post("/login/passkey/options", json={}, headers={"X-CSRF-Token": token})
            assert off.status_code == 404
            # Discovery does not promise the classes only a passkey reaches.
            metadata = (await c.get("/.well-known/openid-configuration")).json()
            assert metadata["acr_values_supported"] == [
                "urn:ostiary:acr:password",
                "urn:ostiary:acr:mfa",
            ]
        # A user whose only factor is a passkey registered before the issuer changed: the
        # second step offers the recovery code, not an authenticator code they do not have.
        async with application.state.runtime.unit() as unit:
            user = await unit.accounts.get_by_email(EMAIL)
            await SqlPasskeyStore(unit.conn).add(
                Passkey(
                    credential_id=b"\x01" * 16,
                    user_id=user.id,
                    name="Old key",
                    public_key=b"cose",
                    sign_count=0,
                    transports=(),
                    aaguid="00000000-0000-0000-0000-000000000000",
                    backup_eligible=True,
                    backup_state=True,
                    user_verified=True,
                    created_at=clock.now(),
                )
            )
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
            assert (await sign_in(c, EMAIL)).status_code == 303
            step = await c.get("/login/second-step")
            assert 'name="method" value="recovery"' in step.text
            assert "use-passkey" not in step.text and "one-time-code" not in step.text
    finally:
        await application.state.runtime.close()
