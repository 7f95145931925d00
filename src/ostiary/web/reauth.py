"""Re-authentication before a sensitive change (OWASP ASVS 5.0 V6.2 / V7.5; issue 11 section 4).

Changing second factors, the password or the e-mail address needs a session whose last sign-in
is at most ``OSTIARY_REAUTH_SECONDS`` old (``OSTIARY_MFA_REAUTH_SECONDS`` is its deprecated
name). An older one is sent to the sign-in form with ``reauth=1`` (shown to a signed-in browser,
as OIDC ``prompt=login`` does), the account's address filled in, and comes back to the page it
came from once signed in again (the second factor included, when the account has one).
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Request
from starlette.responses import RedirectResponse, Response

from ostiary.features.accounts.models import User
from ostiary.features.sessions.models import Session
from ostiary.web.deps import runtime_of

__all__ = ["needs_reauth", "reauth_redirect"]


def needs_reauth(request: Request, session: Session) -> bool:
    """Whether the session's last sign-in is older than the setting allows."""
    rt = runtime_of(request)
    age = rt.clock.now().timestamp() - session.auth_time.timestamp()
    return age > rt.settings.reauth_seconds


def reauth_redirect(
    request: Request, session: Session, user: User, *, back_to: str
) -> Response | None:
    """To the sign-in form (then back to the local path ``back_to``) when the session's last
    sign-in is too old; None when it is recent enough."""
    if not needs_reauth(request, session):
        return None
    query = urlencode({"next": back_to, "reauth": "1", "login_hint": user.email})
    return RedirectResponse(
        f"/login?{query}", status_code=303, headers={"Cache-Control": "no-store"}
    )
