"""Published JOSE test vectors against our signer (protocol/jose.py) and our resource-server
verifier (ostiary.verify).

- RFC 7638 section 3.1: the JWK thumbprint example, computed here by hand (the required members
  in lexicographic order, no whitespace, SHA-256, base64url), and our ``kid`` is that value.
- RFC 7515 appendix A.2: RSASSA-PKCS1-v1_5 SHA-256 is deterministic, so our RS256 signature of
  the appendix's signing input must be the appendix's bytes.
- RFC 8037 appendix A.4: Ed25519 is deterministic too (RFC 8032 section 5.1.6).
- RFC 7515 appendix A.3: ECDSA is not deterministic; the published ES256 signature must verify
  through ostiary.verify's key import, algorithm check and signature check, and a one-bit change
  must not.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ostiary.protocol.jose import (
    JwsSigner,
    PrivateKey,
    load_private_key,
    private_key_der,
    public_jwk,
)
from ostiary.verify import TokenVerifier
from ostiary.verify._jwks import key_fits_alg, parse_jwks


def b64d(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def b64e(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


def b64int(value: str) -> int:
    return int.from_bytes(b64d(value), "big")


def thumbprint_by_hand(jwk: dict[str, Any]) -> str:
    """RFC 7638 section 3: the required members only, sorted, no whitespace, SHA-256."""
    required = {
        "RSA": ("e", "kty", "n"),
        "EC": ("crv", "kty", "x", "y"),
        "OKP": ("crv", "kty", "x"),
    }
    members = required[jwk["kty"]]
    canonical = "{" + ",".join(f'"{m}":"{jwk[m]}"' for m in members) + "}"
    return b64e(hashlib.sha256(canonical.encode("utf-8")).digest())


# RFC 7515 appendix A.1-A.3: the JWS Payload (with its CR LF and spaces), base64url-encoded.
PAYLOAD_B64 = (
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
)

# RFC 7515 appendix A.2.1: the RSA key.
RFC7515_A2_KEY = {
    "kty": "RSA",
    "n": (
        "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddx"
        "HmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMs"
        "D1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSH"
        "SXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdV"
        "MTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8"
        "NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"
    ),
    "e": "AQAB",
    "d": (
        "Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97I"
        "jlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJe46sui395IW_GO-pWJ1O0"
        "BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn"
        "439X0M_V51gfpRLI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYT"
        "CBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLh"
        "BOneufuBiB4cS98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ"
    ),
    "p": (
        "4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdi"
        "YrqBdss1l58BQ3KhooKeQTa9AB0Hw_Py5PJdTJNPY8cQn7ouZ2KKDcmnPG"
        "BY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgtldC-KDV5z-y2XDwGUc"
    ),
    "q": (
        "uQPEfgmVtjL0Uyyx88GZFF1fOunH3-7cepKmtH4pxhtCoHqpWmT8YAmZxa"
        "ewHgHAjLYsp1ZSe7zFYHj7C6ul7TjeLQeZD_YwD66t62wDmpe_HlB-TnBA"
        "-njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6689rjcJIDEz9RWdc"
    ),
    "dp": (
        "BwKfV3Akq5_MFZDFZCnW-wzl-CCo83WoZvnLQwCTeDv8uzluRSnm71I3Q"
        "CLdhrqE2e9YkxvuxdBfpT_PI7Yz-FOKnu1R6HsJeDCjn12Sk3vmAktV2zb"
        "34MCdy7cpdTh_YVr7tss2u6vneTwrA86rZtu5Mbr1C1XsmvkxHQAdYo0"
    ),
    "dq": (
        "h_96-mK1R_7glhsum81dZxjTnYynPbZpHziZjeeHcXYsXaaMwkOlODsWa"
        "7I9xXDoRwbKgB719rrmI2oKr6N3Do9U0ajaHF-NKJnwgjMd2w9cjz3_-ky"
        "NlxAr2v4IKhGNpmM5iIgOS1VZnOZ68m6_pbLBSp3nssTdlqvd0tIiTHU"
    ),
    "qi": (
        "IYd7DHOhrWvxkwPQsRM2tOgrjbcrfvtQJipd-DlcxyVuuM9sQLdgjVk2o"
        "y26F0EmpScGLq2MowX7fhd_QJQ3ydy5cY7YIBi87w93IKLEdfnbJtoOPLU"
        "W0ITrJReOgo1cq9SbsxYawBgfp_gh6A5603k2-ZQwVK0JKSHuLFkuQ3U"
    ),
}
# RFC 7515 appendix A.2.1: the complete JWS.
RFC7515_A2_JWS = (
    "eyJhbGciOiJSUzI1NiJ9."
    + PAYLOAD_B64
    + ".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7"
    "AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4"
    "BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K"
    "0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqv"
    "hJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrB"
    "p0igcN_IoypGlUPQGe77Rw"
)

# RFC 7515 appendix A.3.1: the EC P-256 key and the complete JWS.
RFC7515_A3_KEY = {
    "kty": "EC",
    "crv": "P-256",
    "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
    "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
    "d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI",
}
RFC7515_A3_JWS = (
    "eyJhbGciOiJFUzI1NiJ9."
    + PAYLOAD_B64
    + ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
)

# RFC 8037 appendix A.1 (private key), A.3 (thumbprint), A.4 (signature).
RFC8037_KEY = {
    "kty": "OKP",
    "crv": "Ed25519",
    "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
}
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
RFC8037_A4_JWS = (
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
    ".hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)


def rsa_key(jwk: dict[str, str]) -> rsa.RSAPrivateKey:
    public = rsa.RSAPublicNumbers(b64int(jwk["e"]), b64int(jwk["n"]))
    return rsa.RSAPrivateNumbers(
        p=b64int(jwk["p"]),
        q=b64int(jwk["q"]),
        d=b64int(jwk["d"]),
        dmp1=b64int(jwk["dp"]),
        dmq1=b64int(jwk["dq"]),
        iqmp=b64int(jwk["qi"]),
        public_numbers=public,
    ).private_key()


def ec_key(jwk: dict[str, str]) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(b64int(jwk["d"]), ec.SECP256R1())


def ed_key(jwk: dict[str, str]) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(b64d(jwk["d"]))


def stored(key: PrivateKey) -> PrivateKey:
    """The key as the key ring stores and loads it (PKCS#8 DER, sealed at rest)."""
    return load_private_key(private_key_der(key))


def test_rfc7638_section_3_1_thumbprint_by_hand() -> None:
    jwk = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJ"
            "ECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FD"
            "W2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4"
            "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        ),
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert thumbprint_by_hand(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    # RFC 8037 appendix A.3, the OKP case of the same computation.
    assert thumbprint_by_hand(RFC8037_KEY) == RFC8037_THUMBPRINT


@pytest.mark.parametrize(
    ("alg", "key"),
    [
        ("RS256", rsa_key(RFC7515_A2_KEY)),
        ("ES256", ec_key(RFC7515_A3_KEY)),
        ("EdDSA", ed_key(RFC8037_KEY)),
    ],
)
def test_our_kid_is_the_rfc7638_thumbprint_of_the_public_jwk(alg: str, key: PrivateKey) -> None:
    jwk = public_jwk(key, alg)  # type: ignore[arg-type]
    assert jwk["kid"] == thumbprint_by_hand(jwk)
    source = {"RS256": RFC7515_A2_KEY, "ES256": RFC7515_A3_KEY, "EdDSA": RFC8037_KEY}[alg]
    for member in ("n", "e", "x", "y", "crv"):
        if member in source:
            assert jwk[member] == source[member], member
    if alg == "EdDSA":
        assert jwk["kid"] == RFC8037_THUMBPRINT


def _signing_input(jws: str) -> bytes:
    return jws.rsplit(".", 1)[0].encode("ascii")


def test_rfc7515_appendix_a2_rs256_signature_bytes() -> None:
    signer = JwsSigner("a2", "RS256", stored(rsa_key(RFC7515_A2_KEY)))
    signature = signer._signature(_signing_input(RFC7515_A2_JWS))
    assert _signing_input(RFC7515_A2_JWS).decode() + "." + b64e(signature) == RFC7515_A2_JWS


def test_rfc8037_appendix_a4_ed25519_signature_bytes() -> None:
    key = stored(ed_key(RFC8037_KEY))
    signature = JwsSigner("a4", "EdDSA", key)._signature(_signing_input(RFC8037_A4_JWS))
    assert _signing_input(RFC8037_A4_JWS).decode() + "." + b64e(signature) == RFC8037_A4_JWS


def _verify_with_ostiary_verify(jws: str, jwk: dict[str, str]) -> bool:
    """ostiary.verify's steps 1, 2 and 4 (see _verifier.py): parse, algorithm allowlist, key
    import from a JWK Set, key-algorithm fit, signature. (The appendix's JWS has no ``kid``
    or claims, so the whole ``verify`` would stop before the signature.)"""
    from joserfc import jws as joserfc_jws

    verifier = TokenVerifier("https://issuer.example", audience="https://api.example")
    obj = verifier._parse(jws)
    alg = obj.protected["alg"]
    assert alg in verifier.algorithms
    public = {k: v for k, v in jwk.items() if k != "d"}
    keys = parse_jwks({"keys": [{**public, "kid": "a3"}]})
    (key,) = keys["a3"]
    assert key_fits_alg(key, alg)
    return bool(joserfc_jws.validate_compact(obj, key, registry=verifier._registry))


def test_rfc7515_appendix_a3_es256_verifies_through_ostiary_verify() -> None:
    assert _verify_with_ostiary_verify(RFC7515_A3_JWS, RFC7515_A3_KEY)
    signing_input, signature = RFC7515_A3_JWS.rsplit(".", 1)
    raw = bytearray(b64d(signature))
    raw[40] ^= 1  # S, not R: both halves matter
    assert not _verify_with_ostiary_verify(signing_input + "." + b64e(bytes(raw)), RFC7515_A3_KEY)
    assert json.loads(b64d(PAYLOAD_B64))["iss"] == "joe"
