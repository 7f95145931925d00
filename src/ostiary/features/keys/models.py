"""Signing keys as stored: public JWK in clear, private key AES-GCM sealed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ostiary.protocol.jose import Alg

__all__ = ["SigningKey"]


@dataclass(slots=True)
class SigningKey:
    kid: str
    alg: Alg
    public_jwk: dict[str, Any]
    sealed_private_key: bytes
    created_at: datetime
    activates_at: datetime
    # Set only by migration 0006 on a key that the deployment's old single algorithm switch
    # retired (see protocol/keyring.KeyWindow).
    retired_at: datetime | None = None
