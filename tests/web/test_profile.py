"""The profile page (/account/profile): OIDC Core 5.1 standard claims edited by the signed-in
user, CSRF-checked and validated on the server, in-process over ASGI."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.web.helpers import PASSWORD, csrf_from, sign_in

EMAIL = "ada@example.com"


@pytest.fixture
async def user(app: Any) -> Any:
    async with app.state.runtime.unit() as unit:
        return await unit.accounts.create_user(EMAIL, PASSWORD, name="Ada Lovelace")


async def _stored(app: Any, user_id: str) -> Any:
    async with app.state.runtime.unit() as unit:
        return await unit.accounts.get(user_id)


async def test_requires_sign_in(client: httpx.AsyncClient) -> None:
    response = await client.get("/account/profile")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/account/profile"


async def test_edit_saves_claims_and_shows_them(
    app: Any, client: httpx.AsyncClient, user: Any
) -> None:
    await sign_in(client, EMAIL)
    page = await client.get("/account/profile")
    assert page.status_code == 200 and 'value="Ada Lovelace"' in page.text
    saved = await client.post(
        "/account/profile",
        data={
            "csrf_token": csrf_from(page.text),
            "name": "Augusta Ada King",
            "given_name": "Augusta",
            "zoneinfo": "Europe/London",
            "birthdate": "1815-12-10",
            "phone_number": "+44 20 7946 0018",
            "address_locality": "London",
            "address_country": "GB",
        },
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == "/account?notice=profile_saved"
    stored = await _stored(app, user.id)
    assert stored.name == "Augusta Ada King"
    assert stored.claims == {
        "given_name": "Augusta",
        "zoneinfo": "Europe/London",
        "birthdate": "1815-12-10",
        "phone_number": "+442079460018",
        "address": {"locality": "London", "country": "GB"},
    }
    assert stored.updated_at >= user.updated_at
    account = await client.get("/account?notice=profile_saved")
    assert "Augusta Ada King" in account.text and "+442079460018" in account.text
    again = await client.get("/account/profile")
    assert 'value="Europe/London"' in again.text and 'value="London"' in again.text


async def test_invalid_field_reshows_the_form_with_the_reason_and_stores_nothing(
    app: Any, client: httpx.AsyncClient, user: Any
) -> None:
    await sign_in(client, EMAIL)
    page = await client.get("/account/profile")
    refused = await client.post(
        "/account/profile",
        data={
            "csrf_token": csrf_from(page.text),
            "nickname": "Ada",
            "website": "javascript:alert(document.cookie)",
        },
    )
    assert refused.status_code == 400
    assert "website must be an http:// or https:// URL" in refused.text
    assert 'id="website" name="website" type="url" autocomplete="url" value="javascript' in (
        refused.text
    )
    assert 'aria-invalid="true"' in refused.text
    assert (await _stored(app, user.id)).claims == {}  # all or nothing


async def test_csrf_is_enforced(app: Any, client: httpx.AsyncClient, user: Any) -> None:
    await sign_in(client, EMAIL)
    forged = await client.post("/account/profile", data={"nickname": "pwned"})
    assert forged.status_code == 403
    wrong = await client.post("/account/profile", data={"csrf_token": "0" * 64, "nickname": "x"})
    assert wrong.status_code == 403
    assert (await _stored(app, user.id)).claims == {}


async def test_users_cannot_verify_their_own_phone(
    app: Any, client: httpx.AsyncClient, user: Any
) -> None:
    async with app.state.runtime.unit() as unit:
        await unit.accounts.update_profile(
            user.id, claims={"phone_number": "+14155550123", "phone_number_verified": True}
        )
    await sign_in(client, EMAIL)
    page = await client.get("/account/profile")
    assert "phone_number_verified" not in page.text
    await client.post(
        "/account/profile",
        data={
            "csrf_token": csrf_from(page.text),
            "phone_number": "+14155550199",
            "phone_number_verified": "true",  # not a field of this form: ignored
        },
    )
    stored = await _stored(app, user.id)
    assert stored.claims == {"phone_number": "+14155550199"}  # a new number is not verified
