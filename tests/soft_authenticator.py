"""A software WebAuthn authenticator for tests, written from the specifications, independent of
the code under test and of py_webauthn: ES256 keys from ``cryptography``, CBOR from ``cbor2``.

WebAuthn Level 3: section 6.1 (authenticator data: RP ID hash, flags UP/UV/BE/BS/AT, counter,
attested credential data), 6.5.4 ("none" attestation), 5.8.1 (client data), 6.3.3 (the
assertion signature over authenticatorData || SHA-256(clientDataJSON)); RFC 9052 section 7 and
RFC 9053 section 7.1.1 (the EC2 COSE_Key). The JSON shapes are those of ``toJSON()``
(``RegistrationResponseJSON`` / ``AuthenticationResponseJSON``, section 5.1).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40
AAGUID = bytes.fromhex("00112233445566778899aabbccddeeff")


def b64u(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftAuthenticator:
    """One discoverable ES256 credential. ``counter`` None: an authenticator without a
    signature counter (it always reports 0, as synced passkeys do)."""

    backup_eligible: bool = True
    backup_state: bool = True
    user_verified: bool = True
    counter: int | None = 0
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(16))
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    user_handle: bytes | None = None
    rp_id: str | None = None

    def _flags(self, *, attested: bool) -> int:
        flags = UP
        flags |= UV if self.user_verified else 0
        flags |= BE if self.backup_eligible else 0
        flags |= BS if self.backup_state else 0
        flags |= AT if attested else 0
        return flags

    def _next_count(self) -> int:
        if self.counter is None:
            return 0
        self.counter += 1
        return self.counter

    def cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,  # kty: EC2
                3: -7,  # alg: ES256
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    def create(
        self,
        options: dict[str, Any],
        origin: str,
        *,
        rp_id: str | None = None,
        challenge: str | None = None,
    ) -> dict[str, Any]:
        """``navigator.credentials.create(options).toJSON()``."""
        rp = rp_id or options["rp"]["id"]
        self.rp_id = options["rp"]["id"]
        self.user_handle = unb64u(options["user"]["id"])
        client_data = _client_data("webauthn.create", challenge or options["challenge"], origin)
        count = 0 if self.counter is None else self.counter
        attested = (
            AAGUID + struct.pack(">H", len(self.credential_id)) + self.credential_id
        ) + self.cose_key()
        auth_data = (
            hashlib.sha256(rp.encode()).digest()
            + bytes([self._flags(attested=True)])
            + struct.pack(">I", count)
            + attested
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64u(self.credential_id),
            "rawId": b64u(self.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64u(client_data),
                "attestationObject": b64u(attestation),
                "transports": ["internal", "hybrid"],
            },
        }

    def get(
        self,
        options: dict[str, Any],
        origin: str,
        *,
        rp_id: str | None = None,
        challenge: str | None = None,
        user_handle: bytes | bool | None = True,
        count: int | None = None,
    ) -> dict[str, Any]:
        """``navigator.credentials.get(options).toJSON()``; ``user_handle`` True: the one
        stored at creation, False/None: none, bytes: that one."""
        rp = rp_id or options.get("rpId") or self.rp_id or ""
        client_data = _client_data("webauthn.get", challenge or options["challenge"], origin)
        counter = self._next_count() if count is None else count
        auth_data = (
            hashlib.sha256(rp.encode()).digest()
            + bytes([self._flags(attested=False)])
            + struct.pack(">I", counter)
        )
        signature = self.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        handle = self.user_handle if user_handle is True else user_handle or None
        response: dict[str, Any] = {
            "clientDataJSON": b64u(client_data),
            "authenticatorData": b64u(auth_data),
            "signature": b64u(signature),
        }
        if handle:
            response["userHandle"] = b64u(handle)  # type: ignore[arg-type]
        return {
            "id": b64u(self.credential_id),
            "rawId": b64u(self.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": response,
        }


def _client_data(kind: str, challenge: str, origin: str) -> bytes:
    return json.dumps(
        {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}
    ).encode()
