"""Cedar policies per organization and the decisions made with them (issue 13, sections 2-3).

Versions (section 2): an organization's policies (and the deployment-wide ones, which apply to
every organization) are a numbered series; the newest version is the active one. Setting
validates against Ostiary's schema with the organization's extension over it
(features/policy/cedar.py) and refuses a bad set with Cedar's message and the line. A rollback
to version V saves V's texts again as the next version, so the series only grows and a cache
keyed by it never serves a superseded set. Dry-run evaluates a candidate against the recent
decision log (the rows written, and this node's entries still waiting to be written:
features/policy/decision_log.py) and lists the decisions that would change.

Decisions (section 3, OpenID AuthZEN Authorization API 1.0 section 6): the mapping to Cedar,
stated in the README:

- principal: ``User::"<user id>"`` (``email``, and ``plan`` when the organization has one;
  parents: the member's roles ``Role::"<name>"`` and groups ``Group::"<name>"``; a group is in
  its roles, a role in the roles it includes), ``ServiceAccount::"<id>"`` (``plan`` likewise;
  in its roles), ``ApiKey::"<id>"``; a subject of another type is
  ``<type>::"<id>"`` with its ``properties`` as attributes and no permission;
- action: ``Action::"<name>"``;
- resource: ``<type>::"<id>"``, attributes the request's ``properties`` over the catalog's for
  a ``model`` (the organization's entry over the deployment-wide one);
- context: the request's ``context`` with ``organization`` and ``time`` (epoch seconds) set by
  Ostiary, ``ip``, ``acr`` and ``amr`` taken from the request's context, else from the caller.

Combining rule: permitted when (the action is an RBAC permission the principal holds, or a
Cedar ``permit`` matches) and no Cedar ``forbid`` matches; otherwise denied (default deny). A
``forbid`` whose evaluation errors counts as matching (fail closed); an erroring ``permit``
grants nothing (Cedar's own rule).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import cedarpy
import orjson

from ostiary.features.audit.service import AuditTrail
from ostiary.features.clock import Clock
from ostiary.features.models.ports import CatalogInvalidator
from ostiary.features.models.service import ModelCatalog
from ostiary.features.orgs.models import Conflict, InvalidInput, NotFound, TenancyError
from ostiary.features.orgs.service import OrgService
from ostiary.features.policy.cache import DecisionCache, Stamp
from ostiary.features.policy.cedar import (
    PolicyInvalid,
    PolicyProgram,
    authorize,
    compile_program,
    entity,
    validate,
)
from ostiary.features.policy.models import (
    Decision,
    LogEntry,
    LoggedDecision,
    PolicyRefused,
    PolicyVersion,
    Subject,
)
from ostiary.features.policy.ports import (
    ApiKeyDirectory,
    DecisionLogSink,
    DecisionLogStore,
    PolicyStore,
    UserDirectory,
)
from ostiary.features.rbac.service import RbacService
from ostiary.protocol.authzen import Action, Entity, Evaluation
from ostiary.protocol.permissions import PERMISSIONS, allows

__all__ = [
    "DecisionEnv",
    "DecisionLogPolicy",
    "DryRunChange",
    "PolicyService",
]

DEPLOYMENT = ""
DRY_RUN_TURN = 100  # logged decisions replayed between two turns of the event loop
MAX_POLICY_TEXT = 200_000
MAX_SCHEMA_TEXT = 100_000
_PERMISSIONS = frozenset(PERMISSIONS)
REASON_USER = "You do not have access to this resource."
_UNKNOWN = "the subject is not known in this organization"
# Entity types Ostiary builds itself: a request naming one as its subject type would forge an
# Ostiary principal's attributes (subjects are "user", "service_account" or "api_key").
OSTIARY_TYPES = frozenset({"User", "ServiceAccount", "ApiKey", "Role", "Group", "Organization"})


@dataclass(slots=True)  # not frozen: see protocol/authzen.py, Entity
class DecisionEnv:
    """What Ostiary knows of a decision beyond the request: the caller's address and the
    authentication context of the caller's token, when it is the subject's own."""

    now: datetime
    ip: str | None = None
    acr: str | None = None
    amr: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DecisionLogPolicy:
    mode: Literal["off", "sampled", "full"] = "full"
    sample_rate: float = 0.1
    retention: timedelta = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class DryRunChange:
    logged: LoggedDecision
    now_allowed: bool
    reason: str


def _origin(level: str, version: PolicyVersion | None) -> tuple[str, str]:
    name = "deployment" if level == DEPLOYMENT else "organization"
    if version is None:
        return name, ""
    return f"{name} v{version.version}", version.policies


class PolicyService:
    """Policy versions and decisions over one unit of work.

    ``orgs``, ``rbac``, ``catalog``, ``api_keys`` and ``audit`` are given as functions that
    return the unit's service: a decision answered from the caches (features/policy/cache.py)
    needs none of them, and building them per request was a tenth of a single decision."""

    def __init__(
        self,
        store: PolicyStore,
        log: DecisionLogStore,
        orgs: Callable[[], OrgService],
        rbac: Callable[[], RbacService],
        catalog: Callable[[], ModelCatalog],
        users: UserDirectory,
        api_keys: Callable[[], ApiKeyDirectory],
        audit: Callable[[], AuditTrail],
        clock: Clock,
        cache: DecisionCache,
        invalidator: CatalogInvalidator,
        log_policy: DecisionLogPolicy,
        log_sink: DecisionLogSink | None = None,
    ) -> None:
        self._store = store
        self._log = log
        self._orgs_of = orgs
        self._rbac_of = rbac
        self._catalog_of = catalog
        self._users = users
        self._api_keys_of = api_keys
        self._audit_of = audit
        self._clock = clock
        self._cache = cache
        self._invalidator = invalidator
        self._log_policy = log_policy
        self._log_sink = log_sink
        self._changed = False  # reads of this unit may see its own uncommitted writes
        # The log's view of the last environment: (env, expiry, the "env" member of a record).
        # The decisions of one batch share their environment, so they share these too.
        self._logged_env: tuple[DecisionEnv, datetime, dict[str, Any]] | None = None

    @property
    def _orgs(self) -> OrgService:
        return self._orgs_of()

    @property
    def _rbac(self) -> RbacService:
        return self._rbac_of()

    @property
    def _catalog(self) -> ModelCatalog:
        return self._catalog_of()

    @property
    def _api_keys(self) -> ApiKeyDirectory:
        return self._api_keys_of()

    @property
    def _audit(self) -> AuditTrail:
        return self._audit_of()

    # -- versions --------------------------------------------------------------------------

    async def _level(self, org_id: str | None) -> str:
        return DEPLOYMENT if org_id is None else (await self._orgs.get(org_id)).id

    @staticmethod
    def check(policies: str, schema: str = "") -> int:
        """The number of policies in ``policies`` if they validate; else PolicyRefused."""
        if len(policies) > MAX_POLICY_TEXT:
            raise InvalidInput(f"policies longer than {MAX_POLICY_TEXT} characters")
        if len(schema) > MAX_SCHEMA_TEXT:
            raise InvalidInput(f"schema longer than {MAX_SCHEMA_TEXT} characters")
        try:
            return len(validate(policies, schema))
        except PolicyInvalid as exc:
            raise PolicyRefused(str(exc)[:2000]) from None

    async def _save(
        self, level: str, policies: str, schema: str, note: str, actor: str | None
    ) -> PolicyVersion:
        latest = await self._store.latest_version(level)
        version = PolicyVersion(
            level,
            (latest.version if latest else 0) + 1,
            policies,
            schema,
            note[:200],
            actor,
            self._clock.now(),
        )
        if not await self._store.add_version(version):
            raise Conflict("the policies changed meanwhile; retry")
        self._changed = True
        await self._invalidator.decision_data_changed(level)
        return version

    async def set(
        self,
        org_id: str | None,
        policies: str,
        schema: str = "",
        *,
        note: str = "",
        actor: str | None,
    ) -> PolicyVersion:
        """Validate and save ``policies`` as the next (active) version of the organization,
        or of the deployment-wide set when ``org_id`` is None."""
        level = await self._level(org_id)
        count = self.check(policies, schema)
        if level != DEPLOYMENT:
            await self._orgs.lock(level)
        version = await self._save(level, policies, schema, note, actor)
        await self._audit.record(
            "policies.set",
            "success",
            actor=actor,
            target=str(version.version),
            details={"organization_id": level or None, "policies": count},
        )
        return version

    async def active(self, org_id: str | None) -> PolicyVersion | None:
        return await self._store.latest_version(await self._level(org_id))

    async def versions(
        self, org_id: str | None, limit: int = 50, before: int | None = None
    ) -> list[PolicyVersion]:
        """Newest first; ``before``: only the versions older than that one (the next page)."""
        if not 1 <= limit <= 500:
            raise InvalidInput("limit must be 1 to 500")
        return await self._store.list_versions(await self._level(org_id), limit, before)

    async def version(self, org_id: str | None, version: int) -> PolicyVersion:
        """One version, with its texts (NotFound if there is none of that number)."""
        found = await self._store.get_version(await self._level(org_id), version)
        if found is None:
            raise NotFound(f"no policy version {version}")
        return found

    async def rollback(
        self, org_id: str | None, version: int, *, actor: str | None
    ) -> PolicyVersion:
        """Make version ``version``'s policies and schema active again (saved as the next
        version, noted as a rollback)."""
        level = await self._level(org_id)
        if level != DEPLOYMENT:
            await self._orgs.lock(level)
        earlier = await self._store.get_version(level, version)
        if earlier is None:
            raise NotFound(f"no policy version {version}")
        saved = await self._save(
            level, earlier.policies, earlier.schema, f"rollback to v{version}", actor
        )
        await self._audit.record(
            "policies.rollback",
            "success",
            actor=actor,
            target=str(saved.version),
            details={"organization_id": level or None, "to_version": version},
        )
        return saved

    async def decisions(
        self,
        org_id: str,
        limit: int = 50,
        *,
        before: int | None = None,
        allowed: bool | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[LoggedDecision]:
        """The organization's logged decisions, newest first (for audits: who was permitted or
        denied what, and why). A node writes its entries within a tenth of a second
        (features/policy/decision_log.py); they are read once written."""
        if not 1 <= limit <= 1000:
            raise InvalidInput("limit must be 1 to 1000")
        level = await self._level(org_id)
        return await self._log.recent(
            level, limit, before=before, decision=allowed, since=since, until=until
        )

    async def dry_run(
        self, org_id: str, policies: str, schema: str = "", *, limit: int = 1000
    ) -> tuple[int, list[DryRunChange]]:
        """Evaluate a candidate set of the organization against its ``limit`` newest logged
        decisions (with today's roles and catalog): (how many were replayed, those whose
        outcome would change)."""
        if not 1 <= limit <= 10_000:
            raise InvalidInput("limit must be 1 to 10000")
        level = await self._level(org_id)
        self.check(policies, schema)
        shared = await self._store.latest_version(DEPLOYMENT)
        candidate = compile_program([_origin(DEPLOYMENT, shared), ("candidate", policies)])
        logged = await self._log.recent(level, limit)
        if self._log_sink is not None:  # this node's decisions not written yet are newer
            held = [e.logged() for e in self._log_sink.pending(level)[:limit]]
            logged = [*held, *logged][:limit]
        changes: list[DryRunChange] = []
        for done, entry in enumerate(logged, 1):
            if done % DRY_RUN_TURN == 0:
                # Cached decisions never wait on I/O: without a turn of the event loop, 10,000
                # of them (about half a second) held every other request of this node.
                await asyncio.sleep(0)
            replay = _replayed(entry.request)
            if replay is None:
                continue
            evaluation, env = replay
            decision, _ = await self._decide(level, evaluation, env, candidate)
            if decision.allowed != entry.decision:
                changes.append(DryRunChange(entry, decision.allowed, decision.reason_admin))
        return len(logged), changes

    # -- decisions -------------------------------------------------------------------------

    async def program(self, org_id: str) -> PolicyProgram:
        """The compiled deployment-wide and organization policies (cached per organization)."""
        cache = self._cache
        stamp = cache.stamp(org_id)
        program = cache.programs.get(org_id, stamp) if not self._changed else None
        if program is None:
            shared = await self._store.latest_version(DEPLOYMENT)
            own = await self._store.latest_version(org_id)
            program = compile_program([_origin(DEPLOYMENT, shared), _origin(org_id, own)])
            if not self._changed:
                cache.programs.put(org_id, program, stamp)
        assert isinstance(program, PolicyProgram)
        return program

    async def _model_attributes(self, org_id: str, model_id: str) -> dict[str, Any]:
        """The catalog's attributes of the model (cached: not to be changed)."""
        cache = self._cache
        stamp = cache.stamp(org_id)
        key = (org_id, model_id)
        found = cache.models.get(key, stamp) if not self._changed else None
        if found is None:
            found = await self._catalog.attributes(org_id, model_id)
            if not self._changed:
                cache.models.put(key, found, stamp)
        return found

    async def _roles_entities(
        self, org_id: str, role_ids: Sequence[str], out: dict[tuple[str, str], dict[str, Any]]
    ) -> list[tuple[str, str]]:
        """``Role`` entities for ``role_ids`` and every role they include, transitively (a
        role's parents: the roles it includes), into ``out``; returns the uids of
        ``role_ids`` themselves (the holder's parents)."""
        direct = set(role_ids)
        parents: list[tuple[str, str]] = []
        todo = list(role_ids)
        seen: set[str] = set()
        while todo:
            role_id = todo.pop()
            if role_id in seen:
                continue
            seen.add(role_id)
            try:
                role = await self._rbac.get_role(org_id, role_id)
            except TenancyError:  # deleted meanwhile
                continue
            if role_id in direct:
                parents.append(("Role", role.name))
            included: list[tuple[str, str]] = []
            for inner in role.includes:
                try:
                    included.append(("Role", (await self._rbac.get_role(org_id, inner)).name))
                except TenancyError:
                    continue
                todo.append(inner)
            out[("Role", role.name)] = entity("Role", role.name, {}, included)
        return parents

    async def _principal_entities(
        self, org_id: str, kind: Literal["user", "service_account"], principal_id: str
    ) -> tuple[list[tuple[str, str]], dict[tuple[str, str], dict[str, Any]]]:
        out: dict[tuple[str, str], dict[str, Any]] = {}
        held = await self._rbac.assignments_of(org_id, (kind, principal_id))
        parents = await self._roles_entities(
            org_id, [a.role for a in held if a.project_id is None], out
        )
        if kind == "user":
            for group in await self._rbac.groups_of(org_id, principal_id):
                group_roles = await self._rbac.assignments_of(org_id, ("group", group.id))
                group_parents = await self._roles_entities(
                    org_id, [a.role for a in group_roles if a.project_id is None], out
                )
                out[("Group", group.name)] = entity("Group", group.name, {}, group_parents)
                parents.append(("Group", group.name))
        return parents, out

    async def _subject(self, org_id: str, subject: Entity) -> Subject | None:
        """The subject as Cedar entities with its permissions, or None when the organization
        does not know it (a stranger gets the same answer as a non-existent id)."""
        if subject.type == "user":
            found = await self._users.find_user(subject.id)
            if found is None:
                return None
            user_id, email = found
            key = f"user|{user_id}"
        elif subject.type == "service_account":
            # Read at every decision, like a user's standing: a disabled or deleted account is
            # refused at once on every node (its cached entities below may outlive it).
            if not await self._api_keys.service_account_active(org_id, subject.id):
                return None
            user_id, email, key = subject.id, "", f"service_account|{subject.id}"
        elif subject.type == "api_key":
            key_subject = await self._api_keys.api_key(org_id, subject.id)
            if key_subject is None or key_subject.organization_id != org_id:
                return None
            attrs = {"owner_type": key_subject.owner_type, "owner_id": key_subject.owner_id}
            return Subject(
                "ApiKey",
                key_subject.key_id,
                (entity("ApiKey", key_subject.key_id, attrs, []),),
                key_subject.permissions,
            )
        elif subject.type in OSTIARY_TYPES:
            return None
        else:
            return Subject(
                subject.type,
                subject.id,
                (entity(subject.type, subject.id, dict(subject.properties), []),),
                frozenset(),
            )
        cache = self._cache
        stamp = cache.stamp(org_id, key)
        cached = cache.subjects.get((org_id, key), stamp) if not self._changed else None
        if cached is not None:
            assert isinstance(cached, Subject)
            return cached
        made = await self._make_subject(org_id, subject.type, user_id, email, key)
        if made is not None and not self._changed:
            cache.subjects.put((org_id, key), made, stamp)
        return made

    async def _plan(self, org_id: str) -> dict[str, str]:
        """``{"plan": ...}`` when the organization has one (set by the operator); cached with
        the subject, which an organization change invalidates (web/runtime.py)."""
        plan = (await self._orgs.get(org_id)).plan
        return {"plan": plan} if plan else {}

    async def _make_subject(
        self, org_id: str, kind: str, principal_id: str, email: str, key: str
    ) -> Subject | None:
        if kind == "user":
            try:
                await self._orgs.require_member(org_id, principal_id)
            except TenancyError:
                return None
            parents, others = await self._principal_entities(org_id, "user", principal_id)
            me = entity("User", principal_id, {"email": email, **await self._plan(org_id)}, parents)
            held = await self._rbac.effective_permissions(org_id, "user", principal_id)
            return Subject("User", principal_id, (me, *others.values()), held, key)
        parents, others = await self._principal_entities(org_id, "service_account", principal_id)
        me = entity("ServiceAccount", principal_id, await self._plan(org_id), parents)
        held = await self._rbac.effective_permissions(org_id, "service_account", principal_id)
        return Subject("ServiceAccount", principal_id, (me, *others.values()), held, key)

    async def _entities(
        self, org_id: str, subject: Subject, resource: Entity, stamp: Stamp, named: str
    ) -> cedarpy.Entities | str:
        """The decision's entities: the subject's and the resource. When the subject was
        named by the key it is cached under, Cedar parses its entities once (a handle, under
        its stamp: features/policy/cache.py) and each decision adds only the resource to a
        copy (cedarpy ``with_added_json_str``: about a quarter of parsing them all); the
        result is kept too when the resource is the catalog's alone (no request properties),
        and then a decision that finds it reads nothing else. Otherwise Cedar's JSON, parsed
        for this decision."""
        cache = self._cache
        cached = bool(named) and named == subject.cache_key and not self._changed
        key = None
        if cached:
            current = cache.stamp(org_id, named)
            if not resource.properties:
                key = (org_id, named, resource.type, resource.id)
                found = cache.entity_sets.get(key, current)
                if found is not None:
                    assert isinstance(found, cedarpy.Entities)
                    return found
        attrs: dict[str, Any] = resource.properties
        if resource.type == "model":
            attrs = {**await self._model_attributes(org_id, resource.id), **attrs}
        uid = {"type": resource.type, "id": resource.id}
        mine = any(e["uid"] == uid for e in subject.entities)
        added = None if mine else entity(resource.type, resource.id, attrs, [])
        if not cached:
            return orjson.dumps([*subject.entities, *([added] if added else [])]).decode()
        base = cache.entity_sets.get((org_id, named), current)
        if base is None:
            base = cedarpy.Entities.from_json_str(orjson.dumps(subject.entities).decode())
            cache.entity_sets.put((org_id, named), base, stamp)
        assert isinstance(base, cedarpy.Entities)
        made = base if added is None else base.with_added_json_str(orjson.dumps([added]).decode())
        if key is not None:
            cache.entity_sets.put(key, made, stamp)
        return made

    async def evaluate(self, org_id: str, evaluation: Evaluation, env: DecisionEnv) -> Decision:
        """One decision inside ``org_id``, logged per the decision-log setting."""
        program = await self.program(org_id)
        decision, subject = await self._decide(org_id, evaluation, env, program, active=True)
        policy = self._log_policy
        if policy.mode == "full" or (
            # OWASP ASVS 4.0 V7.2.2: every refused access is logged; permits are sampled.
            policy.mode == "sampled"
            and (not decision.allowed or random.random() < policy.sample_rate)  # noqa: S311 (sampling, not secrecy)
        ):
            logged = self._logged_env
            if logged is None or logged[0] is not env:
                logged = (env, env.now + policy.retention, _env_record(env))
                self._logged_env = logged
            entry = LogEntry(
                org_id,
                env.now,
                logged[1],
                _record(evaluation, subject, logged[2]),
                decision.allowed,
                decision.reason_admin,
            )
            sink = self._log_sink
            if sink is None or not sink.offer(entry):
                await self._log.append(entry)
        return decision

    async def _decide(
        self,
        org_id: str,
        evaluation: Evaluation,
        env: DecisionEnv,
        program: PolicyProgram,
        *,
        active: bool = False,
    ) -> tuple[Decision, Subject | None]:
        """The decision, and the subject as resolved (None: not known here). ``active``:
        ``program`` is the organization's active one (:meth:`program`), whose answers the
        decision cache keeps; not a dry-run's candidate."""
        action = evaluation.action.name
        # Read before the subject and the catalog: an invalidation arriving meanwhile makes
        # the entity set built from them stale instead of cached as current.
        named = _principal_key(evaluation.subject)
        stamp = self._cache.stamp(org_id, named)
        subject = await self._subject(org_id, evaluation.subject)
        if subject is None:
            return Decision(False, _UNKNOWN, REASON_USER), None
        resource = evaluation.resource
        rbac_grants = action in _PERMISSIONS and allows(subject.permissions, action)
        if program.policy_set is not None:
            program = program.slice(action, resource.type, resource.id)
        if program.policy_set is None:  # no policy can apply to this action and resource
            return _by_permission(action, rbac_grants), subject
        # When no policy of the slice reads the context, Cedar's answer depends only on the
        # policies, the entities and the principal, action and resource: it is kept under the
        # entity set's stamp, which every change of those moves (a policy version included),
        # for the same question.
        cache = self._cache
        memo = None
        answer = None
        if (
            active
            and not program.reads_context
            and named
            and named == subject.cache_key
            and not resource.properties
            and not self._changed
        ):
            memo = (org_id, named, resource.type, resource.id, action)
            answer = cache.answers.get(memo, cache.stamp(org_id, named))
        if answer is None:
            context: dict[str, Any] = dict(evaluation.context)
            for name, value in (("ip", env.ip), ("acr", env.acr)):
                if value and not isinstance(context.get(name), str):
                    context[name] = value
            if env.amr and not isinstance(context.get("amr"), list):
                context["amr"] = list(env.amr)
            context["organization"] = org_id
            context["time"] = int(env.now.timestamp())
            try:
                request = {
                    "principal": {"type": subject.entity_type, "id": subject.entity_id},
                    "action": {"type": "Action", "id": action},
                    "resource": {"type": resource.type, "id": resource.id},
                    # As text: a dict would be copied and dumped with the stdlib's json.
                    "context": orjson.dumps(context).decode(),
                }
                entities = await self._entities(org_id, subject, resource, stamp, named)
                answer = authorize(request, program.policy_set, entities)
            except (ValueError, TypeError) as exc:  # a value Cedar cannot take: deny, say why
                why = f"evaluation error: {str(exc)[:200]}"
                return Decision(False, why, REASON_USER), subject
            if memo is not None:
                cache.answers.put(memo, answer, stamp)
        if answer.errors:
            failed_forbids = [p for p in _error_ids(answer.errors) if program.effect(p) == "forbid"]
            if failed_forbids:
                why = ", ".join(program.describe(p) for p in failed_forbids[:3])
                return Decision(False, f"a forbid failed to evaluate: {why}", REASON_USER), subject
        reasons = answer.reasons
        if answer.allowed:
            why = ", ".join(program.describe(p) for p in reasons[:3])
            return Decision(True, f"permitted by {why}", ""), subject
        if reasons:  # Cedar's deny reasons are the forbids that matched
            why = ", ".join(program.describe(p) for p in reasons[:3])
            return Decision(False, f"forbidden by {why}", REASON_USER), subject
        return _by_permission(action, rbac_grants), subject


def _by_permission(action: str, granted: bool) -> Decision:
    """No policy decided: the RBAC permission does, or the default deny."""
    if granted:
        return Decision(True, f"granted by the permission {action}", "")
    return Decision(False, _missing(action), REASON_USER)


def _principal_key(subject: Entity) -> str:
    """The decision cache's key of a principal as the request names it (a user by e-mail is
    keyed by id once found, so its entity sets are not cached: see ``_entities``)."""
    if subject.type in ("user", "service_account"):
        return f"{subject.type}|{subject.id}"
    return ""


def _missing(action: str) -> str:
    if action in _PERMISSIONS:
        return f"missing the permission {action} and no policy permits it"
    return "no policy permits it"


def _error_ids(errors: Sequence[str]) -> list[str]:
    """Policy ids named by Cedar's evaluation errors (``error while evaluating policy `p`..``)."""
    ids: list[str] = []
    for text in errors:
        start = text.find("`policy")
        if start >= 0:
            end = text.find("`", start + 1)
            if end > start:
                ids.append(text[start + 1 : end])
    return ids


def _env_record(env: DecisionEnv) -> dict[str, Any]:
    """The caller's environment as the decision log keeps it (read back by ``_replayed``)."""
    return {"ip": env.ip, "acr": env.acr, "amr": list(env.amr), "at": env.now.isoformat()}


def _record(evaluation: Evaluation, subject: Subject | None, env: dict[str, Any]) -> dict[str, Any]:
    """What the decision log keeps: the request with the subject named by its resolved id
    (never the e-mail address it may have been given by), and the caller's environment
    (``_env_record``: one dict shared by the entries of one environment, never changed)."""
    named = evaluation.subject
    subject_id = subject.entity_id if subject is not None else ""
    return {
        "subject": {"type": named.type, "id": subject_id, "properties": named.properties},
        "action": {"name": evaluation.action.name, "properties": evaluation.action.properties},
        "resource": {
            "type": evaluation.resource.type,
            "id": evaluation.resource.id,
            "properties": evaluation.resource.properties,
        },
        "context": evaluation.context,
        "env": env,
    }


def _replayed(request: dict[str, Any]) -> tuple[Evaluation, DecisionEnv] | None:
    """A logged request as it was evaluated (None for one whose subject was unknown)."""
    try:
        subject, action, resource = request["subject"], request["action"], request["resource"]
        if not subject.get("id"):
            return None
        env = request.get("env") or {}
        return (
            Evaluation(
                Entity(subject["type"], subject["id"], dict(subject.get("properties") or {})),
                Action(action["name"], dict(action.get("properties") or {})),
                Entity(resource["type"], resource["id"], dict(resource.get("properties") or {})),
                dict(request.get("context") or {}),
            ),
            DecisionEnv(
                datetime.fromisoformat(env["at"]),
                env.get("ip"),
                env.get("acr"),
                tuple(env.get("amr") or ()),
            ),
        )
    except (KeyError, TypeError, ValueError):
        return None
