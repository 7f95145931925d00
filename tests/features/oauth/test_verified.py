"""The memo of verified tokens: only for the key set that verified them, bounded, oldest out."""

from __future__ import annotations

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from ostiary.features.oauth.verified import VerifiedTokens


def _signed(n: int, key: ECKey) -> tuple[str, jwt.Token]:
    value = jwt.encode({"alg": "ES256"}, {"n": n}, key)
    return value, jwt.decode(value, key)


def test_a_token_is_known_only_for_the_key_set_that_verified_it() -> None:
    key = ECKey.generate_key("P-256")
    keys, same_kids_new_object = KeySet([key]), KeySet([key])
    memo = VerifiedTokens()
    value, decoded = _signed(1, key)
    assert memo.get(value, keys) is None
    memo.put(value, keys, decoded)
    assert memo.get(value, keys) is decoded
    # A new key set (a key was added or withdrawn) verifies afresh.
    assert memo.get(value, same_kids_new_object) is None
    assert memo.get(value + "x", keys) is None


def test_the_oldest_entry_goes_first_when_full() -> None:
    key = ECKey.generate_key("P-256")
    keys = KeySet([key])
    memo = VerifiedTokens(limit=3)
    tokens = [_signed(n, key) for n in range(5)]
    for value, decoded in tokens[:3]:
        memo.put(value, keys, decoded)
    memo.put(*tokens[0][:1], keys, tokens[0][1])  # used again: the newest now
    memo.put(tokens[3][0], keys, tokens[3][1])
    assert len(memo) == 3
    assert memo.get(tokens[1][0], keys) is None  # the oldest went out
    assert all(memo.get(v, keys) is d for v, d in (tokens[0], tokens[2], tokens[3]))
