"""/account/security (web/routes/mfa_settings.py), in-process over ASGI: setting up an
authenticator app (RFC 6238) from the secret the page shows, codes computed independently with
pyotp; recovery codes shown once; CSRF on every form; a recent sign-in before factors change."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
from sqlalchemy import select

from ostiary.features.clock import FrozenClock
from ostiary.features.mfa.service import WrongCode
from ostiary.storage.sqla.tables import audit_events
from tests.web.helpers import PASSWORD, csrf_from, sign_in

EMAIL = "grace@example.com"
PAGE = "/account/security"
_SECRET = re.compile(r'<code id="totp-secret">([A-Z2-7]+)</code>')
_CODES = re.compile(r"<li><code>([^<]+)</code></li>")


@pytest.fixture
async def user(app: Any) -> Any:
    async with app.state.runtime.unit() as unit:
        return await unit.accounts.create_user(EMAIL, PASSWORD, name="Grace Hopper")


async def _factors(app: Any, user_id: str) -> Any:
    async with app.state.runtime.unit() as unit:
        return await unit.mfa.factors(user_id)


async def _start(client: httpx.AsyncClient) -> httpx.Response:
    page = await client.get(PAGE)
    started = await client.post(f"{PAGE}/totp/start", data={"csrf_token": csrf_from(page.text)})
    assert started.status_code == 303 and started.headers["location"] == f"{PAGE}/totp"
    return await client.get(f"{PAGE}/totp")


def _secret(html: str) -> str:
    match = _SECRET.search(html)
    assert match, "the set-up page shows no secret"
    return match.group(1)


async def _enroll(client: httpx.AsyncClient, clock: FrozenClock) -> tuple[pyotp.TOTP, list[str]]:
    setup = await _start(client)
    app = pyotp.TOTP(_secret(setup.text))
    confirmed = await client.post(
        f"{PAGE}/totp/confirm",
        data={"csrf_token": csrf_from(setup.text), "code": app.at(clock.now())},
    )
    assert confirmed.status_code == 200, confirmed.text
    return app, _CODES.findall(confirmed.text)


async def _sign_in_again(client: httpx.AsyncClient, location: str, code: str) -> None:
    """Follow a re-authentication redirect as a browser would: the form, the authenticator
    code (the sign-in's second step), then back."""
    form = await client.get(location)
    assert form.status_code == 200 and 'name="password"' in form.text
    query = parse_qs(urlsplit(location).query)
    done = await client.post(
        "/login",
        data={
            "email": query["login_hint"][0],
            "password": PASSWORD,
            "csrf_token": csrf_from(form.text),
            "next": query["next"][0],
        },
    )
    assert done.status_code == 303 and done.headers["location"].startswith("/login/second-step")
    step = await client.get(done.headers["location"])
    done = await client.post(
        "/login/second-step",
        data={"code": code, "csrf_token": csrf_from(step.text), "next": query["next"][0]},
    )
    assert done.status_code == 303 and done.headers["location"] == PAGE


async def test_requires_sign_in(client: httpx.AsyncClient) -> None:
    for path in (PAGE, f"{PAGE}/totp"):
        response = await client.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == f"/login?next={PAGE}"


async def test_account_page_links_here(client: httpx.AsyncClient, user: Any) -> None:
    await sign_in(client, EMAIL)
    assert f'href="{PAGE}"' in (await client.get("/account")).text


async def test_enroll_shows_qr_and_secret_then_the_recovery_codes_once(
    app: Any, client: httpx.AsyncClient, user: Any, clock: FrozenClock
) -> None:
    await sign_in(client, EMAIL)
    before = await client.get(PAGE)
    assert 'id="start-totp"' in before.text and 'id="continue-totp"' not in before.text
    assert (await _factors(app, user.id)).totp is False

    setup = await _start(client)
    assert setup.status_code == 200
    assert setup.headers["cache-control"] == "no-store"
    secret = _secret(setup.text)
    assert re.search(r'<svg [^>]*class="segno"', setup.text)  # the QR code, inline
    uri = re.search(r'<code id="totp-uri">([^<]+)</code>', setup.text)
    assert uri is not None
    parsed = pyotp.parse_uri(uri.group(1).replace("&amp;", "&"))
    assert parsed.secret == secret and parsed.issuer == "Ostiary" and parsed.name == EMAIL
    assert (await _factors(app, user.id)).totp is False  # pending until a code proves it
    assert 'href="/account/security/totp" id="continue-totp"' in (await client.get(PAGE)).text

    confirmed = await client.post(
        f"{PAGE}/totp/confirm",
        data={"csrf_token": csrf_from(setup.text), "code": pyotp.TOTP(secret).at(clock.now())},
    )
    assert confirmed.status_code == 200
    assert confirmed.headers["cache-control"] == "no-store"
    codes = _CODES.findall(confirmed.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert "shown only this once" in confirmed.text
    factors = await _factors(app, user.id)
    assert factors.totp is True and factors.recovery_codes_left == 10

    status = await client.get(PAGE)
    assert 'id="remove-totp"' in status.text and 'id="recovery-left">10<' in status.text
    assert not any(code in status.text for code in codes)  # never shown again
    assert (await client.get(f"{PAGE}/totp")).headers["location"] == PAGE
    async with app.state.runtime.unit() as unit:  # the codes shown are the ones stored
        assert await unit.mfa.use_recovery_code(user.id, codes[3], ip=None) == 9


async def test_wrong_code_reshows_the_same_secret_and_is_audited(
    app: Any, client: httpx.AsyncClient, user: Any, clock: FrozenClock
) -> None:
    await sign_in(client, EMAIL)
    setup = await _start(client)
    secret = _secret(setup.text)
    wrong = str((int(pyotp.TOTP(secret).at(clock.now())) + 1) % 1_000_000).zfill(6)
    refused = await client.post(
        f"{PAGE}/totp/confirm", data={"csrf_token": csrf_from(setup.text), "code": wrong}
    )
    assert refused.status_code == 400
    assert str(WrongCode()) in refused.text and 'aria-invalid="true"' in refused.text
    assert _secret(refused.text) == secret  # same pending secret until started over
    assert refused.headers["cache-control"] == "no-store"
    assert (await _factors(app, user.id)).totp is False
    async with app.state.runtime.unit() as unit:
        rows = (
            await unit.conn.execute(
                select(audit_events.c.outcome).where(audit_events.c.action == "mfa.totp.confirm")
            )
        ).all()
    assert [r.outcome for r in rows] == ["failure"]

    garbage = await client.post(
        f"{PAGE}/totp/confirm", data={"csrf_token": csrf_from(setup.text), "code": "x" * 500}
    )
    assert garbage.status_code == 400
    right = await client.post(
        f"{PAGE}/totp/confirm",
        data={"csrf_token": csrf_from(setup.text), "code": pyotp.TOTP(secret).at(clock.now())},
    )
    assert right.status_code == 200 and len(_CODES.findall(right.text)) == 10


async def test_an_enrollment_not_confirmed_in_time_must_be_started_again(
    app: Any, client: httpx.AsyncClient, user: Any, clock: FrozenClock
) -> None:
    await sign_in(client, EMAIL)
    setup = await _start(client)
    totp = pyotp.TOTP(_secret(setup.text))
    clock.advance(timedelta(seconds=app.state.runtime.settings.mfa_enrollment_seconds + 1))
    late = await client.post(
        f"{PAGE}/totp/confirm",
        data={"csrf_token": csrf_from(setup.text), "code": totp.at(clock.now())},
    )
    assert late.status_code == 409 and "has expired. Start again." in late.text
    assert (await _factors(app, user.id)).totp is False
    assert (await client.get(f"{PAGE}/totp")).headers["location"] == PAGE  # nothing pending
    status = await client.get(PAGE)
    assert 'id="start-totp"' in status.text and 'id="continue-totp"' not in status.text
    form = await client.get("/login?reauth=1")  # a fresh sign-in for the re-authentication gate
    data = {"email": EMAIL, "password": PASSWORD, "csrf_token": csrf_from(form.text)}
    assert (await client.post("/login", data=data)).status_code == 303
    _totp, codes = await _enroll(client, clock)  # starting over works
    assert len(codes) == 10


async def test_confirm_without_a_pending_enrollment_is_a_clear_error(
    client: httpx.AsyncClient, user: Any
) -> None:
    await sign_in(client, EMAIL)
    page = await client.get(PAGE)
    response = await client.post(
        f"{PAGE}/totp/confirm", data={"csrf_token": csrf_from(page.text), "code": "123456"}
    )
    assert response.status_code == 409
    regenerate = await client.post(
        f"{PAGE}/recovery-codes", data={"csrf_token": csrf_from(page.text)}
    )
    assert regenerate.status_code == 409


async def test_csrf_is_enforced_on_every_form(
    app: Any, client: httpx.AsyncClient, user: Any, clock: FrozenClock
) -> None:
    await sign_in(client, EMAIL)
    assert (await client.post(f"{PAGE}/totp/start", data={"x": "1"})).status_code == 403
    async with app.state.runtime.unit() as unit:
        assert await unit.mfa.pending_totp(user.id, EMAIL) is None  # nothing started
    _app, codes = await _enroll(client, clock)
    for action in ("totp/remove", "recovery-codes", "totp/confirm", "totp/start"):
        forged = await client.post(f"{PAGE}/{action}", data={"csrf_token": "0" * 64})
        assert forged.status_code == 403, action
    factors = await _factors(app, user.id)
    assert factors.totp is True and factors.recovery_codes_left == 10
    async with app.state.runtime.unit() as unit:
        assert await unit.mfa.use_recovery_code(user.id, codes[0], ip=None) == 9


async def test_signed_out_forms_are_refused(client: httpx.AsyncClient, user: Any) -> None:
    page = await client.get("/login")
    response = await client.post(f"{PAGE}/totp/start", data={"csrf_token": csrf_from(page.text)})
    assert response.status_code == 401


async def test_changing_factors_needs_a_recent_sign_in(
    app: Any, client: httpx.AsyncClient, user: Any, clock: FrozenClock
) -> None:
    await sign_in(client, EMAIL)
    totp, old_codes = await _enroll(client, clock)
    clock.advance(timedelta(seconds=app.state.runtime.settings.reauth_seconds + 1))
    page = await client.get(PAGE)
    for action in ("recovery-codes", "totp/remove", "totp/start"):
        stale = await client.post(f"{PAGE}/{action}", data={"csrf_token": csrf_from(page.text)})
        assert stale.status_code == 303, action
        location = stale.headers["location"]
        assert urlsplit(location).path == "/login"
        assert parse_qs(urlsplit(location).query) == {
            "next": [PAGE],
            "reauth": ["1"],
            "login_hint": [EMAIL],
        }
    factors = await _factors(app, user.id)
    assert factors.totp is True and factors.recovery_codes_left == 10  # nothing changed

    await _sign_in_again(client, location, totp.at(clock.now()))
    page = await client.get(PAGE)
    renewed = await client.post(f"{PAGE}/recovery-codes", data={"csrf_token": csrf_from(page.text)})
    assert renewed.status_code == 200 and renewed.headers["cache-control"] == "no-store"
    new_codes = _CODES.findall(renewed.text)
    assert len(new_codes) == 10 and not set(new_codes) & set(old_codes)
    async with app.state.runtime.unit() as unit:
        with pytest.raises(WrongCode):  # the old set no longer works
            await unit.mfa.use_recovery_code(user.id, old_codes[0], ip=None)

    removed = await client.post(f"{PAGE}/totp/remove", data={"csrf_token": csrf_from(page.text)})
    assert removed.status_code == 303
    assert removed.headers["location"] == f"{PAGE}?notice=totp_removed"
    factors = await _factors(app, user.id)
    assert factors.totp is False and factors.recovery_codes_left == 0
    assert "was removed" in (await client.get(removed.headers["location"])).text


async def test_wrong_codes_are_throttled_per_account(
    client: httpx.AsyncClient, user: Any, clock: FrozenClock
) -> None:
    await sign_in(client, EMAIL)
    setup = await _start(client)
    totp = pyotp.TOTP(_secret(setup.text))
    near = {totp.at(clock.now() + timedelta(seconds=30 * d)) for d in (-1, 0, 1)}
    wrong = next(c for c in ("000000", "111111", "222222", "333333") if c not in near)
    form = {"csrf_token": csrf_from(setup.text), "code": wrong}
    statuses = [
        (await client.post(f"{PAGE}/totp/confirm", data=form)).status_code for _ in range(10)
    ]
    assert statuses == [400] * 10
    form["code"] = totp.at(clock.now())  # even the right code waits now
    throttled = await client.post(f"{PAGE}/totp/confirm", data=form)
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
