"""The signed-in user's profile: the standard claims of OpenID Connect Core 1.0 section 5.1.

GET shows the form; POST (CSRF-checked, OWASP ASVS V4.2.2) validates every field on the server
(protocol/claims.py) and stores all or nothing: a refused field re-shows the form with the
user's input and the reason (400). Verification flags (``email_verified``,
``phone_number_verified``) are not the user's to set; an operator sets them with
``ostiary users update``, and a changed phone number loses its verification.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from ostiary.features.accounts.models import User
from ostiary.features.accounts.service import InvalidProfile
from ostiary.protocol.claims import ADDRESS_FIELDS
from ostiary.web.deps import client_ip, read_form, runtime_of
from ostiary.web.errors import PageError
from ostiary.web.openapi_forms import form_body
from ostiary.web.routes.browser import FORM_ERRORS, current_session, render_form, require_csrf

router = APIRouter(tags=["browser"])

# (form field, label, input type, autocomplete token of the HTML standard)
FIELDS: tuple[tuple[str, str, str, str], ...] = (
    ("name", "Full name", "text", "name"),
    ("given_name", "Given name", "text", "given-name"),
    ("middle_name", "Middle name", "text", "additional-name"),
    ("family_name", "Family name", "text", "family-name"),
    ("nickname", "Nickname", "text", "nickname"),
    ("preferred_username", "Preferred username", "text", "username"),
    ("picture", "Picture URL", "url", "photo"),
    ("website", "Website", "url", "url"),
    ("gender", "Gender", "text", "sex"),
    ("birthdate", "Date of birth (YYYY-MM-DD or YYYY)", "text", "bday"),
    ("zoneinfo", "Time zone (such as Europe/Paris)", "text", "off"),
    ("locale", "Language (such as en-US)", "text", "language"),
    ("phone_number", "Phone number (such as +14155550123)", "tel", "tel"),
)
ADDRESS: tuple[tuple[str, str, str], ...] = (
    ("street_address", "Street address", "street-address"),
    ("locality", "City", "address-level2"),
    ("region", "State or region", "address-level1"),
    ("postal_code", "Postal code", "postal-code"),
    ("country", "Country", "country-name"),
)
_HTML: dict[str, Any] = {"content": {"text/html": {}}}


def _values(user: User) -> dict[str, str]:
    values = {name: str(user.claims.get(name, "")) for name, *_ in FIELDS}
    values["name"] = user.name
    address = user.claims.get("address") or {}
    for name in ADDRESS_FIELDS:
        values[f"address_{name}"] = str(address.get(name, ""))
    return values


def _page(request: Request, values: dict[str, str], error: str = "", field: str = "") -> Response:
    return render_form(
        request,
        "profile.html",
        status_code=400 if error else 200,
        fields=FIELDS,
        address=ADDRESS,
        values=values,
        error=error,
        error_field=field,
    )


@router.get(
    "/account/profile",
    summary="Edit your profile (OpenID Connect standard claims)",
    response_class=Response,
    responses={200: _HTML, 303: {"description": "Not signed in: to /login"}},
)
async def profile_page(request: Request) -> Response:
    found = await current_session(request)
    if found is None:
        return RedirectResponse("/login?next=/account/profile", status_code=303)
    return _page(request, _values(found[1]))


@router.post(
    "/account/profile",
    summary="Save your profile",
    response_class=Response,
    openapi_extra=form_body(
        "csrf_token",
        optional=(
            *(name for name, *_ in FIELDS),
            *(f"address_{n}" for n in ADDRESS_FIELDS),
        ),
    ),
    responses={**FORM_ERRORS, 303: {"description": "Saved: to /account"}},
)
async def save_profile(request: Request) -> Response:
    form = await read_form(request)
    require_csrf(request, form.get("csrf_token"))
    found = await current_session(request)
    if found is None:
        raise PageError(401, "Your session has ended. Sign in again.")
    user = found[1]
    submitted = {name: form[name] for name, *_ in FIELDS if name in form}
    address = {n: form[f"address_{n}"] for n in ADDRESS_FIELDS if f"address_{n}" in form}
    claims: dict[str, object] = {k: v for k, v in submitted.items() if k != "name"}
    if address:
        claims["address"] = {**(user.claims.get("address") or {}), **address}
    try:
        async with runtime_of(request).unit() as unit:
            await unit.accounts.update_profile(
                user.id,
                name=submitted.get("name"),
                claims=claims,
                actor=user.id,
                ip=client_ip(request),
            )
    except InvalidProfile as exc:
        values = _values(user) | {k: v for k, v in form.items() if k != "csrf_token"}
        return _page(request, values, str(exc), exc.claim.replace("address ", "address_"))
    return RedirectResponse(
        "/account?notice=profile_saved", status_code=303, headers={"Cache-Control": "no-store"}
    )
