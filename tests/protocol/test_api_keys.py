"""protocol/api_keys.py: the key format (readable prefix, key id, 256-bit secret) and the
narrowing of a key's permissions by its owner's (``*`` as "everything")."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from ostiary.protocol.api_keys import (
    API_KEY_PREFIX,
    narrow,
    new_api_key,
    parse_api_key,
    permissions_within,
)
from ostiary.protocol.permissions import PERMISSIONS


def test_a_new_key_has_the_prefix_an_id_and_a_256_bit_secret() -> None:
    key_id, key = new_api_key()
    assert re.fullmatch(r"ost_sk_[0-9a-f]{24}_[A-Za-z0-9_-]{43}", key)
    assert key.startswith(API_KEY_PREFIX + key_id + "_")
    assert parse_api_key(key) == key_id
    same_id, rotated = new_api_key(key_id)
    assert same_id == key_id and rotated != key and parse_api_key(rotated) == key_id
    assert len({new_api_key()[1] for _ in range(200)}) == 200


def test_malformed_keys_have_no_id() -> None:
    _id, key = new_api_key()
    for bad in (
        "",
        key[:-1],
        key + "A",
        key.replace("ost_sk_", "ost_rt_"),
        key.upper(),
        key[:7] + "G" + key[8:],  # not hex in the id
        key[:31] + "-" + key[32:],  # no separator after the id
        key[:-1] + "=",
        key[:-1] + "\u00e9",
    ):
        assert parse_api_key(bad) is None, bad


@given(st.text(max_size=100))
def test_parse_never_raises(text: str) -> None:
    result = parse_api_key(text)
    assert result is None or (len(result) == 24 and text.startswith(API_KEY_PREFIX + result))


perm_sets = st.frozensets(st.sampled_from([*PERMISSIONS, "*"]), max_size=6)


@given(recorded=st.none() | perm_sets, held=perm_sets, probe=st.sampled_from(PERMISSIONS))
def test_narrowing_never_grants_what_either_side_lacks(
    recorded: frozenset[str] | None, held: frozenset[str], probe: str
) -> None:
    result = narrow(recorded, held)

    def grants(perms: frozenset[str] | None) -> bool:
        return perms is None or "*" in perms or probe in perms

    assert grants(result) == (grants(recorded) and grants(held))


def test_permissions_within_names_what_the_owner_lacks() -> None:
    assert permissions_within(["keys:read", "roles:manage"], frozenset({"keys:read"})) == [
        "roles:manage"
    ]
    assert permissions_within(["*"], frozenset({"keys:read"})) == ["*"]
    assert permissions_within(["*", "audit:read"], frozenset({"*"})) == []
