"""Compact JWS signing for the token hot path, and JWK handling.

- RFC 7515 section 3.1 / 7.1 (JWS Compact Serialization): ``b64url(header).b64url(payload)
  .b64url(signature)``; the protected header is serialized once per key, not per token.
- RFC 7518 section 3.4: ES256 signatures are the fixed-width ``R || S`` concatenation, not
  DER, so the DER output of ``cryptography`` is converted. Section 3.3: RS256 is RSASSA-
  PKCS1-v1_5 with SHA-256.
- RFC 8037 section 3.1: EdDSA with Ed25519.
- RFC 7517 / RFC 7638: public JWKs and thumbprint key ids, produced by joserfc.

Signing uses ``cryptography`` directly because joserfc re-serializes the header and
re-resolves the algorithm per call; verification of anything foreign goes through joserfc.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc.jwk import ECKey, OKPKey, RSAKey

__all__ = [
    "SUPPORTED_ALGS",
    "Alg",
    "JwsSigner",
    "generate_private_key",
    "load_private_key",
    "private_key_der",
    "public_jwk",
]

Alg = Literal["ES256", "RS256", "EdDSA"]
SUPPORTED_ALGS: tuple[Alg, ...] = ("ES256", "RS256", "EdDSA")
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def generate_private_key(alg: Alg) -> PrivateKey:
    """A new private key for ``alg`` (P-256, RSA-2048, or Ed25519).

    RSA-2048: the size RFC 7518 section 3.3 requires at least, and what the large providers
    publish. RS256 signs every ID token by default (issue 10), and an RSA-3072 signature cost
    about 2.2 ms of CPU against 0.7 ms at 2048 bits (bench/RESULTS.md): at 3072 bits a refresh
    grant could no longer meet its 1,000/s target on one core. Keys made earlier keep working.
    """
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported algorithm {alg!r}")


def private_key_der(key: PrivateKey) -> bytes:
    """PKCS#8 DER of ``key`` (what gets sealed and stored)."""
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(der: bytes) -> PrivateKey:
    """Inverse of :func:`private_key_der`."""
    key = serialization.load_der_private_key(der, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        return key
    raise ValueError("unsupported private key type")


def public_jwk(key: PrivateKey, alg: Alg) -> dict[str, Any]:
    """The public JWK (RFC 7517) with ``kid`` = RFC 7638 thumbprint, ``use`` and ``alg``."""
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwk: ECKey | RSAKey | OKPKey
    if alg == "ES256":
        jwk = ECKey.import_key(pem)
    elif alg == "RS256":
        jwk = RSAKey.import_key(pem)
    else:
        jwk = OKPKey.import_key(pem)
    data: dict[str, Any] = dict(jwk.as_dict(private=False))
    data["kid"] = jwk.thumbprint()
    data["use"] = "sig"
    data["alg"] = alg
    return data


class JwsSigner:
    """Signs compact JWS with one key; the encoded protected header is computed once."""

    __slots__ = ("_header", "alg", "key", "kid")

    def __init__(self, kid: str, alg: Alg, key: PrivateKey, typ: str = "JWT") -> None:
        self.kid = kid
        self.alg = alg
        self.key = key
        self._header = _b64(orjson.dumps({"alg": alg, "kid": kid, "typ": typ}))

    def sign(self, claims: dict[str, Any]) -> str:
        """Compact JWS of ``claims`` (RFC 7515 section 7.1)."""
        signing_input = self._header + b"." + _b64(orjson.dumps(claims))
        return (signing_input + b"." + _b64(self._signature(signing_input))).decode("ascii")

    def _signature(self, data: bytes) -> bytes:
        key = self.key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(key.sign(data, _ECDSA_SHA256))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, _PKCS1V15, _SHA256)
        return key.sign(data)


# The signature parameters, built once (immutable; one per token was measurable on the hot path).
_SHA256 = hashes.SHA256()
_ECDSA_SHA256 = ec.ECDSA(_SHA256)
_PKCS1V15 = padding.PKCS1v15()
