"""ostiary.protocol.jose: our fast signer, checked by an independent verifier (joserfc)."""

import base64
import json

import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import import_key

from ostiary.protocol.jose import (
    SUPPORTED_ALGS,
    JwsSigner,
    generate_private_key,
    load_private_key,
    private_key_der,
    public_jwk,
)


def _segments(token: str) -> list[bytes]:
    return [base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)) for s in token.split(".")]


@pytest.mark.parametrize("alg", SUPPORTED_ALGS)
def test_tokens_verify_with_joserfc_against_the_public_jwk(alg: str) -> None:
    key = generate_private_key(alg)  # type: ignore[arg-type]
    jwk = public_jwk(key, alg)  # type: ignore[arg-type]
    signer = JwsSigner(jwk["kid"], alg, key, typ="at+jwt")  # type: ignore[arg-type]
    token = signer.sign({"sub": "u1", "n": 1})
    decoded = jwt.decode(token, import_key(jwk), algorithms=[alg])
    assert decoded.claims == {"sub": "u1", "n": 1}
    assert decoded.header == {"alg": alg, "kid": jwk["kid"], "typ": "at+jwt"}


def test_es256_signature_is_raw_r_s_of_64_bytes() -> None:
    # RFC 7518 section 3.4: the JWS signature is R || S, 32 bytes each, not DER.
    key = generate_private_key("ES256")
    token = JwsSigner("k", "ES256", key).sign({"a": 1})
    assert len(_segments(token)[2]) == 64


def test_tampered_payload_fails_verification() -> None:
    key = generate_private_key("ES256")
    jwk = public_jwk(key, "ES256")
    token = JwsSigner(jwk["kid"], "ES256", key).sign({"sub": "alice"})
    header, _payload, sig = token.split(".")
    forged = base64.urlsafe_b64encode(json.dumps({"sub": "mallory"}).encode()).rstrip(b"=")
    with pytest.raises(BadSignatureError):
        jwt.decode(f"{header}.{forged.decode()}.{sig}", import_key(jwk), algorithms=["ES256"])


@pytest.mark.parametrize("alg", SUPPORTED_ALGS)
def test_public_jwk_has_no_private_members_and_a_thumbprint_kid(alg: str) -> None:
    key = generate_private_key(alg)  # type: ignore[arg-type]
    jwk = public_jwk(key, alg)  # type: ignore[arg-type]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)
    assert jwk["use"] == "sig"
    assert jwk["alg"] == alg
    assert jwk["kid"] == import_key(jwk).thumbprint()  # RFC 7638


def test_der_round_trip() -> None:
    key = generate_private_key("ES256")
    again = load_private_key(private_key_der(key))
    assert private_key_der(again) == private_key_der(key)


def test_unknown_algorithm_refused() -> None:
    with pytest.raises(ValueError):
        generate_private_key("HS256")  # type: ignore[arg-type]
