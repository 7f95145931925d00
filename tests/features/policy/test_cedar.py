"""features/policy/cedar.py: where each policy starts (so refusals name the line), the schema
extension replacing same-named base declarations, and compiled programs describing policies."""

from __future__ import annotations

import json

import cedarpy
import pytest

from ostiary.features.policy.cedar import (
    BASE_SCHEMA,
    PolicyInvalid,
    authorize,
    compile_program,
    schema_text,
    statements,
    validate,
)

TEXT = """// a comment; with a semicolon
@id("first")
permit(principal, action, resource)
when { context has note && context.note == "a;b // not a comment" };

forbid(principal, action, resource == model::"x"); // trailing; comment
@id("esc\\"aped") permit(principal, action, resource) when { [1, 2] == [1, 2] };
"""


def test_statements_follow_cedars_numbering() -> None:
    found = statements(TEXT)
    assert [(s.line, s.effect, s.label) for s in found] == [
        (2, "permit", "first"),
        (6, "forbid", None),
        (7, "permit", 'esc\\"aped'),
    ]
    program = compile_program([("organization v1", TEXT)])
    assert program.policy_set is not None and len(program.policy_set) == 3
    assert program.describe("policy1") == "forbid (organization v1, line 6)"
    assert program.effect("policy0") == "permit" and program.effect("policy9") is None


def test_programs_number_across_parts() -> None:
    program = compile_program(
        [("deployment v2", "forbid(principal, action, resource);"), ("organization v5", TEXT)]
    )
    assert program.describe("policy0") == "forbid (deployment v2, line 1)"
    assert program.describe("policy1") == 'permit "first" (organization v5, line 2)'
    assert compile_program([("x", ""), ("y", "  // only a comment\n")]).policy_set is None


def test_extension_replaces_same_named_declarations() -> None:
    text = schema_text("entity model { tier: String, private: Bool };\ntype Context = {};")
    assert "entity model { tier: String, private: Bool };" in text
    assert "tier?: String" not in text and "acr?: String" not in text
    assert "entity User" in text
    assert schema_text() == BASE_SCHEMA + "\n"
    validate(
        "permit(principal, action, resource is model) when { resource.private };",
        "entity model { private: Bool };",
    )


@pytest.mark.parametrize(
    ("policies", "extension", "line", "fragment"),
    [
        ("permit(principal, action, resource);\n\nforbid(\n  principal,\n", "", 3, "parse"),
        ("permit(principal, action, resource)\n  when { 1 + };", "", 2, "parse"),
        ('\n\npermit(principal, action == Action::"nope", resource);', "", 3, "nope"),
        ("permit(principal, action, resource);", "entity A {\n x: Strng };", 2, "Strng"),
        (
            "permit(principal, action, resource);\npermit(principal == ?principal, action, resource);",
            "",
            2,
            "templates",
        ),
    ],
)
def test_refusals_name_the_line(policies: str, extension: str, line: int, fragment: str) -> None:
    with pytest.raises(PolicyInvalid) as refused:
        validate(policies, extension)
    assert refused.value.line == line
    assert fragment in str(refused.value)


SLICED = """permit(principal, action == Action::"models:invoke", resource == model::"m1");
forbid(principal, action, resource == model::"m2");
@id("tier") forbid(principal, action, resource is model) when { resource.tier == "x" };
permit(principal, action in [Action::"models:read"], resource);
permit(principal in Role::"r1", action, resource in Role::"r2");
permit(principal, action == Action::"todo:read", resource is Todo) when { resource.owner == 1 };
forbid(principal, action == Action::"models:invoke", resource)
  unless { context has ip };
"""


def test_a_slice_keeps_the_policies_whose_scope_may_match() -> None:
    program = compile_program([("organization v1", SLICED)])
    assert len(program.scopes) == 7
    sliced = program.slice("models:invoke", "model", "m1")
    # == on the action and the resource narrow; `in` and `is` of the type asked are kept.
    assert [s.line for s in sliced.statements] == [1, 3, 4, 5, 7]
    assert sliced.describe("policy1") == 'forbid "tier" (organization v1, line 3)'
    assert program.slice("models:invoke", "model", "m1") is sliced  # compiled once
    other = program.slice("todo:read", "Todo", "t1")
    assert [s.line for s in other.statements] == [4, 5, 6]
    assert program.slice("models:read", "model", "m2").statements[0].line == 2


def test_a_slice_decides_as_the_whole_program() -> None:
    """Every action and resource asked of both: the same decision, reasons and errors."""
    program = compile_program([("organization v1", SLICED)])
    entities = [
        {
            "uid": {"type": "User", "id": "u"},
            "attrs": {},
            "parents": [{"type": "Role", "id": "r1"}],
        },
        {
            "uid": {"type": "Role", "id": "r1"},
            "attrs": {},
            "parents": [{"type": "Role", "id": "r2"}],
        },
        {"uid": {"type": "Role", "id": "r2"}, "attrs": {}, "parents": []},
        {"uid": {"type": "model", "id": "m1"}, "attrs": {"tier": "x"}, "parents": []},
        {"uid": {"type": "model", "id": "m2"}, "attrs": {}, "parents": []},
        {"uid": {"type": "Todo", "id": "t1"}, "attrs": {"owner": 1}, "parents": []},
    ]
    compared = 0
    for action in ("models:invoke", "models:read", "todo:read", "other"):
        for resource in (("model", "m1"), ("model", "m2"), ("Todo", "t1"), ("Role", "r1")):
            for context in ({}, {"ip": "10.0.0.1"}):
                request = {
                    "principal": {"type": "User", "id": "u"},
                    "action": {"type": "Action", "id": action},
                    "resource": {"type": resource[0], "id": resource[1]},
                    "context": context,
                }
                sliced = program.slice(action, *resource)
                assert program.policy_set is not None
                whole = cedarpy.is_authorized(request, program.policy_set, entities)
                if sliced.policy_set is None:
                    assert not whole.allowed and not whole.diagnostics.reasons
                    assert not whole.diagnostics.errors
                    continue
                part = cedarpy.is_authorized(request, sliced.policy_set, entities)
                assert part.allowed == whole.allowed
                assert sorted(sliced.describe(p) for p in part.diagnostics.reasons) == sorted(
                    program.describe(p) for p in whole.diagnostics.reasons
                )
                assert len(part.diagnostics.errors) == len(whole.diagnostics.errors)
                compared += 1
    assert compared > 20


ERRING = """permit(principal, action, resource) when { context.n > 1 };
@id("tier") forbid(principal, action, resource) when { resource.tier == "x" };"""


@pytest.mark.parametrize(
    ("attrs", "context", "allowed"),
    [
        ({"tier": "x"}, '{"n": 2}', False),  # forbidden
        ({}, '{"n": 2}', True),  # permitted; the forbid errors (no tier)
        ({}, '{"n": 0}', False),  # nothing permits; the forbid errors
    ],
)
def test_authorize_answers_as_cedarpy_is_authorized(
    attrs: dict[str, str], context: str, allowed: bool
) -> None:
    """cedar.authorize calls the extension cedarpy.is_authorized wraps, and parses its answer
    itself: the same decision, reasons and errors."""
    policies = cedarpy.PolicySet.from_str(ERRING)
    uid = {"type": "model", "id": "m"}
    entities = cedarpy.Entities.from_json_str(
        json.dumps([{"uid": uid, "attrs": attrs, "parents": []}])
    )
    request = {
        "principal": {"type": "User", "id": "u"},
        "action": {"type": "Action", "id": "models:invoke"},
        "resource": uid,
        "context": context,
    }
    theirs = cedarpy.is_authorized(request, policies, entities)
    ours = authorize(request, policies, entities)
    assert ours.allowed == theirs.allowed == allowed
    assert ours.reasons == theirs.diagnostics.reasons
    assert ours.errors == [str(e) for e in theirs.diagnostics.errors]
    assert bool(ours.errors) == ("tier" not in attrs)
