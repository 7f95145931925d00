"""features/oauth/access_tokens.py: what makes one of our JWTs an active access token (RFC 7662
section 2.2, RFC 9068 section 4). Tokens are signed here with joserfc directly, not with our
minter, so each claim can be set wrong on its own."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from ostiary.features.clock import FrozenClock
from ostiary.features.oauth.access_tokens import AccessTokens

ISSUER = "https://id.example"
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
T = int(NOW.timestamp())
OURS = ECKey.generate_key("P-256", parameters={"kid": "k1"})
THEIRS = ECKey.generate_key("P-256", parameters={"kid": "k1"})


class _Keys:
    def __init__(self) -> None:
        self.set: KeySet | None = KeySet([OURS])

    async def verification_keys(self) -> KeySet | None:
        return self.set


class _Revoked:
    def __init__(self) -> None:
        self.jtis: set[str] = set()

    def is_revoked(self, claims: Mapping[str, Any]) -> bool:
        return claims.get("jti") in self.jtis


def _token(key: ECKey = OURS, typ: str = "at+jwt", **claims: Any) -> str:
    body = {"iss": ISSUER, "sub": "u1", "jti": "j1", "iat": T - 10, "exp": T + 300, **claims}
    return jwt.encode({"alg": "ES256", "typ": typ, "kid": "k1"}, body, key)


def _validate(token: str, keys: _Keys | None = None, revoked: _Revoked | None = None) -> Any:
    tokens = AccessTokens(
        keys or _Keys(),  # type: ignore[arg-type]
        revoked or _Revoked(),
        FrozenClock(NOW),
        ISSUER,
    )
    return asyncio.run(tokens.validate(token))


def test_an_active_access_token_gives_its_claims() -> None:
    claims = _validate(_token())
    assert claims is not None and claims["sub"] == "u1" and claims["iss"] == ISSUER


@pytest.mark.parametrize(
    ("token", "why"),
    [
        (_token(key=THEIRS), "signed by a key that is not ours"),
        (_token(typ="JWT"), "an ID token or another JWT, not at+jwt"),
        (_token(iss="https://other.example"), "another issuer"),
        (_token(exp=T), "expired (exp is not after now)"),
        (_token(iat=T + 61), "issued more than 60 s in the future"),
        (_token(exp="soon"), "exp not a number"),
        (_token(iat=None), "no iat"),
        ("a.b", "not a JWT"),
        ("x" * 9000 + ".a.b", "too long"),
    ],
)
def test_what_is_not_active(token: str, why: str) -> None:
    assert _validate(token) is None, why


def test_a_revoked_token_and_missing_keys_are_not_active() -> None:
    revoked = _Revoked()
    revoked.jtis.add("j1")
    assert _validate(_token(), revoked=revoked) is None
    assert _validate(_token(jti="j2"), revoked=revoked) is not None
    keys = _Keys()
    keys.set = None  # no signing key yet
    assert _validate(_token(), keys=keys) is None


def test_decode_own_checks_only_the_signature() -> None:
    tokens = AccessTokens(_Keys(), _Revoked(), FrozenClock(NOW), ISSUER)  # type: ignore[arg-type]
    decoded = asyncio.run(tokens.decode_own(_token(typ="JWT", exp=T - 1000)))
    assert decoded is not None and decoded.claims["exp"] == T - 1000
    assert asyncio.run(tokens.decode_own(_token(key=THEIRS))) is None
