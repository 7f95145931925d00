"""Schema-driven fuzzing of the HTTP surface (schemathesis 4, in-process over ASGI).

For every operation in ``/openapi.json``, schemathesis sends requests that are valid and
invalid per the schema:

- no request, whatever it holds, gets a 5xx (checked on every case; Hypothesis shrinks it);
- a request that is valid per the schema gets a status code, media type and body that the
  document lists for that operation (collected while fuzzing goes on, reported at the end, so
  that a documentation gap never cuts the search for server errors short).

It runs four ways: as an anonymous browser over every operation; signed in (session cookie,
CSRF cookie and a valid CSRF form token in every form) over the operations a browser session
drives, so the handlers behind the CSRF and session checks see fuzzed input too; as a
registered confidential client (HTTP Basic) over the token, introspection and revocation
endpoints, so the grant handlers do; and as the owner of an organization (an access token with
``ostiary.manage``) over the management API (/api/v1), with its organization's real id in the
``{org}`` parameter, so its handlers see fuzzed input past authentication and tenancy.

Operations are parametrized here with pytest rather than with ``schema.parametrize()``: under
pytest 9 the items that ``schema.parametrize()`` creates all share one node id, and with
``pytest-xdist`` (``scripts/check.py`` runs ``-n 2``) only one operation per test function
would run. Each test builds its own app on a fresh copy of the migrated SQLite template.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hypothesis
import orjson
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.python.asgi import get_client, shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ostiary.config import Settings
from ostiary.features.clients.service import ClientRegistration
from ostiary.web.app import create_app
from ostiary.web.runtime import Runtime
from tests.conftest import Backend, make_settings

_EMAIL = "fuzz.user@example.com"
_PASSWORD = "correct horse battery staple 42"
_HEX64 = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
_FORM = "application/x-www-form-urlencoded"

_FUZZ = hypothesis.settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
# Anonymous requests to an operation that declares a security requirement end at its
# authentication (401) whatever they hold; where the same operation is fuzzed with the full
# budget by a caller that passes it (the management, client and PEP groups below), the
# anonymous pass gets a third of it. /userinfo and key verification keep the full budget.
_FUZZ_UNAUTHENTICATED = hypothesis.settings(_FUZZ, max_examples=10)


def _document() -> dict[str, Any]:
    """The app's OpenAPI document (building the app opens no database)."""
    unused = Backend("sqlite", "sqlite+aiosqlite:///:memory:", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FastAPI's duplicate-operation-id warning
        document: dict[str, Any] = create_app(make_settings(unused, Path("unused"))).openapi()
    return document


_DOCUMENT = _document()
_SERVED = orjson.dumps(_DOCUMENT)
_OPERATIONS: dict[str, dict[str, Any]] = {
    f"{method.upper()} {path}": operation
    for path, item in _DOCUMENT["paths"].items()
    for method, operation in item.items()
}
LABELS = list(_OPERATIONS)
# Operations a browser session drives: no client or bearer authentication of their own.
SESSION_LABELS = [
    label
    for label, op in _OPERATIONS.items()
    if not op.get("security") and set(op.get("tags", ())) & {"browser", "oauth"}
]
# Operations of the management API, called with a bearer access token.
# The management API; key verification (for gateways, API-key bearer only) is not part of it.
VERIFY_LABEL = "POST /api/v1/keys/verify"
MANAGEMENT_LABELS = [
    label
    for label in _OPERATIONS
    if label.split(" ", 1)[1].startswith("/api/v1/") and label != VERIFY_LABEL
]
# Operations a registered OAuth client calls with HTTP Basic authentication.
CLIENT_LABELS = [
    label
    for label, op in _OPERATIONS.items()
    if any("clientBasic" in requirement for requirement in op.get("security", ()))
]


pytestmark = pytest.mark.filterwarnings("ignore:Duplicate Operation ID:UserWarning")


def test_operation_ids_are_unique() -> None:
    # OpenAPI 3.1 section 4.8.10: "The id MUST be unique among all operations described in
    # the API"; clients generated from the document key their methods on it.
    ids = [op.get("operationId") for op in _OPERATIONS.values()]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_security_requirements_name_declared_schemes() -> None:
    # OpenAPI 3.1 section 4.8.30: each name in a Security Requirement "MUST correspond to a
    # security scheme which is declared in the Security Schemes under the Components Object".
    declared = set(_DOCUMENT.get("components", {}).get("securitySchemes", {}))
    used = {
        name
        for op in _OPERATIONS.values()
        for requirement in op.get("security", [])
        for name in requirement
    }
    assert used <= declared, f"undeclared security schemes: {sorted(used - declared)}"


def test_the_schema_documents_the_browser_and_ops_surface() -> None:
    # Guards the parametrization: an empty or truncated schema would make the fuzz vacuous.
    assert {
        "GET /login",
        "POST /login",
        "POST /logout",
        "GET /account",
        "POST /account/sessions/{sid}/revoke",
        "POST /account/sessions/revoke-others",
        "GET /.well-known/jwks.json",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "POST /api/v1/orgs",
        "GET /api/v1/orgs/{org}/members",
    } <= set(LABELS)
    assert len(MANAGEMENT_LABELS) >= 42
    assert VERIFY_LABEL in LABELS
    assert _OPERATIONS[VERIFY_LABEL].get("security") == [{"apiKey": []}]
    for label in MANAGEMENT_LABELS:
        assert _OPERATIONS[label].get("security") == [{"bearer": []}], label
        assert _OPERATIONS[label].get("tags"), label


@pytest.fixture
def settings(sqlite_template: Path, tmp_path: Path) -> Settings:
    """SQLite only: the fuzz exercises the HTTP layer; the backend-specific hostile inputs
    (NUL bytes reaching PostgreSQL, ...) are pinned in ``test_malformed_input.py``."""
    db = tmp_path / "ostiary.db"
    shutil.copy(sqlite_template, db)
    return make_settings(Backend("sqlite", f"sqlite+aiosqlite:///{db}", None), tmp_path)


@pytest.fixture
def fuzz_app(settings: Settings) -> Iterator[FastAPI]:
    app = create_app(settings)
    yield app
    # schemathesis runs the app (and its lifespan) on its own event-loop thread; end it there.
    shutdown_lifespans()


@pytest.fixture
def schema(fuzz_app: FastAPI) -> Any:
    """The document as served (``_DOCUMENT``, checked equal to the app's /openapi.json by
    ``test_the_fuzzed_document_is_the_one_the_app_serves``), bound to this test's app. Loading
    it from each app instead (``from_asgi``) rebuilt the same document 200 times."""
    loaded = schemathesis.openapi.from_dict(orjson.loads(_SERVED))
    loaded.app = fuzz_app  # what from_asgi() does after fetching the document
    return loaded


def test_the_fuzzed_document_is_the_one_the_app_serves(fuzz_app: FastAPI) -> None:
    served = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    assert served.raw_schema == orjson.loads(_SERVED)


_CONFORMANCE = [status_code_conformance, content_type_conformance, response_schema_conformance]
# Redirects are part of the contract under test (303 after a form), so they are not followed.
_CALL: dict[str, Any] = {"allow_redirects": False}


def _is_positive(case: Any) -> bool:
    return case.meta is not None and case.meta.generation.mode is GenerationMode.POSITIVE


def _fuzz(
    schema: Any,
    label: str,
    send: Callable[[Any], Any],
    budget: hypothesis.settings = _FUZZ,
) -> None:
    operation = schema.find_operation_by_label(label)
    assert operation is not None, label
    modes = [GenerationMode.POSITIVE]
    if operation.body or any(True for _ in operation.iter_parameters()):
        modes.append(GenerationMode.NEGATIVE)
    undocumented: list[str] = []

    @budget
    @given(case=st.one_of([operation.as_strategy(mode) for mode in modes]))
    def run(case: Any) -> None:
        response = send(case)
        case.validate_response(response, checks=[not_a_server_error])
        if _is_positive(case) and not undocumented:
            try:
                case.validate_response(response, checks=_CONFORMANCE)
            except FailureGroup as group:
                undocumented.append(_describe(group, case))
            except Failure as failure:
                undocumented.append(_describe(FailureGroup([failure]), case))

    run()
    assert not undocumented, (
        f"a request valid per the schema got a response the schema does not document:\n"
        f"{undocumented[0]}"
    )


def _describe(group: FailureGroup, case: Any) -> str:
    lines = [f"{failure.title}: {failure.message}" for failure in group.exceptions]
    return "\n".join([*lines, f"Reproduce with: {case.as_curl_command()}"])


# -- anonymous ------------------------------------------------------------------------------


@pytest.mark.parametrize("label", LABELS)
def test_anonymous_fuzz(schema: Any, label: str) -> None:
    """No 5xx for anything; documented responses for schema-valid requests."""
    authenticated_elsewhere = {*MANAGEMENT_LABELS, *CLIENT_LABELS, *PEP_LABELS}
    secured = bool(_OPERATIONS[label].get("security"))
    budget = _FUZZ_UNAUTHENTICATED if secured and label in authenticated_elsewhere else _FUZZ
    _fuzz(schema, label, lambda case: case.call(**_CALL), budget)


# -- signed in ------------------------------------------------------------------------------


class _Browser:
    """A signed-in browser: session cookie, CSRF cookie and the CSRF form token of its pages."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self.cookies: dict[str, str] = {}
        self.csrf_token = ""
        self.sign_ins = 0

    def sign_in(self) -> None:
        with get_client(self._app) as client:
            page = client.get("/login")
            response = client.post(
                "/login",
                data={"email": _EMAIL, "password": _PASSWORD, "csrf_token": _csrf_in(page.text)},
                allow_redirects=False,
            )
            assert response.status_code == 303, response.status_code
            account = client.get("/account", allow_redirects=False)
            assert account.status_code == 200, account.status_code
            self.csrf_token = _csrf_in(account.text)
            self.cookies = dict(client.cookies.items())
        assert set(self.cookies) == {"ostiary_session", "ostiary_csrf", "ostiary_device"}, (
            self.cookies
        )
        self.sign_ins += 1

    def send(self, case: Any) -> Any:
        """Send ``case`` as this browser: its cookies, and its CSRF token in any form body."""
        if isinstance(case.body, dict):
            case.body["csrf_token"] = self.csrf_token
        response = case.call(cookies=self.cookies, **_CALL)
        if _clears_session_cookie(response):  # signed out, or revoked this very session
            self.sign_in()
        return response


def _clears_session_cookie(response: Any) -> bool:
    return any(
        cookie.startswith("ostiary_session=") and "max-age=0" in cookie.lower()
        for cookie in response.headers.get("set-cookie", [])
    )


def _csrf_in(html: str) -> str:
    found = _HEX64.search(html)
    assert found, "no CSRF form token in the page"
    return found.group(1)


async def _create_user(app_settings: Settings) -> None:
    rt = Runtime(app_settings)
    try:
        async with rt.unit() as unit:
            await unit.accounts.create_user(_EMAIL, _PASSWORD, name="Fuzz User")
    finally:
        await rt.close()


@pytest.fixture
def browser(settings: Settings, fuzz_app: FastAPI) -> _Browser:
    asyncio.run(_create_user(settings))
    signed_in = _Browser(fuzz_app)
    signed_in.sign_in()
    return signed_in


@pytest.mark.parametrize("label", SESSION_LABELS)
def test_signed_in_fuzz(schema: Any, browser: _Browser, label: str) -> None:
    """The same, signed in and with a valid CSRF token in every form."""
    _fuzz(schema, label, browser.send)


def test_signed_in_browser_reaches_the_session_handlers(schema: Any, browser: _Browser) -> None:
    """The signed-in fuzz is only meaningful if its requests pass the CSRF and session checks."""
    revoke_others = schema.find_operation_by_label("POST /account/sessions/revoke-others")
    response = browser.send(revoke_others.Case(body={}, media_type=_FORM))
    assert response.status_code == 303
    assert response.headers["location"] == ["/account?notice=signed_out_elsewhere"]
    revoke = schema.find_operation_by_label("POST /account/sessions/{sid}/revoke")
    response = browser.send(
        revoke.Case(path_parameters={"sid": "no-such-session"}, body={}, media_type=_FORM)
    )
    assert response.status_code == 404
    signed_in_before = browser.sign_ins
    logout = schema.find_operation_by_label("POST /logout")
    response = browser.send(logout.Case(body={}, media_type=_FORM))
    assert response.status_code == 303
    assert browser.sign_ins == signed_in_before + 1, "sign-out was not noticed"


# -- registered client ----------------------------------------------------------------------


async def _register_client(app_settings: Settings) -> tuple[str, str]:
    rt = Runtime(app_settings)
    try:
        async with rt.unit() as unit:
            client, secret = await unit.clients.register(
                ClientRegistration(name="Fuzz client", redirect_uris=("https://rp.example/cb",))
            )
    finally:
        await rt.close()
    assert secret is not None
    return client.client_id, secret


@pytest.fixture
def client_credentials(settings: Settings, fuzz_app: FastAPI) -> tuple[str, str]:
    return asyncio.run(_register_client(settings))


@pytest.mark.parametrize("label", CLIENT_LABELS)
def test_authenticated_client_fuzz(
    schema: Any, client_credentials: tuple[str, str], label: str
) -> None:
    """The same, as a registered confidential client (HTTP Basic), so grants are reached."""
    _fuzz(schema, label, lambda case: case.call(auth=client_credentials, **_CALL))


def test_client_credentials_pass_client_authentication(
    schema: Any, client_credentials: tuple[str, str]
) -> None:
    """The client fuzz is only meaningful if its requests get past client authentication."""
    introspect = schema.find_operation_by_label("POST /introspect")
    case = introspect.Case(body={"token": "not-a-token"}, media_type=_FORM)
    response = case.call(auth=client_credentials, **_CALL)
    assert response.status_code == 200
    assert response.json() == {"active": False}
    wrong = case.call(auth=(client_credentials[0], "wrong"), **_CALL)
    assert wrong.status_code == 401


# -- management API -------------------------------------------------------------------------


async def _org_owner(app_settings: Settings) -> tuple[str, str]:
    """A user owning an organization, and an access token of theirs with ostiary.manage."""
    from datetime import timedelta

    from ostiary.features.oauth.tokens import AccessTokenRequest, TokenMinter

    rt = Runtime(app_settings)
    try:
        async with rt.unit() as unit:
            await unit.keys.ensure_keys()
            user = await unit.accounts.create_user(_EMAIL, _PASSWORD, name="Fuzz User")
            org = await unit.orgs.create("Fuzz Org", actor=user.id)
            await unit.orgs.add_member(org.id, user.id, actor=user.id)
            await unit.rbac.assign(org.id, ("user", user.id), "owner", actor=user.id)
            now = rt.clock.now()
            minted = await TokenMinter(unit.keys, rt.oauth_policy.issuer).access_token(
                AccessTokenRequest(
                    client_id="ost_fuzz",
                    subject=user.id,
                    scope="ostiary.manage",
                    audience=[rt.oauth_policy.issuer],
                    ttl=timedelta(minutes=30),
                    auth_time=now,
                ),
                now,
            )
    finally:
        await rt.close()
    return org.id, minted.token


@pytest.fixture
def org_owner(settings: Settings, fuzz_app: FastAPI) -> tuple[str, str]:
    return asyncio.run(_org_owner(settings))


def _half(case: Any) -> bool:
    return zlib.crc32(repr((case.body, case.query)).encode()) % 2 == 0


@pytest.mark.parametrize("label", MANAGEMENT_LABELS)
def test_management_fuzz(schema: Any, org_owner: tuple[str, str], label: str) -> None:
    """The same, as the owner of an organization: half the cases aim at it by its real id."""
    org_id, token = org_owner
    headers = {"Authorization": f"Bearer {token}"}

    def send(case: Any) -> Any:
        parameters = case.path_parameters
        # Deterministic per case (Hypothesis replays and shrinks): half aim at the real org.
        if isinstance(parameters, dict) and "org" in parameters and _half(case):
            parameters["org"] = org_id
        return case.call(headers=headers, **_CALL)

    _fuzz(schema, label, send)


def test_the_management_token_passes_authentication(
    schema: Any, org_owner: tuple[str, str]
) -> None:
    """The management fuzz is only meaningful if its requests get past authentication."""
    org_id, token = org_owner
    members = schema.find_operation_by_label("GET /api/v1/orgs/{org}/members")
    case = members.Case(path_parameters={"org": org_id})
    response = case.call(headers={"Authorization": f"Bearer {token}"}, **_CALL)
    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) == 1


# -- policy enforcement point (AuthZEN) -----------------------------------------------------

PEP_LABELS = ["POST /access/v1/evaluation", "POST /access/v1/evaluations"]


async def _pep(app_settings: Settings) -> dict[str, str]:
    """An organization owner's access token and the header naming the organization."""
    from datetime import timedelta

    from ostiary.features.oauth.tokens import AccessTokenRequest, TokenMinter

    rt = Runtime(app_settings)
    try:
        async with rt.unit() as unit:
            await unit.keys.ensure_keys(actor="system")
            user = await unit.accounts.create_user("pep@example.com", _PASSWORD)
            org = await unit.orgs.create("Fuzz org", actor=None)
            await unit.orgs.add_member(org.id, user.id, actor=None)
            await unit.rbac.assign(org.id, ("user", user.id), "owner", actor=None)
            await unit.policies.set(org.id, "permit(principal, action, resource);", actor=None)
            issuer = rt.oauth_policy.issuer
            minted = await TokenMinter(unit.keys, issuer).access_token(
                AccessTokenRequest(
                    client_id="pep",
                    subject=user.id,
                    scope="",
                    audience=[issuer],
                    ttl=timedelta(hours=1),
                ),
                rt.clock.now(),
            )
    finally:
        await rt.close()
    return {"Authorization": f"Bearer {minted.token}", "Ostiary-Organization": org.id}


@pytest.fixture
def pep_headers(settings: Settings, fuzz_app: FastAPI) -> dict[str, str]:
    return asyncio.run(_pep(settings))


@pytest.mark.parametrize("label", PEP_LABELS)
def test_policy_enforcement_point_fuzz(
    schema: Any, pep_headers: dict[str, str], label: str
) -> None:
    """The decision endpoints fuzzed as an authorized caller, so the parser and Cedar see it."""

    def send(case: Any) -> Any:
        headers = {**(case.headers or {}), **pep_headers}
        return case.call(headers=headers, **_CALL)

    _fuzz(schema, label, send)


def test_pep_headers_pass_caller_authentication(schema: Any, pep_headers: dict[str, str]) -> None:
    operation = schema.find_operation_by_label("POST /access/v1/evaluation")
    body = {
        "subject": {"type": "user", "id": "pep@example.com"},
        "action": {"name": "anything"},
        "resource": {"type": "todo", "id": "1"},
    }
    case = operation.Case(body=body, media_type="application/json")
    response = case.call(headers=pep_headers, **_CALL)
    assert response.status_code == 200
    assert response.json() == {"decision": True}
