"""features/policy/service.py over the real SQL stores and real Cedar: the combining rule
(RBAC permission or Cedar permit, unless a forbid), catalog attributes under request
properties, a policy on ``context.acr``, versions, rollback, dry-run against the decision log,
cache invalidation by every kind of change, and tenancy (another organization's policies,
models and subjects are invisible)."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from ostiary.features.orgs.models import InvalidInput, NotFound
from ostiary.features.policy.models import PolicyRefused
from ostiary.features.policy.service import DecisionEnv
from ostiary.protocol.authzen import Action, Entity, Evaluation
from ostiary.storage.sqla.tables import decision_log


async def _user(runtime: Any) -> tuple[str, str]:
    email = f"{secrets.token_hex(4)}@example.com"
    async with runtime.unit() as unit:
        user = await unit.accounts.create_user(email, secrets.token_urlsafe(18))
    return str(user.id), email


async def _org(runtime: Any, *members: tuple[str, str]) -> str:
    async with runtime.unit() as unit:
        org = await unit.orgs.create(f"Org {secrets.token_hex(3)}", actor=None)
        for user_id, role in members:
            await unit.orgs.add_member(org.id, user_id, actor=None)
            await unit.rbac.assign(org.id, ("user", user_id), role, actor=None)
    return str(org.id)


def _ask(
    subject: str,
    action: str,
    resource: tuple[str, str] = ("model", "m1"),
    *,
    properties: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    subject_type: str = "user",
) -> Evaluation:
    return Evaluation(
        Entity(subject_type, subject),
        Action(action),
        Entity(resource[0], resource[1], properties or {}),
        context or {},
    )


async def _decide(runtime: Any, org: str, evaluation: Evaluation, **env: Any) -> Any:
    async with runtime.unit() as unit:
        return await unit.policies.evaluate(
            org, evaluation, DecisionEnv(runtime.clock.now(), **env)
        )


async def _set(runtime: Any, org: str | None, policies: str, schema: str = "") -> Any:
    async with runtime.unit() as unit:
        return await unit.policies.set(org, policies, schema, actor=None)


async def test_rbac_permission_grants_unless_a_forbid_matches(runtime: Any) -> None:
    member, _ = await _user(runtime)
    reader, _ = await _user(runtime)
    org = await _org(runtime, (member, "member"), (reader, "reader"))
    assert (await _decide(runtime, org, _ask(member, "models:invoke"))).allowed
    denied = await _decide(runtime, org, _ask(reader, "models:invoke"))
    assert not denied.allowed
    assert "missing the permission models:invoke" in denied.reason_admin
    assert denied.response()["context"]["reason_user"]["en"]

    await _set(
        runtime,
        org,
        'permit(principal, action, resource);\n\n@id("no-m1")\n'
        'forbid(principal, action == Action::"models:invoke", resource == model::"m1");\n',
    )
    blocked = await _decide(runtime, org, _ask(member, "models:invoke"))
    assert not blocked.allowed
    assert 'forbid "no-m1" (organization v1, line 3)' in blocked.reason_admin
    # A Cedar permit adds to RBAC: the reader may invoke another model now.
    assert (await _decide(runtime, org, _ask(reader, "models:invoke", ("model", "m2")))).allowed


async def test_default_deny_for_an_action_no_one_grants(runtime: Any) -> None:
    owner, _ = await _user(runtime)
    org = await _org(runtime, (owner, "owner"))
    # "*" grants every permission, but a custom action is not a permission.
    decision = await _decide(runtime, org, _ask(owner, "can_fly", ("todo", "t")))
    assert not decision.allowed and decision.reason_admin == "no policy permits it"


async def test_catalog_attributes_under_request_properties(runtime: Any) -> None:
    user, _ = await _user(runtime)
    org = await _org(runtime, (user, "reader"))
    async with runtime.unit() as unit:
        await unit.models.create(None, "big", {"tier": "premium", "region": "us"}, actor=None)
        await unit.models.create(org, "big", {"region": "eu"}, actor=None)
    await _set(
        runtime,
        org,
        'permit(principal, action == Action::"models:invoke", resource is model)\n'
        ' when { resource has tier && resource.tier == "premium" && resource has region'
        ' && resource.region == "eu" };',
    )
    # tier from the deployment-wide entry, region from the organization's entry over it
    assert (await _decide(runtime, org, _ask(user, "models:invoke", ("model", "big")))).allowed
    # the request's properties win over both
    overridden = _ask(user, "models:invoke", ("model", "big"), properties={"tier": "basic"})
    assert not (await _decide(runtime, org, overridden)).allowed
    # another organization does not see this organization's entry
    other = await _org(runtime, (user, "reader"))
    await _set(
        runtime,
        other,
        'permit(principal, action == Action::"models:invoke", resource is model)\n'
        ' when { resource has region && resource.region == "eu" };',
    )
    assert not (
        await _decide(runtime, other, _ask(user, "models:invoke", ("model", "big")))
    ).allowed


async def test_a_policy_on_context_acr(runtime: Any) -> None:
    user, _ = await _user(runtime)
    org = await _org(runtime, (user, "reader"))
    await _set(
        runtime,
        org,
        'permit(principal, action == Action::"keys:revoke", resource)\n'
        ' when { context has acr && context.acr == "urn:ostiary:acr:mfa" };',
    )
    ask = _ask(user, "keys:revoke")
    assert not (await _decide(runtime, org, ask)).allowed
    assert (await _decide(runtime, org, ask, acr="urn:ostiary:acr:mfa")).allowed
    # the organization in the context is always Ostiary's, whatever the request says
    await _set(
        runtime,
        org,
        'permit(principal, action == Action::"keys:revoke", resource)\n'
        ' when { context.organization == "someone-else" };',
    )
    spoof = _ask(user, "keys:revoke", context={"organization": "someone-else"})
    assert not (await _decide(runtime, org, spoof)).allowed


async def test_cedars_answer_is_reused_only_while_no_policy_reads_the_context(
    runtime: Any, clock: Any
) -> None:
    """The same question again is answered from the decision cache when no policy of its
    slice names ``context``; a policy on ``context.time`` is evaluated at every decision."""
    user, _ = await _user(runtime)
    org = await _org(runtime, (user, "member"))
    await _set(runtime, org, 'forbid(principal, action, resource == model::"m2");')
    ask = _ask(user, "models:invoke")
    blocked = _ask(user, "models:invoke", ("model", "m2"))
    assert (await _decide(runtime, org, ask)).allowed
    assert not (await _decide(runtime, org, blocked)).allowed
    assert len(runtime.decision_cache.answers) == 1  # m1: no policy applies, RBAC decides
    assert (await _decide(runtime, org, ask)).allowed
    assert not (await _decide(runtime, org, blocked)).allowed  # answered from the cache
    assert len(runtime.decision_cache.answers) == 1
    late = int(clock.now().timestamp()) + 60
    await _set(
        runtime, org, f"forbid(principal, action, resource) when {{ context.time > {late} }};"
    )
    assert (await _decide(runtime, org, ask)).allowed
    clock.advance(timedelta(seconds=120))
    late_answer = await _decide(runtime, org, ask)
    assert not late_answer.allowed and "forbidden by" in late_answer.reason_admin


async def test_roles_groups_and_includes_are_parents(runtime: Any) -> None:
    user, _ = await _user(runtime)
    org = await _org(runtime, (user, "reader"))
    async with runtime.unit() as unit:
        await unit.rbac.create_role(org, "viewer", actor=None)
        await unit.rbac.create_role(org, "editor", includes=["viewer"], actor=None)
        group = await unit.rbac.create_group(org, "writers", roles=["editor"], actor=None)
        await unit.rbac.add_group_member(org, group.id, user, actor=None)
    await _set(
        runtime,
        org,
        'permit(principal in Role::"viewer", action == Action::"keys:revoke", resource);\n'
        'permit(principal in Group::"writers", action == Action::"models:fine-tune", resource);',
    )
    assert (await _decide(runtime, org, _ask(user, "keys:revoke", ("Organization", org)))).allowed
    assert (await _decide(runtime, org, _ask(user, "models:fine-tune"))).allowed
    # a rename reaches the cached entities: the policy names the old name
    async with runtime.unit() as unit:
        await unit.rbac.update_role(org, "viewer", name="looker", actor=None)
    assert not (await _decide(runtime, org, _ask(user, "keys:revoke"))).allowed


async def test_strangers_and_unknown_subjects_are_denied_alike(runtime: Any) -> None:
    inside, email = await _user(runtime)
    outside, _ = await _user(runtime)
    org = await _org(runtime, (inside, "owner"))
    other = await _org(runtime, (outside, "owner"))
    await _set(runtime, org, "permit(principal, action, resource);")
    assert (await _decide(runtime, org, _ask(email, "anything", ("todo", "x")))).allowed
    for subject in (outside, "nobody@example.com", "not-an-id"):
        decision = await _decide(runtime, org, _ask(subject, "anything", ("todo", "x")))
        assert not decision.allowed
        assert decision.reason_admin == "the subject is not known in this organization"
    # org A's policies do not apply in org B; A's member is a stranger there
    assert not (await _decide(runtime, other, _ask(outside, "anything", ("todo", "x")))).allowed
    assert not (await _decide(runtime, other, _ask(inside, "models:read"))).allowed


async def test_bad_policy_is_refused_with_message_and_line(runtime: Any) -> None:
    org = await _org(runtime)
    with pytest.raises(PolicyRefused) as parse:
        await _set(runtime, org, "permit(principal, action, resource);\n\nforbid(principal,\n")
    assert parse.value.message.startswith("line 3")
    with pytest.raises(PolicyRefused) as invalid:
        await _set(
            runtime,
            org,
            "// header\npermit(principal, action, resource);\n"
            'permit(principal, action == Action::"models:invoke", resource)\n'
            " when { resource.colour == 1 };",
        )
    assert invalid.value.message.startswith("line 3: policy validation error")
    assert "colour" in invalid.value.message
    with pytest.raises(PolicyRefused, match="unrecognized action"):
        await _set(runtime, org, 'permit(principal, action == Action::"can_x", resource);')
    # nothing was saved
    async with runtime.unit() as unit:
        assert await unit.policies.active(org) is None


async def test_schema_extension_adds_types_and_actions(runtime: Any) -> None:
    user, email = await _user(runtime)
    org = await _org(runtime, (user, "reader"))
    schema = (
        "entity todo { ownerID: String };\n"
        "action can_update_todo appliesTo { principal: [User], resource: [todo], "
        "context: Context };"
    )
    await _set(
        runtime,
        org,
        'permit(principal, action == Action::"can_update_todo", resource is todo)\n'
        " when { resource.ownerID == principal.email };",
        schema,
    )
    mine = _ask(user, "can_update_todo", ("todo", "1"), properties={"ownerID": email})
    theirs = _ask(user, "can_update_todo", ("todo", "2"), properties={"ownerID": "x@y.z"})
    assert (await _decide(runtime, org, mine)).allowed
    assert not (await _decide(runtime, org, theirs)).allowed
    # a missing attribute makes the permit error: no grant, never a 500
    assert not (await _decide(runtime, org, _ask(user, "can_update_todo", ("todo", "3")))).allowed


async def test_a_forbid_that_errors_denies(runtime: Any) -> None:
    user, _ = await _user(runtime)
    org = await _org(runtime, (user, "member"))
    schema = "entity model { blocked?: Bool };"
    await _set(
        runtime,
        org,
        "forbid(principal, action, resource is model) when { resource.blocked };",
        schema.replace("blocked?:", "blocked:"),
    )
    # the attribute is absent: Cedar's evaluation of the forbid errors; fail closed
    decision = await _decide(runtime, org, _ask(user, "models:invoke"))
    assert not decision.allowed and "failed to evaluate" in decision.reason_admin
    allowed = _ask(user, "models:invoke", properties={"blocked": False})
    assert (await _decide(runtime, org, allowed)).allowed


async def test_rollback_and_dry_run(runtime: Any) -> None:
    member, _ = await _user(runtime)
    org = await _org(runtime, (member, "member"))
    first = await _set(runtime, org, 'forbid(principal, action, resource == model::"m1");')
    second = await _set(runtime, org, "permit(principal, action, resource);")
    assert (first.version, second.version) == (1, 2)
    for model in ("m1", "m2"):
        await _decide(runtime, org, _ask(member, "models:invoke", ("model", model)))
    await _decide(runtime, org, _ask(member, "models:fine-tune", ("model", "m2")))
    async with runtime.unit() as unit:
        replayed, changes = await unit.policies.dry_run(
            org,
            'permit(principal, action == Action::"models:fine-tune", resource);\n'
            'forbid(principal, action == Action::"models:invoke", resource == model::"m1");',
        )
    assert replayed == 3
    assert [c.logged.request["resource"]["id"] for c in changes] == ["m1"]
    assert all(c.logged.decision and not c.now_allowed for c in changes)
    async with runtime.unit() as unit:
        restored = await unit.policies.rollback(org, 1, actor=None)
        assert restored.version == 3 and restored.note == "rollback to v1"
        with pytest.raises(NotFound):
            await unit.policies.rollback(org, 99, actor=None)
    blocked = await _decide(runtime, org, _ask(member, "models:invoke", ("model", "m1")))
    assert not blocked.allowed and "organization v3" in blocked.reason_admin
    async with runtime.unit() as unit:
        with pytest.raises(InvalidInput):
            await unit.policies.dry_run(org, "", limit=0)


async def test_decision_log_keeps_ids_not_emails_and_follows_the_setting(runtime: Any) -> None:
    user, email = await _user(runtime)
    org = await _org(runtime, (user, "member"))
    await _decide(runtime, org, _ask(email, "models:invoke"))
    async with runtime.unit() as unit:
        rows = (await unit.conn.execute(select(decision_log.c.request))).all()
    logged = [r.request for r in rows if r.request["subject"]["id"] == user]
    assert logged and email not in str(logged)
    policy = type(runtime.decision_log_policy)
    for mode, rate, logged_more in (("off", 1.0, 0), ("sampled", 0.0, 0), ("sampled", 1.0, 3)):
        runtime.decision_log_policy = policy(mode, rate)
        async with runtime.unit() as unit:
            count = select(func.count()).select_from(decision_log)
            before = (await unit.conn.execute(count)).scalar()
        for _ in range(3):
            await _decide(runtime, org, _ask(email, "models:invoke"))
        async with runtime.unit() as unit:
            after = (await unit.conn.execute(count)).scalar()
        assert after == before + logged_more, (mode, rate)


async def test_sampled_logs_every_deny_whatever_the_rate(runtime: Any) -> None:
    """OWASP ASVS 4.0 V7.2.2: failed access control decisions are all logged; only permits
    are sampled."""
    user, email = await _user(runtime)
    org = await _org(runtime, (user, "reader"))  # a reader lacks models:invoke
    runtime.decision_log_policy = type(runtime.decision_log_policy)("sampled", 0.0)
    count = select(func.count()).select_from(decision_log)
    async with runtime.unit() as unit:
        before = (await unit.conn.execute(count)).scalar()
    for _ in range(3):
        assert not (await _decide(runtime, org, _ask(email, "models:invoke"))).allowed
    assert (await _decide(runtime, org, _ask(email, "models:read"))).allowed  # not sampled
    async with runtime.unit() as unit:
        after = (await unit.conn.execute(count)).scalar()
    assert after == before + 3


async def test_deployment_wide_policies_apply_to_every_organization(runtime: Any) -> None:
    user, _ = await _user(runtime)
    first = await _org(runtime, (user, "owner"))
    second = await _org(runtime, (user, "owner"))
    assert (await _decide(runtime, second, _ask(user, "models:invoke"))).allowed
    await _set(runtime, None, 'forbid(principal, action, resource == model::"m1");')
    for org in (first, second):
        decision = await _decide(runtime, org, _ask(user, "models:invoke"))
        assert not decision.allowed and "deployment v1" in decision.reason_admin
    await _set(runtime, None, "")
    assert (await _decide(runtime, first, _ask(user, "models:invoke"))).allowed


async def test_ostiary_entity_types_cannot_be_forged_as_subjects(runtime: Any) -> None:
    user, _ = await _user(runtime)
    org = await _org(runtime, (user, "owner"))
    await _set(
        runtime,
        org,
        'permit(principal is User, action == Action::"models:read", resource)\n'
        ' when { principal.email == "boss@example.com" };',
    )
    for kind in ("User", "ServiceAccount", "ApiKey", "Role", "Group", "Organization"):
        forged = Evaluation(
            Entity(kind, user, {"email": "boss@example.com"}),
            Action("models:read"),
            Entity("model", "m1"),
        )
        decision = await _decide(runtime, org, forged)
        assert not decision.allowed and "not known" in decision.reason_admin


async def test_concurrent_policy_changes_get_distinct_versions(runtime: Any) -> None:
    import asyncio

    org = await _org(runtime)

    async def change(i: int) -> Any:
        async with runtime.unit() as unit:
            return await unit.policies.set(
                org, f'forbid(principal, action, resource == model::"m{i}");', actor=None
            )

    outcomes = await asyncio.wait_for(
        asyncio.gather(*(change(i) for i in range(4)), return_exceptions=True), timeout=60
    )
    saved = [o.version for o in outcomes if not isinstance(o, BaseException)]
    assert sorted(saved) == list(range(1, len(saved) + 1)) and saved, outcomes
    assert all(not isinstance(o, BaseException) or "retry" in str(o) for o in outcomes)
    async with runtime.unit() as unit:
        versions = await unit.policies.versions(org)
    assert [v.version for v in versions] == sorted(saved, reverse=True)


async def test_a_policy_on_the_organizations_plan(runtime: Any) -> None:
    """Only enterprise organizations may use the premium tier: ``principal.plan`` is the
    organization's plan, for users and service accounts, and follows a change at once."""
    member, _ = await _user(runtime)
    org = await _org(runtime, (member, "member"))
    async with runtime.unit() as unit:
        await unit.models.create(org, "big", {"tier": "premium"}, actor=None)
        bot = await unit.api_keys.create_service_account(org, "bot", roles=["member"], actor=None)
    await _set(
        runtime,
        org,
        'forbid(principal, action == Action::"models:invoke", resource is model)\n'
        ' when { resource has tier && resource.tier == "premium"'
        ' && !(principal has plan && principal.plan == "enterprise") };',
    )
    asks = [
        _ask(member, "models:invoke", ("model", "big")),
        _ask(bot.id, "models:invoke", ("model", "big"), subject_type="service_account"),
    ]

    async def allowed() -> list[bool]:
        return [(await _decide(runtime, org, ask)).allowed for ask in asks]

    assert await allowed() == [False, False]  # no plan
    for plan, expected in (("enterprise", True), ("pro", False), ("enterprise", True)):
        async with runtime.unit() as unit:
            await unit.orgs.update(org, plan=plan, actor=None)
        assert await allowed() == [expected, expected], plan
    async with runtime.unit() as unit:
        await unit.orgs.update(org, plan=None, actor=None)
    assert await allowed() == [False, False]
    # A model outside the tier is not affected.
    assert (await _decide(runtime, org, _ask(member, "models:invoke", ("model", "m1")))).allowed


async def test_a_long_dry_run_lets_other_requests_of_the_node_run(runtime: Any) -> None:
    """Replayed decisions answered from the caches never wait on I/O: the dry-run gives the
    event loop a turn every DRY_RUN_TURN of them, so a 10,000-decision replay does not hold
    every other request of the node for half a second."""
    from ostiary.features.policy.service import DRY_RUN_TURN

    member, _ = await _user(runtime)
    org = await _org(runtime, (member, "member"))
    async with runtime.unit() as unit:
        for i in range(3 * DRY_RUN_TURN):
            await unit.policies.evaluate(
                org,
                _ask(member, "models:read", ("model", f"m{i % 7}")),
                DecisionEnv(runtime.clock.now()),
            )
    turns = 0
    stop = asyncio.Event()

    async def other_request() -> None:
        nonlocal turns
        while not stop.is_set():
            turns += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(other_request())
    await asyncio.sleep(0)  # it starts
    before = turns
    async with runtime.unit() as unit:
        replayed, _ = await unit.policies.dry_run(org, "forbid(principal, action, resource);")
    stop.set()
    await other
    assert replayed == 3 * DRY_RUN_TURN
    assert turns - before >= 3
