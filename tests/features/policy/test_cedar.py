"""features/policy/cedar.py: where each policy starts (so refusals name the line), the schema
extension replacing same-named base declarations, and compiled programs describing policies."""

from __future__ import annotations

import pytest

from ostiary.features.policy.cedar import (
    BASE_SCHEMA,
    PolicyInvalid,
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
