"""Ostiary's Cedar schema, policy validation with line numbers, and compiled policy programs.

Cedar (https://docs.cedarpolicy.com, via ``cedarpy``) evaluates; this module says what the
entities are and where a policy starts.

- The base schema (Cedar schema syntax, "Schema format"): ``User`` (``email``, optional
  ``plan``, the organization's; in ``Role`` and ``Group``), ``Group`` (in ``Role``), ``Role`` (in
  ``Role``: a role is in the roles it includes), ``ServiceAccount`` (optional ``plan``; in
  ``Role``), ``ApiKey``, ``model`` (the
  catalog's common attributes, optional), the ``Context`` record type (``organization``,
  ``time``, optional ``ip``, ``acr``, ``amr``) and one action per RBAC permission
  (protocol/permissions.py) on any principal type and a ``model`` or ``Organization``.
- An organization extends it with its own schema text: a declaration of the same name (an
  entity type, a common type such as ``Context``, an action) replaces the base one, anything
  else is added; policies are validated against the result before they are saved.
- Cedar reports a parse error without a position and a validation error by positional policy
  id (``policy0``...): :func:`statements` finds where each policy starts (Cedar grammar:
  annotations, then ``permit``/``forbid``, up to the ``;`` outside strings, comments and
  brackets) so a refusal names the line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cedarpy
import orjson
from cedarpy import _internal as _cedar_internal

from ostiary.protocol.permissions import PERMISSIONS

__all__ = [
    "BASE_SCHEMA",
    "Answer",
    "PolicyInvalid",
    "PolicyProgram",
    "Scope",
    "Statement",
    "authorize",
    "compile_program",
    "schema_text",
    "scopes",
    "statements",
    "validate",
]

Effect = Literal["permit", "forbid"]

_PRINCIPALS = "[User, ServiceAccount, ApiKey]"
BASE_DECLARATIONS: dict[str, str] = {
    "Role": "entity Role in [Role];",
    "Group": "entity Group in [Role];",
    "User": "entity User in [Role, Group] { email: String, plan?: String };",
    "ServiceAccount": "entity ServiceAccount in [Role] { plan?: String };",
    "ApiKey": "entity ApiKey;",
    "Organization": "entity Organization;",
    "model": (
        "entity model { tier?: String, region?: String, modalities?: Set<String>, "
        "context_window?: Long, price_class?: String };"
    ),
    "Context": (
        "type Context = { organization: String, time: Long, ip?: String, acr?: String, "
        "amr?: Set<String> };"
    ),
    **{
        f"action:{p}": (
            f'action "{p}" appliesTo {{ principal: {_PRINCIPALS}, '
            "resource: [model, Organization], context: Context };"
        )
        for p in PERMISSIONS
    },
}
BASE_SCHEMA = "\n".join(BASE_DECLARATIONS.values())

_DECLARED = re.compile(
    r"^\s*(?:entity\s+(?P<entities>[A-Za-z_][\w\s,]*?)(?=\s*(?:in\b|=|\{|;))"
    r"|type\s+(?P<type>[A-Za-z_]\w*)"
    r"|action\s+(?P<actions>(?:\"(?:[^\"\\]|\\.)*\"|[A-Za-z_]\w*)"
    r"(?:\s*,\s*(?:\"(?:[^\"\\]|\\.)*\"|[A-Za-z_]\w*))*))",
    re.MULTILINE,
)


class PolicyInvalid(ValueError):
    """A policy set or schema Cedar refuses: ``line`` is where the problem is (1-based), when
    known."""

    def __init__(self, message: str, line: int | None) -> None:
        where = f"line {line}: " if line is not None else ""
        super().__init__(where + message)
        self.message = message
        self.line = line


def _declared(extension: str) -> set[str]:
    names: set[str] = set()
    for match in _DECLARED.finditer(_strip_comments(extension)):
        if match["entities"]:
            names.update(n.strip() for n in match["entities"].split(",") if n.strip())
        elif match["type"]:
            names.add(match["type"])
        elif match["actions"]:
            for raw in re.findall(r"\"((?:[^\"\\]|\\.)*)\"|([A-Za-z_]\w*)", match["actions"]):
                names.add("action:" + (raw[0] or raw[1]))
    return names


def _strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*", "", text)


def schema_text(extension: str = "") -> str:
    """The base schema with ``extension`` over it (same-named declarations replaced)."""
    replaced = _declared(extension)
    kept = [decl for name, decl in BASE_DECLARATIONS.items() if name not in replaced]
    return "\n".join([*kept, extension])


@dataclass(frozen=True, slots=True)
class Statement:
    line: int  # where the policy starts, 1-based
    end_line: int
    effect: Effect
    label: str | None  # its @id annotation
    text: str


_ID_ANNOTATION = re.compile(r'@id\s*\(\s*"((?:[^"\\]|\\.)*)"\s*\)')


def statements(text: str) -> list[Statement]:
    """The policies of ``text`` in order, each with its line span, effect and ``@id``.

    A scanner, not a parser: it tracks strings (with escapes), ``//`` comments and bracket
    depth, and cuts at each ``;`` at depth 0. Cedar numbers policies in the same order, so
    ``statements(text)[i]`` is Cedar's ``policy{i}`` whenever Cedar accepts ``text``.
    """
    found: list[Statement] = []
    start: int | None = None
    depth = 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "/" and text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if start is None and not ch.isspace():
            start = i
        if ch == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        elif ch == ";" and depth == 0 and start is not None:
            found.append(_statement(text, start, i + 1))
            start = None
        i += 1
    if start is not None:
        found.append(_statement(text, start, n))
    return found


def _statement(text: str, start: int, end: int) -> Statement:
    chunk = text[start:end]
    body = re.sub(r'@\w+\s*(?:\(\s*"(?:[^"\\]|\\.)*"\s*\))?', "", _strip_comments(chunk))
    effect: Effect = "forbid" if body.lstrip().startswith("forbid") else "permit"
    label = _ID_ANNOTATION.search(chunk)
    line = text.count("\n", 0, start) + 1
    return Statement(line, line + chunk.count("\n"), effect, label[1] if label else None, chunk)


# A statement longer than this many lines is not searched line by line for its parse error.
MAX_LINE_SEARCH = 200


def _parse_error_line(text: str) -> tuple[str, int | None]:
    """Cedar's parse message and the line it is on: the first statement that does not parse
    on its own, then the first of its lines after which the message is the one Cedar gives
    for the whole statement (before it, the truncated text only ends too early)."""
    for statement in statements(text):
        try:
            cedarpy.PolicySet.from_str(statement.text)
        except ValueError as exc:
            message = str(exc)
            lines = statement.text.split("\n")
            if len(lines) > MAX_LINE_SEARCH:  # quadratic: name the statement's first line
                return message, statement.line
            for k in range(1, len(lines) + 1):
                try:
                    cedarpy.PolicySet.from_str("\n".join(lines[:k]))
                except ValueError as partial:
                    if str(partial) == message:
                        return message, statement.line + k - 1
            return message, statement.line
    return "", None


def _check_parses(text: str, what: str) -> cedarpy.PolicySet:
    try:
        return cedarpy.PolicySet.from_str(text)
    except ValueError as exc:
        message, line = _parse_error_line(text)
        raise PolicyInvalid(f"{what}: {message or exc}", line) from None


def validate(policies: str, extension: str = "") -> list[Statement]:
    """The statements of ``policies`` if they parse and validate against the base schema with
    ``extension`` over it; else PolicyInvalid with Cedar's message and the line."""
    try:
        schema = cedarpy.Schema.from_str(schema_text(extension))
    except ValueError as exc:
        raise PolicyInvalid(f"schema: {exc}", _schema_line(extension, str(exc))) from None
    parsed = _check_parses(policies, "policy parse error")
    found = statements(policies)
    templates = parsed.templates()
    if templates:  # never linked here, so they would decide nothing, and shift the numbering
        where = next(
            (s.line for s in found if "?principal" in s.text or "?resource" in s.text), None
        )
        raise PolicyInvalid(
            "templates (?principal, ?resource) are not supported: write the policy itself", where
        )
    if len(found) != len(parsed):  # the scanner disagrees with Cedar: never guess a line
        found = []
    result = cedarpy.validate_policies(policies, schema)
    if not result.validation_passed:
        first = result.errors[0]
        index = int(first.policy_id[6:]) if first.policy_id.startswith("policy") else -1
        line = found[index].line if 0 <= index < len(found) else None
        messages = "; ".join(e.error for e in result.errors[:5])
        raise PolicyInvalid(f"policy validation error: {messages}", line)
    return found


def _schema_line(extension: str, message: str) -> int | None:
    """The first line of the extension naming something the message quotes."""
    for word in re.findall(r"(?::\s*|`)([A-Za-z_]\w*)`?$", message) or re.findall(
        r"`([^`]+)`", message
    ):
        for number, line in enumerate(extension.split("\n"), 1):
            if re.search(rf"\b{re.escape(word)}\b", line):
                return number
    return None


@dataclass(frozen=True, slots=True)
class Scope:
    """What a policy's scope says of the action and the resource (Cedar's JSON policy format,
    "Policy scope"), for slicing: ``actions`` the action ids ``action ==`` names (None: any
    action, which ``action in`` is taken as); ``resource`` the uid ``resource ==`` names and
    ``resource_type`` the type ``resource is`` names (None: any)."""

    actions: frozenset[str] | None
    resource: tuple[str, str] | None
    resource_type: str | None

    def may_match(self, action: str, resource_type: str, resource_id: str) -> bool:
        if self.actions is not None and action not in self.actions:
            return False
        if self.resource is not None and self.resource != (resource_type, resource_id):
            return False
        return self.resource_type is None or self.resource_type == resource_type


ANY_SCOPE = Scope(None, None, None)


def _scope(policy: dict[str, Any]) -> Scope:
    """Only ``==`` and ``is`` narrow: ``in`` may hold through parents (a resource that is one
    of the principal's roles, say), so it is kept as "any", like every form not known here."""
    action, resource = policy.get("action") or {}, policy.get("resource") or {}
    actions = None
    if action.get("op") == "==" and action.get("entity", {}).get("type") == "Action":
        actions = frozenset({str(action["entity"]["id"])})
    uid = None
    if resource.get("op") == "==" and "entity" in resource:
        uid = (str(resource["entity"]["type"]), str(resource["entity"]["id"]))
    kind = str(resource["entity_type"]) if resource.get("op") == "is" else None
    return Scope(actions, uid, kind)


def scopes(text: str) -> tuple[Scope, ...]:
    """The scope of each policy of ``text`` (which Cedar accepts), in Cedar's numbering."""
    found = orjson.loads(cedarpy.policies_to_json_str(text)).get("staticPolicies", {})
    return tuple(_scope(found.get(f"policy{i}", {})) for i in range(len(found)))


# Slices a program keeps (one per action and resource asked about); then it starts over.
MAX_SLICES = 4096


@dataclass(frozen=True, slots=True)
class PolicyProgram:
    """The policies one organization's decisions run: the deployment-wide ones, then the
    organization's, compiled once (``policy_set`` None when there are none).

    :meth:`slice` narrows it to the policies whose scope may match one action and resource
    (Cedar evaluates every policy of a set, so a hundred ``resource == model::"mN"`` permits
    cost a hundred scope checks per decision): a policy whose scope cannot match is never
    satisfied and never errors (its conditions are not evaluated), so the decision, its
    reasons and its errors are the same. Slices are compiled once per action and resource and
    kept with the program, which lives as long as its policy version."""

    policy_set: cedarpy.PolicySet | None
    statements: tuple[Statement, ...]
    origins: tuple[str, ...]  # per statement: "deployment v3" / "organization v7"
    scopes: tuple[Scope, ...] = ()
    # Whether any policy may read ``context`` (its text names it anywhere, comments and
    # strings included: never a miss). When none does, a decision's answer does not depend on
    # the request's context, the caller's address or the time (features/policy/service.py).
    reads_context: bool = True
    _slices: dict[tuple[str, str, str], PolicyProgram] = field(
        default_factory=dict, compare=False, repr=False
    )

    def describe(self, policy_id: str) -> str:
        if policy_id.startswith("policy") and policy_id[6:].isdigit():
            index = int(policy_id[6:])
            if index < len(self.statements):
                statement = self.statements[index]
                label = f' "{statement.label}"' if statement.label else ""
                return f"{statement.effect}{label} ({self.origins[index]}, line {statement.line})"
        return policy_id

    def effect(self, policy_id: str) -> Effect | None:
        if policy_id.startswith("policy") and policy_id[6:].isdigit():
            index = int(policy_id[6:])
            if index < len(self.statements):
                return self.statements[index].effect
        return None

    def slice(self, action: str, resource_type: str, resource_id: str) -> PolicyProgram:
        """The program of the policies that may apply to this action and resource (its own
        ``policyN`` numbering; :meth:`describe` names the original statements)."""
        if self.policy_set is None or len(self.scopes) != len(self.statements):
            return self
        key = (action, resource_type, resource_id)
        found = self._slices.get(key)
        if found is not None:
            return found
        keep = [i for i, scope in enumerate(self.scopes) if scope.may_match(action, *key[1:])]
        if len(keep) == len(self.statements):
            found = self
        elif not keep:
            found = PolicyProgram(None, (), ())
        else:
            kept = tuple(self.statements[i] for i in keep)
            found = PolicyProgram(
                cedarpy.PolicySet.from_str("\n".join(statement.text for statement in kept)),
                kept,
                tuple(self.origins[i] for i in keep),
                reads_context=_reads_context(kept),
            )
        if len(self._slices) >= MAX_SLICES:
            self._slices.clear()
        self._slices[key] = found
        return found


def compile_program(parts: Sequence[tuple[str, str]]) -> PolicyProgram:
    """``parts``: (origin, policy text) in order; texts were validated when they were saved."""
    found: list[Statement] = []
    origins: list[str] = []
    texts: list[str] = []
    for origin, text in parts:
        if not text.strip():
            continue
        own = statements(text)
        if not own:  # comments only
            continue
        found.extend(own)
        origins.extend([origin] * len(own))
        texts.append(text)
    if not texts:
        return PolicyProgram(None, (), ())
    whole = "\n".join(texts)
    policy_set = cedarpy.PolicySet.from_str(whole)
    # Slicing needs the scanner and Cedar to agree on every statement (they do whenever Cedar
    # accepts the text: validate() checks it); otherwise the program is used whole.
    found_scopes = scopes(whole) if len(policy_set) == len(found) else ()
    return PolicyProgram(
        policy_set, tuple(found), tuple(origins), found_scopes, reads_context=_reads_context(found)
    )


def _reads_context(found: Sequence[Statement]) -> bool:
    return any("context" in statement.text for statement in found)


@dataclass(frozen=True, slots=True)
class Answer:
    """Cedar's answer to one request: the decision, the ids of the policies that determined
    it (Cedar's ``reason``), and its evaluation errors as Cedar words them."""

    allowed: bool
    reasons: list[str]
    errors: list[str]


def authorize(
    request: dict[str, Any], policy_set: cedarpy.PolicySet, entities: cedarpy.Entities | str
) -> Answer:
    """``cedarpy.is_authorized`` for a request whose ``context`` is JSON text already.

    The public function wraps the same extension call with work a decision does not need:
    it parses Cedar's JSON answer with the standard library's json and wraps it in three
    objects (about a fifth of the call's instructions, and a tenth of a cached single
    decision's CPU before this). Here the answer is parsed with orjson into :class:`Answer`.
    ``_internal.is_authorized_batch`` is the entry point the public function calls (cedarpy
    4.12, pinned in uv.lock); tests/features/policy/test_cedar.py checks that both agree."""
    handle = entities._inner if isinstance(entities, cedarpy.Entities) else entities
    raw = _cedar_internal.is_authorized_batch([request], policy_set, handle, None, False)
    answer = orjson.loads(raw[0])
    diagnostics = answer.get("diagnostics") or {}
    return Answer(
        answer.get("decision") == "Allow",
        diagnostics.get("reason") or [],
        [str(e) for e in diagnostics.get("errors") or ()],
    )


def entity(
    kind: str, entity_id: str, attrs: dict[str, Any], parents: Sequence[tuple[str, str]]
) -> dict[str, Any]:
    """One entity in Cedar's JSON entity format."""
    return {
        "uid": {"type": kind, "id": entity_id},
        "attrs": attrs,
        "parents": [{"type": t, "id": i} for t, i in parents],
    }
