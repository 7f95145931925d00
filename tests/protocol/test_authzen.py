"""protocol/authzen.py: the request shapes of OpenID AuthZEN Authorization API 1.0 sections 6.1
and 7.1, and what reaches Cedar (no ``__entity`` forgeries, no floats, no nulls); anything else
is an AuthzenError naming the JSON pointer, never another exception."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ostiary.protocol.authzen import (
    MAX_EVALUATIONS,
    AuthzenError,
    is_cedar_name,
    parse_evaluation,
    parse_evaluations,
)

BASE: dict[str, Any] = {
    "subject": {"type": "user", "id": "alice@example.com"},
    "action": {"name": "can_read"},
    "resource": {"type": "todo", "id": "1", "properties": {"ownerID": "alice@example.com"}},
}


def test_section_6_1_request() -> None:
    parsed = parse_evaluation({**BASE, "context": {"time": 5, "tags": ["a", None], "x": None}})
    assert parsed.subject.type == "user" and parsed.resource.properties == {
        "ownerID": "alice@example.com"
    }
    assert parsed.context == {"time": 5, "tags": ["a"]}  # nulls dropped


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (None, ""),
        ({**BASE, "subject": None}, "/subject"),
        ({**BASE, "subject": {"type": "user"}}, "/subject/id"),
        ({**BASE, "subject": {"type": "user", "id": ""}}, "/subject/id"),
        ({**BASE, "subject": {"type": "user", "id": 7}}, "/subject/id"),
        ({**BASE, "subject": {"type": "user", "id": "a\nb"}}, "/subject/id"),
        ({**BASE, "resource": {"type": "if", "id": "1"}}, "/resource/type"),
        ({**BASE, "resource": {"type": "a-b", "id": "1"}}, "/resource/type"),
        ({**BASE, "action": {"name": "x", "properties": []}}, "/action/properties"),
        ({**BASE, "context": {"f": 1.5}}, "/context/f"),
        ({**BASE, "context": {"n": 2**64}}, "/context/n"),
        (
            {**BASE, "context": {"o": {"__entity": {"type": "Role", "id": "admin"}}}},
            "/context/o/__entity",
        ),
        ({**BASE, "context": {"a/b": {"__extn": 1}}}, "/context/a~1b/__extn"),
    ],
)
def test_refusals_name_the_member(body: Any, pointer: str) -> None:
    with pytest.raises(AuthzenError) as refused:
        parse_evaluation(body)
    assert refused.value.pointer == pointer


def test_deep_nesting_is_refused() -> None:
    deep: Any = "x"
    for _ in range(20):
        deep = {"k": deep}
    with pytest.raises(AuthzenError, match="nested deeper"):
        parse_evaluation({**BASE, "context": deep})


def test_section_7_1_defaults_and_overrides() -> None:
    batch = parse_evaluations(
        {
            "subject": BASE["subject"],
            "action": BASE["action"],
            "options": {"evaluations_semantic": "deny_on_first_deny"},
            "evaluations": [
                {"resource": {"type": "todo", "id": "1"}},
                {"resource": {"type": "todo", "id": "2"}, "action": {"name": "can_write"}},
            ],
        }
    )
    assert batch.semantic == "deny_on_first_deny" and not batch.single
    assert [e.action.name for e in batch.evaluations] == ["can_read", "can_write"]
    assert {e.subject.id for e in batch.evaluations} == {"alice@example.com"}
    one = parse_evaluations({**BASE, "evaluations": []})
    assert one.single and one.semantic == "execute_all"


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({**BASE, "evaluations": {}}, "/evaluations"),
        ({**BASE, "evaluations": [1]}, "/evaluations/0"),
        ({"evaluations": [{"subject": BASE["subject"]}]}, "/action"),
        ({**BASE, "evaluations": [{"resource": {"id": "1"}}]}, "/evaluations/0/resource/type"),
        ({**BASE, "options": {"evaluations_semantic": "maybe"}}, "/options/evaluations_semantic"),
        ({**BASE, "options": 3}, "/options"),
        ({**BASE, "evaluations": [{}] * (MAX_EVALUATIONS + 1)}, "/evaluations"),
    ],
)
def test_batch_refusals(body: Any, pointer: str) -> None:
    with pytest.raises(AuthzenError) as refused:
        parse_evaluations(body)
    assert refused.value.pointer == pointer


def test_cedar_names() -> None:
    assert is_cedar_name("todo") and is_cedar_name("Acme::Doc") and is_cedar_name("_x1")
    for bad in ("", "1a", "a-b", "a::", "::a", "in", "Acme::if", "a b", "x" * 101):
        assert not is_cedar_name(bad), bad


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(body=_JSON)
def test_any_json_parses_or_is_refused_cleanly(body: Any) -> None:
    for parse in (parse_evaluation, parse_evaluations):
        with contextlib.suppress(AuthzenError):
            parse(body)


@settings(max_examples=300, deadline=None)
@given(
    subject=st.dictionaries(st.sampled_from(["type", "id", "properties"]), _JSON),
    resource=st.dictionaries(st.sampled_from(["type", "id", "properties"]), _JSON),
    context=_JSON,
    evaluations=st.lists(
        st.dictionaries(st.sampled_from(["subject", "resource", "action"]), _JSON), max_size=3
    ),
)
def test_near_valid_requests_parse_or_are_refused_cleanly(
    subject: Any, resource: Any, context: Any, evaluations: Any
) -> None:
    body = {
        "subject": subject,
        "action": {"name": "x"},
        "resource": resource,
        "context": context,
        "evaluations": evaluations,
    }
    try:
        batch = parse_evaluations(body)
    except AuthzenError:
        return
    for evaluation in batch.evaluations:
        assert is_cedar_name(evaluation.subject.type) and is_cedar_name(evaluation.resource.type)
        assert "__" not in str([k for k in evaluation.context if k.startswith("__")])


@settings(max_examples=500, deadline=None)
@given(value=st.text(max_size=40) | st.text(st.characters(max_codepoint=0x9F), max_size=10))
def test_an_id_is_taken_exactly_when_it_has_no_control_character(value: str) -> None:
    # The rule stated plainly (C0 controls and DEL refused; anything else kept as sent), against
    # the parser's faster check.
    acceptable = bool(value) and not any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value)
    body = {**BASE, "subject": {"type": "user", "id": value}}
    if acceptable:
        assert parse_evaluation(body).subject.id == value
    else:
        with pytest.raises(AuthzenError) as refused:
            parse_evaluation(body)
        assert refused.value.pointer == "/subject/id"
