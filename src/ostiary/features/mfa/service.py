"""MFA use cases: TOTP enrollment and verification, recovery codes, an admin's reset.

- TOTP (RFC 6238, protocol/totp.py): the secret is made here (160 random bits, RFC 4226
  section 4 R6), sealed at rest like signing keys (AES-256-GCM under a key of its own, bound to
  the user id), and active only once a code from the authenticator proves the user holds it.
  An enrollment not confirmed within ``enrollment_ttl`` (``OSTIARY_MFA_ENROLLMENT_SECONDS``)
  cannot be confirmed any more (the user starts again, with a new secret) and is deleted by
  the purge (features/retention, kind ``totp_enrollments``): a secret that was shown but never
  proven does not linger. A code is accepted for one step of drift either side; its step is
  recorded with one atomic compare-and-set (``TotpStore.use_step``), so a code wins once, on
  every replica, even when submitted concurrently (RFC 6238 section 5.2).
- Recovery codes (protocol/recovery_codes.py): ten at enrollment, shown once, stored as HMAC;
  a new set replaces the old; each is used once, atomically; the user learns how many remain.
- Passkeys (features/mfa/passkeys.py) count as factors here; the first factor a user sets up
  comes with recovery codes, which go when the last factor does.
- Every check is throttled like a password (per account and per client address, taken before
  the check, given back on success: storage/throttle.py) and audited (ASVS 5.0 V6.3, V16).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from ostiary.features.accounts.ports import LoginThrottle
from ostiary.features.accounts.service import AccountError, LoginThrottled
from ostiary.features.audit.service import AuditTrail
from ostiary.features.clock import Clock
from ostiary.features.mfa.models import MfaFactors, TotpEnrollment, TotpFactor
from ostiary.features.mfa.ports import PasskeyStore, RecoveryCodeStore, TotpStore
from ostiary.protocol import recovery_codes
from ostiary.protocol.sealing import open_sealed, seal
from ostiary.protocol.totp import Totp, secret_from_bytes

__all__ = [
    "RECOVERY_CODE_COUNT",
    "EnrollmentExpired",
    "MfaError",
    "MfaKeys",
    "MfaService",
    "NotEnrolled",
    "WrongCode",
]

RECOVERY_CODE_COUNT = 10
_SECRET_BYTES = 20  # 160 bits: RFC 4226 section 4, requirement R6 (and its recommendation)


class MfaError(AccountError):
    """Base of MFA errors; ``str(err)`` is safe to show to the person concerned."""


class NotEnrolled(MfaError):
    def __init__(self) -> None:
        super().__init__("No authenticator app is set up for this account.")


class AlreadyEnrolled(MfaError):
    def __init__(self) -> None:
        super().__init__("An authenticator app is already set up; remove it first.")


class EnrollmentExpired(MfaError):
    def __init__(self) -> None:
        super().__init__(
            "The set-up of the authenticator app took too long and has expired. Start again."
        )


class WrongCode(MfaError):
    def __init__(self) -> None:
        super().__init__("That code is not valid. Codes can be used once.")


@dataclass(frozen=True, slots=True)
class MfaKeys:
    """Keys derived from the deployment secret (web/runtime.py)."""

    seal: bytes  # AES-256-GCM key of TOTP secrets at rest
    pepper: bytes  # HMAC key of recovery codes


class MfaService:
    def __init__(
        self,
        totp: TotpStore,
        codes: RecoveryCodeStore,
        passkeys: PasskeyStore,
        keys: MfaKeys,
        throttle: LoginThrottle,
        audit: AuditTrail,
        clock: Clock,
        *,
        issuer_name: str,
        enrollment_ttl: timedelta = timedelta(minutes=15),
    ) -> None:
        self._enrollment_ttl = enrollment_ttl
        self._totp = totp
        self._codes = codes
        self._passkeys = passkeys
        self._keys = keys
        self._throttle = throttle
        self._audit = audit
        self._clock = clock
        self._issuer_name = issuer_name

    async def factors(self, user_id: str) -> MfaFactors:
        factor = await self._totp.get(user_id)
        return MfaFactors(
            totp=factor is not None and factor.active,
            recovery_codes_left=await self._codes.remaining(user_id),
            passkeys=(await self._passkeys.count_among([user_id])).get(user_id, 0),
        )

    async def factors_of(self, user_ids: list[str]) -> dict[str, MfaFactors]:
        """:meth:`factors` of many users in three queries (``ostiary users list``)."""
        active = await self._totp.active_among(user_ids)
        left = await self._codes.remaining_among(user_ids)
        passkeys = await self._passkeys.count_among(user_ids)
        return {
            uid: MfaFactors(
                totp=uid in active,
                recovery_codes_left=left.get(uid, 0),
                passkeys=passkeys.get(uid, 0),
            )
            for uid in user_ids
        }

    # -- TOTP --------------------------------------------------------------------------------

    async def start_totp(self, user_id: str, account_label: str) -> TotpEnrollment:
        """A new secret, pending until :meth:`confirm_totp`; shown once (QR + text)."""
        existing = await self._totp.get(user_id)
        if existing is not None and existing.active:
            raise AlreadyEnrolled()
        secret = secret_from_bytes(secrets.token_bytes(_SECRET_BYTES))
        factor = TotpFactor(
            user_id=user_id,
            sealed_secret=seal(self._keys.seal, secret.encode(), _bound(user_id)),
            created_at=self._clock.now(),
        )
        await self._totp.put_pending(factor)
        uri = Totp(secret).provisioning_uri(account=account_label, issuer=self._issuer_name)
        return TotpEnrollment(secret=secret, uri=uri)

    async def pending_totp(self, user_id: str, account_label: str) -> TotpEnrollment | None:
        """The enrollment started and not yet confirmed, to show again (a wrong code keeps the
        same secret until the user starts over); None when there is none."""
        factor = await self._totp.get(user_id)
        if factor is None or factor.active or self._expired(factor):
            return None
        uri = _totp_of(self._keys, factor).provisioning_uri(
            account=account_label, issuer=self._issuer_name
        )
        return TotpEnrollment(secret=_secret_of(factor, self._keys), uri=uri)

    async def confirm_totp(self, user_id: str, code: str, *, ip: str | None) -> list[str]:
        """Activate the pending secret with a code from the app; the recovery codes (shown
        once) come back."""
        factor = await self._totp.get(user_id)
        if factor is None or factor.active:
            raise NotEnrolled()
        if self._expired(factor):
            await self._fail(user_id, ip, "mfa.totp.confirm", "expired")
            raise EnrollmentExpired()
        now = self._clock.now()
        step = await self._throttled_match(factor, code, ip=ip, action="mfa.totp.confirm")
        if not await self._totp.confirm(user_id, now, step):
            raise WrongCode()  # another request confirmed (or restarted) it meanwhile
        codes = await self._new_recovery_codes(user_id)
        await self._audit.record("mfa.totp.enrolled", "success", actor=user_id, target=user_id)
        return codes

    async def verify_totp(self, user_id: str, code: str, *, ip: str | None) -> None:
        """A sign-in's second step; raises :class:`WrongCode` (or ``LoginThrottled``)."""
        factor = await self._totp.get(user_id)
        if factor is None or not factor.active:
            raise NotEnrolled()
        step = await self._throttled_match(factor, code, ip=ip, action="mfa.totp.verify")
        if not await self._totp.use_step(user_id, step):
            # The same code won a concurrent request a moment ago: this one is a replay.
            await self._fail(user_id, ip, "mfa.totp.verify", "replayed")
            raise WrongCode()
        await self._audit.record("mfa.totp.verify", "success", actor=user_id, ip=ip)

    async def remove_totp(self, user_id: str, *, actor: str | None) -> bool:
        removed = await self._totp.delete(user_id)
        await self.drop_orphan_recovery_codes(user_id)
        if removed:
            await self._audit.record("mfa.totp.removed", "success", actor=actor, target=user_id)
        return removed

    # -- recovery codes ----------------------------------------------------------------------

    async def regenerate_recovery_codes(self, user_id: str) -> list[str]:
        if not (await self.factors(user_id)).any:
            raise NotEnrolled()
        codes = await self._new_recovery_codes(user_id)
        await self._audit.record(
            "mfa.recovery_codes.regenerated", "success", actor=user_id, target=user_id
        )
        return codes

    async def first_recovery_codes(self, user_id: str) -> list[str] | None:
        """A set of codes (shown once) for a user who just set up a factor and has none left;
        None when they still have some."""
        if await self._codes.remaining(user_id):
            return None
        codes = await self._new_recovery_codes(user_id)
        await self._audit.record(
            "mfa.recovery_codes.created", "success", actor=user_id, target=user_id
        )
        return codes

    async def drop_orphan_recovery_codes(self, user_id: str) -> None:
        """Recovery codes stand in for a factor: they go when the last factor goes."""
        if not (await self.factors(user_id)).any:
            await self._codes.delete_all(user_id)

    async def use_recovery_code(self, user_id: str, code: str, *, ip: str | None) -> int:
        """Spend one recovery code (the second step of a sign-in); how many are left."""
        attempt = await self._take_slot(user_id, ip)
        canonical = recovery_codes.normalize(code)
        used = canonical is not None and await self._codes.consume(
            user_id, recovery_codes.digest(self._keys.pepper, canonical), self._clock.now()
        )
        if not used:
            await self._fail(user_id, ip, "mfa.recovery_code.use", "bad_code")
            raise WrongCode()
        await self._give_back(user_id, ip, attempt)
        left = await self._codes.remaining(user_id)
        await self._audit.record(
            "mfa.recovery_code.use", "success", actor=user_id, ip=ip, details={"remaining": left}
        )
        return left

    # -- administration ----------------------------------------------------------------------

    async def reset(self, user_id: str, *, actor: str | None) -> MfaFactors:
        """Remove every factor (``ostiary users reset-mfa``); what the user had comes back."""
        before = await self.factors(user_id)
        await self._totp.delete(user_id)
        await self._codes.delete_all(user_id)
        await self._passkeys.delete_all(user_id)
        await self._audit.record(
            "mfa.reset",
            "success",
            actor=actor,
            target=user_id,
            # Key names free of "otp"/"recovery": the audit trail redacts such fields
            # (protocol/masking.py), which would hide what was removed.
            details={
                "authenticator_app": before.totp,
                "unused_codes": before.recovery_codes_left,
                "passkeys": before.passkeys,
            },
        )
        return before

    # -- internals ---------------------------------------------------------------------------

    def _expired(self, factor: TotpFactor) -> bool:
        """A pending enrollment past its time (the purge deletes it: Unit.retention)."""
        return factor.created_at + self._enrollment_ttl <= self._clock.now()

    async def _new_recovery_codes(self, user_id: str) -> list[str]:
        codes = [
            recovery_codes.format_code(secrets.token_bytes(recovery_codes.CODE_BYTES))
            for _ in range(RECOVERY_CODE_COUNT)
        ]
        digests = [recovery_codes.digest(self._keys.pepper, c) for c in codes]
        await self._codes.replace(user_id, digests, self._clock.now())
        return codes

    async def _throttled_match(
        self, factor: TotpFactor, code: str, *, ip: str | None, action: str
    ) -> int:
        attempt = await self._take_slot(factor.user_id, ip)
        totp = _totp_of(self._keys, factor)
        step = totp.match_step(code, self._clock.now(), last_used_step=factor.last_used_step)
        if step is None:
            await self._fail(factor.user_id, ip, action, "bad_code")
            raise WrongCode()
        await self._give_back(factor.user_id, ip, attempt)
        return step

    async def _take_slot(self, user_id: str, ip: str | None) -> str:
        attempt = secrets.token_urlsafe(16)
        wait = await self._throttle.acquire(_keys(user_id, ip), attempt, self._clock.now())
        if wait > 0:
            await self._audit.record(
                "mfa.throttled", "failure", target=user_id, ip=ip, details={"wait": wait}
            )
            raise LoginThrottled(wait)
        return attempt

    async def _give_back(self, user_id: str, ip: str | None, attempt: str) -> None:
        ip_key, account_key = _keys(user_id, ip)
        await self._throttle.release((ip_key,), attempt)
        await self._throttle.clear(account_key)

    async def _fail(self, user_id: str, ip: str | None, action: str, reason: str) -> None:
        await self._audit.record(
            action, "failure", target=user_id, ip=ip, details={"reason": reason}
        )


def _secret_of(factor: TotpFactor, keys: MfaKeys) -> str:
    return open_sealed(keys.seal, factor.sealed_secret, _bound(factor.user_id)).decode()


def _totp_of(keys: MfaKeys, factor: TotpFactor) -> Totp:
    return Totp(
        _secret_of(factor, keys),
        digits=factor.digits,
        period=factor.period,
        algorithm=factor.algorithm,  # type: ignore[arg-type]
    )


def _bound(user_id: str) -> bytes:
    return f"totp:{user_id}".encode()


def _keys(user_id: str, ip: str | None) -> tuple[str, str]:
    # "mfa:" is not "ip:", so it has the per-account limit (storage/throttle.py).
    return (f"ip:{ip or 'unknown'}", f"mfa:{user_id}")
