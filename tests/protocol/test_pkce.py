"""RFC 7636: PKCE, S256 only."""

import pytest

from ostiary.protocol.pkce import (
    PkceMode,
    is_valid_challenge,
    is_valid_verifier,
    omission_refused,
    s256_challenge,
    verify_s256,
)

# RFC 7636 appendix B.
RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_appendix_b_vector() -> None:
    assert s256_challenge(RFC_VERIFIER) == RFC_CHALLENGE
    assert verify_s256(RFC_VERIFIER, RFC_CHALLENGE)


def test_wrong_verifier_fails() -> None:
    assert not verify_s256(RFC_VERIFIER[:-1] + "Y", RFC_CHALLENGE)


@pytest.mark.parametrize(
    "verifier",
    ["a" * 42, "a" * 129, "a" * 42 + " ", "a" * 50 + "+", "a" * 50 + "/", "a" * 50 + "="],
)
def test_section_4_1_verifier_grammar(verifier: str) -> None:
    assert not is_valid_verifier(verifier)
    assert not verify_s256(verifier, s256_challenge("b" * 43))


@pytest.mark.parametrize("verifier", ["a" * 43, "A-._~" * 25 + "abc", "0" * 128])
def test_valid_verifiers(verifier: str) -> None:
    assert is_valid_verifier(verifier)
    assert verify_s256(verifier, s256_challenge(verifier))


def test_challenge_grammar() -> None:
    assert is_valid_challenge(RFC_CHALLENGE)
    assert not is_valid_challenge(RFC_CHALLENGE + "=")
    assert not is_valid_challenge(RFC_VERIFIER[:42])
    assert not is_valid_challenge("plain-value-that-is-not-43-chars")


@pytest.mark.parametrize(
    ("mode", "openid", "nonce", "allowed"),
    [
        ("required", True, True, False),
        ("required", False, False, False),
        ("nonce", True, True, True),
        ("nonce", True, False, False),
        ("nonce", False, True, False),
        ("nonce", False, False, False),
        ("optional", False, False, True),
        ("optional", True, True, True),
    ],
)
def test_omission_allowed_per_mode(
    mode: PkceMode, openid: bool, nonce: bool, allowed: bool
) -> None:
    # RFC 9700 section 2.1.1: a confidential OpenID client's nonce may stand in for PKCE.
    assert (omission_refused(mode, openid=openid, nonce=nonce) is None) is allowed
