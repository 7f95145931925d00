"""The OAuth error type (STYLE.md: one error type per surface, after fosite's RFC6749Error).

Error codes: RFC 6749 sections 4.1.2.1 (authorization endpoint) and 5.2 (token endpoint),
RFC 6750 section 3.1 (bearer), RFC 7009 section 2.2.1 (``unsupported_token_type``),
OpenID Connect Core 1.0 section 3.1.2.6 (``login_required``, ``consent_required``, ...),
RFC 8707 section 2 (``invalid_target``).

``description`` is sent to the client; ``hint`` is internal: logged, never sent.
"""

from __future__ import annotations

__all__ = ["ProtocolError"]

_STATUS = {
    "invalid_request": 400,
    "invalid_client": 401,
    "invalid_grant": 400,
    "unauthorized_client": 400,
    "unsupported_grant_type": 400,
    "invalid_scope": 400,
    "invalid_target": 400,
    "unsupported_token_type": 400,
    "access_denied": 403,
    "unsupported_response_type": 400,
    "server_error": 500,
    "temporarily_unavailable": 503,
    "invalid_token": 401,
    "insufficient_scope": 403,
    "login_required": 400,
    "consent_required": 400,
    "interaction_required": 400,
    "account_selection_required": 400,
    "request_not_supported": 400,
    "request_uri_not_supported": 400,
    "registration_not_supported": 400,
    "invalid_dpop_proof": 400,
}


class ProtocolError(Exception):
    """An OAuth / OIDC protocol error with its RFC code."""

    def __init__(
        self,
        error: str,
        description: str = "",
        *,
        hint: str = "",
        status_code: int | None = None,
    ) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description
        self.hint = hint
        self.status_code = status_code or _STATUS.get(error, 400)

    def as_dict(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body
