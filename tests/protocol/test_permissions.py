"""protocol/permissions.py: permission names, slugs, role-graph cycles and expansion."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ostiary.protocol.permissions import (
    ALL,
    PERMISSIONS,
    InvalidPermission,
    allows,
    derive_slug,
    expand,
    find_cycle,
    is_slug,
    validate_permissions,
)


def test_catalog_entries_and_the_wildcard_are_valid() -> None:
    assert validate_permissions([*PERMISSIONS, ALL]) == frozenset([*PERMISSIONS, ALL])


def test_an_unknown_permission_is_refused_with_close_matches() -> None:
    with pytest.raises(InvalidPermission) as refused:
        validate_permissions(["models:read", "models:invok"])
    message = str(refused.value)
    assert "unknown permission 'models:invok'" in message
    assert "did you mean models:invoke" in message


@pytest.mark.parametrize("name", ["Models:Invoke", "models", "models:", ":x", "a:b:c", "a b:c"])
def test_a_malformed_permission_is_refused_naming_the_shape(name: str) -> None:
    with pytest.raises(InvalidPermission, match="malformed permission"):
        validate_permissions([name])


def test_allows_honours_the_wildcard() -> None:
    assert allows(frozenset({ALL}), "org:manage")
    assert allows(frozenset({"keys:read"}), "keys:read")
    assert not allows(frozenset({"keys:read"}), "keys:revoke")


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Acme Inc", "acme-inc"),
        ("  Zürich  Labs!! ", "zurich-labs"),
        ("A", "org"),
        ("---", "org"),
        ("x" * 80, "x" * 63),
    ],
)
def test_derive_slug(name: str, slug: str) -> None:
    assert derive_slug(name) == slug
    assert is_slug(derive_slug(name))


@pytest.mark.parametrize("bad", ["a", "-ab", "ab-", "AB", "a_b", "a" * 64, "ab c"])
def test_is_slug_refuses(bad: str) -> None:
    assert not is_slug(bad)


@given(st.text(max_size=100))
def test_derived_slugs_are_always_valid(name: str) -> None:
    assert is_slug(derive_slug(name))


def test_find_cycle_names_the_cycle() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": []}) is None
    assert find_cycle({"a": ["b"], "b": ["a"]}) == ["a", "b", "a"]
    assert find_cycle({"a": ["a"]}) == ["a", "a"]
    cycle = find_cycle({"x": ["a"], "a": ["b"], "b": ["c"], "c": ["a"]})
    assert cycle == ["a", "b", "c", "a"]


def test_find_cycle_handles_deep_chains_without_recursion() -> None:
    chain = {f"r{i}": [f"r{i + 1}"] for i in range(5_000)}
    assert find_cycle(chain) is None
    chain["r5000"] = ["r0"]
    cycle = find_cycle(chain)
    assert cycle is not None and cycle[0] == cycle[-1] and len(cycle) == 5_002


def test_expand_is_transitive_and_ignores_unknown_roles() -> None:
    own = {"a": frozenset({"p1"}), "b": frozenset({"p2"}), "c": frozenset({"p3"})}
    includes = {"a": ["b"], "b": ["c"]}
    assert expand(["a"], own, includes) == {"p1", "p2", "p3"}
    assert expand(["b", "ghost"], own, includes) == {"p2", "p3"}
    assert expand([], own, includes) == frozenset()
