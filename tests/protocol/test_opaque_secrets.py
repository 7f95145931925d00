"""protocol/opaque_secrets.py: ``secret_digest`` is HMAC-SHA256 (RFC 2104) from a keyed HMAC
copied per secret, the same value as ``hmac.digest`` for every key length and secret."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from ostiary.protocol import opaque_secrets
from ostiary.protocol.opaque_secrets import digest_matches, secret_digest


def test_rfc_4231_test_case_6_key_longer_than_the_block() -> None:
    # RFC 4231 section 4.7: a 131-byte key is hashed first (RFC 2104 section 2).
    key = b"\xaa" * 131
    data = "Test Using Larger Than Block-Size Key - Hash Key First"
    assert secret_digest(key, data) == (
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    )


@given(
    pepper=st.one_of(
        st.binary(min_size=0, max_size=200),
        st.sampled_from([b"k" * 63, b"k" * 64, b"k" * 65]),
    ),
    secret=st.text(max_size=300),
)
def test_the_same_as_hmac_digest(pepper: bytes, secret: str) -> None:
    expected = hmac.digest(pepper, secret.encode("utf-8"), hashlib.sha256).hex()
    assert secret_digest(pepper, secret) == expected
    assert secret_digest(pepper, secret) == expected  # from the remembered key states


def test_each_call_starts_from_the_key_states_not_from_the_last_secret() -> None:
    pepper = b"p" * 32
    first = secret_digest(pepper, "a")
    secret_digest(pepper, "b")
    assert secret_digest(pepper, "a") == first
    assert digest_matches(pepper, "a", first)
    assert not digest_matches(pepper, "b", first)


def test_remembered_peppers_are_bounded() -> None:
    for n in range(opaque_secrets._MAX_PEPPERS * 3):
        pepper = n.to_bytes(4, "big")
        assert secret_digest(pepper, "s") == hmac.new(pepper, b"s", hashlib.sha256).hexdigest()
    assert len(opaque_secrets._states) <= opaque_secrets._MAX_PEPPERS
