"""The AuthZEN decision API over HTTP (OpenID AuthZEN Authorization API 1.0): metadata
(section 9), single and batch evaluations with the three ``evaluations_semantic`` values
(section 7.1.2.1), how the caller authenticates and which organization it decides in, and
hostile input (400, never a 500)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ostiary.config import Settings
from ostiary.features.oauth.tokens import AccessTokenRequest, TokenMinter
from ostiary.web.app import create_app
from ostiary.web.runtime import Runtime

ISSUER = "http://testserver"
EVAL = "/access/v1/evaluation"
BATCH = "/access/v1/evaluations"


async def _token(rt: Any, subject: str, **extra: Any) -> str:
    async with rt.unit() as unit:
        await unit.keys.ensure_keys(actor="system")
        minted = await TokenMinter(unit.keys, ISSUER).access_token(
            AccessTokenRequest(
                client_id=extra.pop("client_id", "pep-client"),
                subject=subject,
                scope="",
                audience=extra.pop("audience", [ISSUER]),
                ttl=timedelta(minutes=5),
                **extra,
            ),
            rt.clock.now(),
        )
    return minted.token


async def _world(app: Any) -> dict[str, Any]:
    return await _world_of(app.state.runtime)


async def _world_of(rt: Any) -> dict[str, Any]:
    """Org A with a PEP user (admin: holds access:evaluate), a member and a reader; org B with
    its own owner; a policy in A forbidding model m-blocked."""
    ids: dict[str, Any] = {}
    async with rt.unit() as unit:
        for name in ("pep", "member", "reader", "bee"):
            user = await unit.accounts.create_user(
                f"{name}-{secrets.token_hex(3)}@example.com", secrets.token_urlsafe(18)
            )
            ids[name] = user.id
            ids[f"{name}_email"] = user.email
        org_a = await unit.orgs.create("Org A", actor=None)
        org_b = await unit.orgs.create("Org B", actor=None)
        for name, role in (("pep", "admin"), ("member", "member"), ("reader", "reader")):
            await unit.orgs.add_member(org_a.id, ids[name], actor=None)
            await unit.rbac.assign(org_a.id, ("user", ids[name]), role, actor=None)
        await unit.orgs.add_member(org_b.id, ids["bee"], actor=None)
        await unit.rbac.assign(org_b.id, ("user", ids["bee"]), "owner", actor=None)
        await unit.policies.set(
            org_a.id,
            '@id("blocked")\nforbid(principal, action, resource == model::"m-blocked");',
            actor=None,
        )
    ids["a"], ids["b"], ids["a_slug"] = org_a.id, org_b.id, org_a.slug
    ids["token"] = await _token(rt, ids["pep"])
    return ids


def _headers(world: dict[str, Any], org: str | None = None) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {world['token']}",
        "Ostiary-Organization": org or world["a"],
    }


def _request(subject: str, action: str = "models:invoke", model: str = "m1") -> dict[str, Any]:
    return {
        "subject": {"type": "user", "id": subject},
        "action": {"name": action},
        "resource": {"type": "model", "id": model},
    }


async def test_metadata_names_the_endpoints(client: httpx.AsyncClient) -> None:
    response = await client.get("/.well-known/authzen-configuration")
    assert response.status_code == 200
    assert response.json() == {
        "policy_decision_point": ISSUER,
        "access_evaluation_endpoint": f"{ISSUER}/access/v1/evaluation",
        "access_evaluations_endpoint": f"{ISSUER}/access/v1/evaluations",
    }


async def test_single_evaluation(app: Any, client: httpx.AsyncClient) -> None:
    world = await _world(app)
    headers = _headers(world)
    permit = await client.post(EVAL, json=_request(world["member_email"]), headers=headers)
    assert permit.status_code == 200 and permit.json() == {"decision": True}
    deny = await client.post(EVAL, json=_request(world["reader"]), headers=headers)
    assert deny.json()["decision"] is False
    assert "models:invoke" in deny.json()["context"]["reason_admin"]["en"]
    forbidden = await client.post(
        EVAL, json=_request(world["member"], model="m-blocked"), headers=headers
    )
    reason = forbidden.json()["context"]["reason_admin"]["en"]
    assert forbidden.json()["decision"] is False and '"blocked"' in reason
    # the organization may be named by slug; X-Request-ID comes back
    by_slug = await client.post(
        EVAL,
        json=_request(world["member"]),
        headers={**_headers(world, world["a_slug"]), "X-Request-ID": "req-42"},
    )
    assert by_slug.json() == {"decision": True}
    assert by_slug.headers.get("x-request-id") == "req-42"


@pytest.mark.parametrize(
    ("semantic", "expected"),
    [
        (None, [True, False, True, False]),
        ("execute_all", [True, False, True, False]),
        ("deny_on_first_deny", [True, False]),
        ("permit_on_first_permit", [True]),
    ],
)
async def test_batch_semantics(
    app: Any, client: httpx.AsyncClient, semantic: str | None, expected: list[bool]
) -> None:
    world = await _world(app)
    body: dict[str, Any] = {
        "subject": {"type": "user", "id": world["member"]},
        "action": {"name": "models:invoke"},
        "evaluations": [
            {"resource": {"type": "model", "id": "m1"}},
            {"resource": {"type": "model", "id": "m-blocked"}},
            {"resource": {"type": "model", "id": "m2"}},
            {
                "subject": {"type": "user", "id": world["reader"]},
                "resource": {"type": "model", "id": "m1"},
            },
        ],
    }
    if semantic is not None:
        body["options"] = {"evaluations_semantic": semantic}
    response = await client.post(BATCH, json=body, headers=_headers(world))
    assert response.status_code == 200, response.text
    assert [e["decision"] for e in response.json()["evaluations"]] == expected


async def test_batch_without_evaluations_is_one_decision(
    app: Any, client: httpx.AsyncClient
) -> None:
    world = await _world(app)
    response = await client.post(BATCH, json=_request(world["member"]), headers=_headers(world))
    assert response.json() == {"decision": True}


async def test_callers_are_authenticated_and_kept_in_their_organization(
    app: Any, client: httpx.AsyncClient
) -> None:
    world = await _world(app)
    rt = app.state.runtime
    body = _request(world["member"])
    missing = await client.post(EVAL, json=body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    bad = await client.post(EVAL, json=body, headers={"Authorization": "Bearer a.b.c"})
    assert bad.status_code == 401 and "invalid_token" in bad.headers["www-authenticate"]
    # a member without access:evaluate, and the PEP of org A asking in org B
    member_token = await _token(rt, world["member"])
    as_member = {"Authorization": f"Bearer {member_token}", "Ostiary-Organization": world["a"]}
    assert (await client.post(EVAL, json=body, headers=as_member)).status_code == 403
    in_b = await client.post(EVAL, json=body, headers=_headers(world, world["b"]))
    assert in_b.status_code == 403
    unknown = await client.post(EVAL, json=body, headers=_headers(world, "no-such-org"))
    assert unknown.status_code == 403 and unknown.json() == in_b.json()
    # org B's owner cannot learn about org A's subjects: its answers are plain denies
    bee = {
        "Authorization": f"Bearer {await _token(rt, world['bee'])}",
        "Ostiary-Organization": world["b"],
    }
    stranger = await client.post(EVAL, json=body, headers=bee)
    assert stranger.json()["decision"] is False
    assert "not known" in stranger.json()["context"]["reason_admin"]["en"]
    # no organization named; a token for another audience; a token bound to another org
    no_org = {"Authorization": f"Bearer {world['token']}"}
    assert (await client.post(EVAL, json=body, headers=no_org)).status_code == 400
    elsewhere = await _token(rt, world["pep"], audience=["https://rs.example"])
    other_aud = {"Authorization": f"Bearer {elsewhere}", "Ostiary-Organization": world["a"]}
    assert (await client.post(EVAL, json=body, headers=other_aud)).status_code == 401
    # a client_credentials token without an organization binding is refused
    client_token = await _token(rt, "svc-client", client_id="svc-client")
    as_client = {"Authorization": f"Bearer {client_token}", "Ostiary-Organization": world["a"]}
    assert (await client.post(EVAL, json=body, headers=as_client)).status_code == 403


async def test_service_account_keys_as_callers_and_keys_and_accounts_as_subjects(
    app: Any, client: httpx.AsyncClient
) -> None:
    """A gateway calls with its service account's API key (features/apikeys): a key whose
    account holds access:evaluate decides in its own organization; one narrowed below it is
    403; a revoked key is 401. Service accounts and API keys are subjects only while they
    exist, live, in the caller's organization."""
    world = await _world(app)
    rt = app.state.runtime
    async with rt.unit() as unit:
        gateway = await unit.api_keys.create_service_account(
            world["a"], "gateway", roles=["admin"], actor=None
        )
        good = await unit.api_keys.create_key(
            world["a"], ("service_account", gateway.id), name="pep", actor=None
        )
        narrow = await unit.api_keys.create_key(
            world["a"],
            ("service_account", gateway.id),
            name="narrow",
            permissions=["models:read"],
            actor=None,
        )
        worker = await unit.api_keys.create_service_account(
            world["a"], "worker", roles=["member"], actor=None
        )
        worker_key = await unit.api_keys.create_key(
            world["a"], ("service_account", worker.id), name="w", actor=None
        )
        outsider = await unit.api_keys.create_service_account(
            world["b"], "outsider", roles=["owner"], actor=None
        )
    bearer = {"Authorization": f"Bearer {good.secret}"}
    body = _request(world["member"])
    assert (await client.post(EVAL, json=body, headers=bearer)).json() == {"decision": True}
    refused = await client.post(
        EVAL, json=body, headers={"Authorization": f"Bearer {narrow.secret}"}
    )
    assert refused.status_code == 403

    def about(kind: str, ident: str, action: str = "models:invoke") -> dict[str, Any]:
        return {
            "subject": {"type": kind, "id": ident},
            "action": {"name": action},
            "resource": {"type": "model", "id": "m1"},
        }

    async def decide(request: dict[str, Any]) -> bool:
        response = await client.post(EVAL, json=request, headers=bearer)
        assert response.status_code == 200, response.text
        return bool(response.json()["decision"])

    # the worker (member role) may invoke models, not manage members
    assert await decide(about("service_account", worker.id))
    assert not await decide(about("service_account", worker.id, "members:manage"))
    assert await decide(about("api_key", worker_key.key.id))
    # another organization's account is unknown here
    assert not await decide(about("service_account", outsider.id))
    async with rt.unit() as unit:
        await unit.api_keys.set_service_account_disabled(world["a"], worker.id, True, actor=None)
    assert not await decide(about("service_account", worker.id))
    assert not await decide(about("api_key", worker_key.key.id))
    async with rt.unit() as unit:
        await unit.api_keys.revoke_key(world["a"], good.key.id, actor=None)
    gone = await client.post(EVAL, json=body, headers=bearer)
    assert gone.status_code == 401


async def test_acr_of_the_callers_token_counts_for_its_own_user_only(
    app: Any, client: httpx.AsyncClient
) -> None:
    world = await _world(app)
    rt = app.state.runtime
    async with rt.unit() as unit:
        await unit.policies.set(
            world["a"],
            'permit(principal, action == Action::"models:fine-tune", resource)\n'
            ' when { context has acr && context.acr == "mfa" };',
            actor=None,
        )
    strong = await _token(rt, world["pep"], acr="mfa")
    headers = {"Authorization": f"Bearer {strong}", "Ostiary-Organization": world["a"]}
    own = _request(world["pep"], "models:fine-tune")
    other = _request(world["reader"], "models:fine-tune")
    assert (await client.post(EVAL, json=own, headers=headers)).json()["decision"] is True
    assert (await client.post(EVAL, json=other, headers=headers)).json()["decision"] is False


async def test_a_request_without_a_bearer_credential_is_refused_before_its_body_is_read(
    app: Any,
) -> None:
    """401 with the Bearer challenge, and not a byte of the (up to 1 MiB) body read."""
    reads: list[str] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        reads.append("read")
        return {"type": "http.request", "body": b'{"subject": 1}', "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    for path, authorization in ((EVAL, None), (BATCH, None), (EVAL, b"Basic eDp5")):
        headers = [(b"host", b"testserver"), (b"content-type", b"application/json")]
        if authorization is not None:
            headers.append((b"authorization", authorization))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        await app(scope, receive, send)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert [m["status"] for m in starts] == [401, 401, 401]
    assert all(dict(m["headers"])[b"www-authenticate"].startswith(b"Bearer") for m in starts)
    assert reads == []


async def test_the_log_keeps_each_decisions_own_environment_in_a_batch(
    app: Any, client: httpx.AsyncClient
) -> None:
    """Decisions of one batch share what they can of the log's record, but the caller's acr
    and amr are logged only with its own user's decisions, and every entry has the time."""
    world = await _world(app)
    rt = app.state.runtime
    strong = await _token(rt, world["pep"], acr="mfa", amr=["otp"])
    headers = {"Authorization": f"Bearer {strong}", "Ostiary-Organization": world["a"]}
    subjects = [world["pep"], world["reader"], world["pep"], world["member"]]
    body = {"evaluations": [_request(subject) for subject in subjects]}
    answer = await client.post(BATCH, json=body, headers=headers)
    assert answer.status_code == 200 and len(answer.json()["evaluations"]) == 4
    async with rt.unit() as unit:
        logged = list(reversed(await unit.policies._log.recent(world["a"], 4)))
    assert [entry.request["subject"]["id"] for entry in logged] == subjects
    for entry, subject in zip(logged, subjects, strict=True):
        env = entry.request["env"]
        own = subject == world["pep"]
        assert (env["acr"], env["amr"]) == (("mfa", ["otp"]) if own else (None, []))
        assert env["ip"] == "203.0.113.7"  # the test client's address
        assert datetime.fromisoformat(env["at"]) == entry.at


@pytest.mark.parametrize(
    "body",
    [
        {},
        [],
        {
            "subject": {"type": "user"},
            "action": {"name": "x"},
            "resource": {"type": "t", "id": "1"},
        },
        {
            "subject": {"type": "user", "id": "u"},
            "action": {},
            "resource": {"type": "t", "id": "1"},
        },
        {
            "subject": {"type": "user", "id": "u"},
            "action": {"name": "x"},
            "resource": {"type": "bad-type", "id": "1"},
        },
        {
            "subject": {"type": "user", "id": "u"},
            "action": {"name": "x"},
            "resource": {"type": "t", "id": "1", "properties": {"owner": {"__entity": {}}}},
        },
        {
            "subject": {"type": "user", "id": "u"},
            "action": {"name": "x"},
            "resource": {"type": "t", "id": "1"},
            "context": {"score": 0.5},
        },
    ],
)
async def test_malformed_requests_are_400(app: Any, client: httpx.AsyncClient, body: Any) -> None:
    world = await _world(app)
    response = await client.post(EVAL, json=body, headers=_headers(world))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    batch = await client.post(
        BATCH, json={"evaluations": [body], "subject": 5}, headers=_headers(world)
    )
    assert batch.status_code == 400
    not_json = await client.post(
        EVAL, content=b"{", headers={**_headers(world), "Content-Type": "application/json"}
    )
    assert not_json.status_code == 400
    form = await client.post(EVAL, data={"a": "b"}, headers=_headers(world))
    assert form.status_code == 415


async def _prepared(settings: Settings) -> dict[str, Any]:
    rt = Runtime(settings)
    try:
        return await _world_of(rt)
    finally:
        await rt.close()


@pytest.fixture
def hostile_world(settings: Settings) -> Iterator[tuple[Any, dict[str, Any]]]:
    """A running app (TestClient: its own loop) over a prepared world, for Hypothesis."""
    from starlette.testclient import TestClient

    world = asyncio.run(_prepared(settings))
    app = create_app(settings)
    with TestClient(app, base_url=ISSUER) as test_client:

        def call(body: Any) -> tuple[int, Any]:
            response = test_client.post(EVAL, json=body, headers=_headers(world))
            return response.status_code, response.json()

        yield call, world


async def test_nul_and_unicode_values_are_decided_and_logged(
    app: Any, client: httpx.AsyncClient
) -> None:
    """PostgreSQL refuses NUL in text columns: values that reach the decision log must not
    turn into a 500 there."""
    world = await _world(app)
    body = {
        **_request(world["member"]),
        "context": {"note": "a\x00b", "emoji": "\U0001f600", "deep": {"x": ["\x00"]}},
    }
    body["resource"]["properties"] = {"label": "\x00", "\x00key": "v"}
    response = await client.post(EVAL, json=body, headers=_headers(world))
    assert response.status_code == 200, response.text
    assert response.json() == {"decision": True}


_JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    subject=st.fixed_dictionaries(
        {
            "type": st.sampled_from(["user", "Svc", "api_key"]),
            "id": st.text(min_size=1, max_size=30),
        }
    ),
    resource_type=st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True),
    properties=st.dictionaries(st.text(max_size=8), _JSONISH, max_size=4),
    context=st.dictionaries(st.text(max_size=8), _JSONISH, max_size=4),
)
def test_hostile_values_reach_cedar_without_a_5xx(
    hostile_world: tuple[Any, dict[str, Any]],
    subject: dict[str, Any],
    resource_type: str,
    properties: dict[str, Any],
    context: dict[str, Any],
) -> None:
    call, _world_ids = hostile_world
    body = {
        "subject": subject,
        "action": {"name": "models:invoke"},
        "resource": {"type": resource_type, "id": "r", "properties": properties},
        "context": context,
    }
    status, payload = call(body)
    assert status in (200, 400), (status, payload)
    if status == 200:
        assert isinstance(payload["decision"], bool)


async def test_an_oversized_body_is_413(app: Any, client: httpx.AsyncClient) -> None:
    world = await _world(app)
    body = b'{"subject": {"type": "user", "id": "' + b"x" * (2 << 20) + b'"}}'
    response = await client.post(
        EVAL, content=body, headers={**_headers(world), "Content-Type": "application/json"}
    )
    assert response.status_code == 413


async def _logged(settings: Settings) -> int:
    from sqlalchemy import func, select

    from ostiary.storage.sqla.tables import decision_log

    rt = Runtime(settings)
    try:
        async with rt.unit() as unit:
            count = select(func.count()).select_from(decision_log)
            return int((await unit.conn.execute(count)).scalar_one())
    finally:
        await rt.close()


def test_the_server_logs_decisions_off_the_request_and_writes_them_at_shutdown(
    settings: Settings,
) -> None:
    """features/policy/decision_log.py through the real app: its lifespan runs the buffer (no
    row per request) and writes what it holds when the server stops."""
    from starlette.testclient import TestClient

    from ostiary.features.policy.decision_log import DecisionLogBuffer

    world = asyncio.run(_prepared(settings))
    before = asyncio.run(_logged(settings))
    app = create_app(settings)
    runtime = app.state.runtime
    buffer = DecisionLogBuffer(runtime._write_decisions, interval=3600)  # only at shutdown
    runtime.decision_log_buffer = buffer
    with TestClient(app, base_url=ISSUER) as test_client:
        for _ in range(3):
            response = test_client.post(
                EVAL, json=_request(world["member"]), headers=_headers(world)
            )
            assert response.json() == {"decision": True}
        assert len(buffer) == 3 and buffer.written == 0
    assert buffer.written == 3
    assert asyncio.run(_logged(settings)) == before + 3
