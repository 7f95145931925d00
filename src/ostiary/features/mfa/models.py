"""The second factors a user holds (RFC 8176 names the methods: ``otp`` for TOTP and recovery
codes; ``hwk`` / ``swk`` for passkeys, WebAuthn Level 3)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["MfaFactors", "Passkey", "TotpEnrollment", "TotpFactor"]


@dataclass(slots=True)
class TotpFactor:
    user_id: str
    sealed_secret: bytes  # AES-256-GCM under the MFA key, bound to the user id
    created_at: datetime
    confirmed_at: datetime | None = None  # None: enrollment started, not proven yet
    last_used_step: int | None = None  # RFC 6238 section 5.2: no step accepted twice
    algorithm: str = "SHA1"
    digits: int = 6
    period: int = 30

    @property
    def active(self) -> bool:
        return self.confirmed_at is not None


@dataclass(frozen=True, slots=True)
class TotpEnrollment:
    """What the user is shown once to set up an authenticator app."""

    secret: str  # base32, for typing in by hand
    uri: str  # otpauth:// for the QR code


@dataclass(frozen=True, slots=True)
class MfaFactors:
    totp: bool
    recovery_codes_left: int
    passkeys: int = 0  # WebAuthn credentials (amr "hwk" or "swk")

    @property
    def any(self) -> bool:
        """Whether the password alone no longer signs this user in."""
        return self.totp or self.passkeys > 0


@dataclass(slots=True)
class Passkey:
    """A WebAuthn public key credential (WebAuthn Level 3 section 6.1.3, credential record)."""

    credential_id: bytes
    user_id: str
    name: str
    public_key: bytes  # COSE_Key (RFC 9052 section 7), as the authenticator gave it
    sign_count: int
    transports: tuple[str, ...]
    aaguid: str
    backup_eligible: bool  # BE flag: may be synced to other devices; fixed at registration
    backup_state: bool  # BS flag: backed up now; may change at each use
    user_verified: bool  # UV flag at registration
    created_at: datetime
    last_used_at: datetime | None = None

    @property
    def amr(self) -> str:
        """RFC 8176 section 2: ``swk`` for a key that may leave the device (backup-eligible,
        i.e. synced), ``hwk`` for one bound to its hardware."""
        return "swk" if self.backup_eligible else "hwk"
