"""Passkeys: WebAuthn Level 3 registration and authentication ceremonies (py_webauthn).

- Registration (WebAuthn Level 3 section 7.1): options ask for a discoverable credential
  (``residentKey: "required"``, section 5.4.6) and prefer user verification; the user's existing
  credentials are excluded (``excludeCredentials``, so one authenticator is not registered
  twice). Attestation is ``none``: we trust no vendor list, only the key. The response's
  challenge, origin, RP ID hash, flags and COSE key are checked by py_webauthn.
- Authentication (section 7.2): as a second factor, ``allowCredentials`` lists the user's
  credentials and the credential must be theirs; passwordless, the credential is discoverable
  (empty ``allowCredentials``), user verification is required (step 17), and the returned
  ``userHandle`` must be the credential's owner (step 6). The Ostiary user id is the user handle
  (section 5.4.3 asks for an opaque handle with no personal data): it is a random UUID made at
  account creation, says nothing about the person, and maps back to the account in one lookup.
- Backup flags (section 6.1.3): backup eligibility (BE) is fixed at registration and must not
  change at an assertion; the backup state (BS) may, and is stored at each use.
- Signature counter (section 6.1.1, 7.2 step 22): a non-zero counter that does not increase may
  mean a cloned authenticator: the assertion is refused and audited (``mfa.passkey.cloned``).
  py_webauthn folds that check into its generic refusal, so it is given the counter 0 and the
  comparison is made here, after the signature verified, to tell the two apart. The new counter
  and the backup state (BS flag) are stored with one compare-and-set.
- The challenge itself is made and kept by the caller (web/webauthn_state.py: signed, bound to
  the browser, single use); this module is handed the one the server issued, never one the
  client sends back.
- Failures are throttled like passwords (per client address; per account too at a second step)
  and audited (ASVS 5.0 V6.3, V16); the error shown says nothing of why.
"""

from __future__ import annotations

import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from ostiary.features.accounts.ports import LoginThrottle
from ostiary.features.accounts.service import LoginThrottled
from ostiary.features.audit.service import AuditTrail
from ostiary.features.clock import Clock
from ostiary.features.mfa.models import Passkey
from ostiary.features.mfa.ports import PasskeyStore
from ostiary.features.mfa.service import MfaError

__all__ = [
    "CEREMONY_TIMEOUT_MS",
    "MAX_NAME_LEN",
    "MAX_PASSKEYS",
    "InvalidPasskeyName",
    "PasskeyRefused",
    "PasskeyService",
    "PasskeysOff",
    "RelyingParty",
    "TooManyPasskeys",
    "UnknownPasskey",
    "credential_key",
    "passkey_name",
]

CEREMONY_TIMEOUT_MS = 300_000  # the signed challenge lives five minutes (web/webauthn_state.py)
MAX_PASSKEYS = 20
MAX_NAME_LEN = 64
_MAX_ID_LEN = 1023  # WebAuthn Level 3 section 5.8.3: credential ids are at most 1023 bytes


class PasskeyRefused(MfaError):
    def __init__(self) -> None:
        super().__init__("That passkey could not be verified. Try again.")


class PasskeysOff(MfaError):
    def __init__(self) -> None:
        super().__init__("Passkeys are not available on this server.")


class UnknownPasskey(MfaError):
    def __init__(self) -> None:
        super().__init__("That passkey does not exist (any more).")


class InvalidPasskeyName(MfaError):
    def __init__(self) -> None:
        super().__init__(f"Give the passkey a name of 1 to {MAX_NAME_LEN} characters.")


class TooManyPasskeys(MfaError):
    def __init__(self) -> None:
        super().__init__(f"You have {MAX_PASSKEYS} passkeys; remove one first.")


@dataclass(frozen=True, slots=True)
class RelyingParty:
    """Who the passkeys are for (settings ``OSTIARY_WEBAUTHN_*``)."""

    rp_id: str
    name: str
    origins: tuple[str, ...]


def passkey_name(raw: str) -> str:
    """A name to show: trimmed, no control characters, 1 to 64 characters."""
    name = " ".join(raw.split())
    if not 1 <= len(name) <= MAX_NAME_LEN or any(
        unicodedata.category(ch).startswith("C") for ch in name
    ):
        raise InvalidPasskeyName()
    return name


def credential_key(credential_id: bytes) -> str:
    """A credential id as the pages and forms carry it (base64url)."""
    return bytes_to_base64url(credential_id)


def _credential_id(key: str) -> bytes | None:
    if not key or len(key) > 1400 or not key.isascii():
        return None
    try:
        raw = base64url_to_bytes(key)
    except ValueError:  # binascii.Error is a ValueError
        return None
    return raw if 0 < len(raw) <= _MAX_ID_LEN and credential_key(raw) == key else None


def _descriptor(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    transports = []
    for value in passkey.transports:
        try:
            transports.append(AuthenticatorTransport(value))
        except ValueError:
            continue  # a transport newer than the library: the browser does without the hint
    return PublicKeyCredentialDescriptor(id=passkey.credential_id, transports=transports or None)


class PasskeyService:
    def __init__(
        self,
        store: PasskeyStore,
        rp: RelyingParty | None,
        throttle: LoginThrottle,
        audit: AuditTrail,
        clock: Clock,
    ) -> None:
        self._store = store
        self._relying_party = rp
        self._throttle = throttle
        self._audit = audit
        self._clock = clock

    @property
    def _rp(self) -> RelyingParty:
        """The relying party; ceremonies need one (listing, renaming, removing do not)."""
        if self._relying_party is None:
            raise PasskeysOff()
        return self._relying_party

    @staticmethod
    def new_challenge() -> bytes:
        """32 random bytes (section 13.4.3 asks for at least 16)."""
        return secrets.token_bytes(32)

    async def list(self, user_id: str) -> list[Passkey]:
        return await self._store.list_for_user(user_id)

    # -- registration (section 7.1) ----------------------------------------------------------

    async def registration_options(
        self, user_id: str, email: str, display_name: str, challenge: bytes
    ) -> str:
        """``PublicKeyCredentialCreationOptionsJSON`` for ``navigator.credentials.create``."""
        existing = await self._store.list_for_user(user_id)
        options = generate_registration_options(
            rp_id=self._rp.rp_id,
            rp_name=self._rp.name,
            user_name=email,
            user_id=user_id.encode(),
            user_display_name=display_name or email,
            challenge=challenge,
            timeout=CEREMONY_TIMEOUT_MS,
            attestation=AttestationConveyancePreference.NONE,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            exclude_credentials=[_descriptor(p) for p in existing],
        )
        return str(options_to_json(options))

    async def register(
        self,
        user_id: str,
        name: str,
        credential: dict[str, Any],
        challenge: bytes,
        *,
        ip: str | None,
    ) -> Passkey:
        """Verify ``navigator.credentials.create``'s answer to ``challenge`` and store it."""
        label = passkey_name(name)
        if len(await self._store.list_for_user(user_id)) >= MAX_PASSKEYS:
            raise TooManyPasskeys()
        try:
            parsed = parse_registration_credential_json(credential)
            verified = verify_registration_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=self._rp.rp_id,
                expected_origin=list(self._rp.origins),
                require_user_presence=True,
            )
        except Exception as exc:
            # Hostile input reaches CBOR, COSE and X.509 parsers whose errors are not all
            # WebAuthnException: any failure is a refusal, never a 500.
            await self._fail("mfa.passkey.add", user_id, ip, "invalid_response", exc)
            raise PasskeyRefused() from exc
        if len(verified.credential_id) > _MAX_ID_LEN:
            await self._fail("mfa.passkey.add", user_id, ip, "credential_id_too_long")
            raise PasskeyRefused()
        passkey = Passkey(
            credential_id=verified.credential_id,
            user_id=user_id,
            name=label,
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            transports=tuple(t.value for t in parsed.response.transports or ()),
            aaguid=str(verified.aaguid),
            backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
            backup_state=verified.credential_backed_up,
            user_verified=verified.user_verified,
            created_at=self._clock.now(),
        )
        if not await self._store.add(passkey):
            await self._fail("mfa.passkey.add", user_id, ip, "credential_id_taken")
            raise PasskeyRefused()
        await self._audit.record(
            "mfa.passkey.added",
            "success",
            actor=user_id,
            target=user_id,
            ip=ip,
            details={"kind": passkey.amr, "aaguid": passkey.aaguid},
        )
        return passkey

    async def rename(self, user_id: str, key: str, name: str, *, ip: str | None) -> None:
        label = passkey_name(name)
        credential_id = _credential_id(key)
        if credential_id is None or not await self._store.rename(user_id, credential_id, label):
            raise UnknownPasskey()
        await self._audit.record(
            "mfa.passkey.renamed", "success", actor=user_id, target=user_id, ip=ip
        )

    async def remove(self, user_id: str, key: str, *, actor: str | None, ip: str | None) -> None:
        credential_id = _credential_id(key)
        if credential_id is None or not await self._store.delete(user_id, credential_id):
            raise UnknownPasskey()
        await self._audit.record(
            "mfa.passkey.removed", "success", actor=actor, target=user_id, ip=ip
        )

    # -- authentication (section 7.2) --------------------------------------------------------

    async def authentication_options(self, challenge: bytes, user_id: str | None) -> str:
        """``PublicKeyCredentialRequestOptionsJSON``: the user's credentials at a second step;
        none (discoverable credentials) and user verification required, passwordless."""
        if user_id is None:
            allow: list[PublicKeyCredentialDescriptor] = []
            uv = UserVerificationRequirement.REQUIRED
        else:
            allow = [_descriptor(p) for p in await self._store.list_for_user(user_id)]
            uv = UserVerificationRequirement.PREFERRED
        options = generate_authentication_options(
            rp_id=self._rp.rp_id,
            challenge=challenge,
            timeout=CEREMONY_TIMEOUT_MS,
            allow_credentials=allow,
            user_verification=uv,
        )
        return str(options_to_json(options))

    async def authenticate(
        self, credential: dict[str, Any], challenge: bytes, *, user_id: str | None, ip: str | None
    ) -> Passkey:
        """Verify ``navigator.credentials.get``'s answer to ``challenge``; the passkey used, its
        counter, backup state and last use updated. ``user_id``: the user a second step is
        for; None for a passwordless sign-in (the credential names its user)."""
        action = "mfa.passkey.verify" if user_id else "login.passkey"
        ip_key = f"ip:{ip or 'unknown'}"
        # "mfa:" is not "ip:": the per-account limit, shared with TOTP (storage/throttle.py).
        account_key = f"mfa:{user_id}" if user_id else None
        keys = (ip_key, account_key) if account_key else (ip_key,)
        attempt = secrets.token_urlsafe(16)
        wait = await self._throttle.acquire(keys, attempt, self._clock.now())
        if wait > 0:
            await self._audit.record(
                "mfa.throttled", "failure", target=user_id, ip=ip, details={"wait": wait}
            )
            raise LoginThrottled(wait)
        passkey = await self._verified(credential, challenge, user_id=user_id, ip=ip, action=action)
        await self._throttle.release((ip_key,), attempt)
        if account_key:
            await self._throttle.clear(account_key)
        await self._audit.record(
            action,
            "success",
            actor=passkey.user_id,
            ip=ip,
            details={"method": "passkey", "kind": passkey.amr},
        )
        return passkey

    async def _verified(
        self,
        credential: dict[str, Any],
        challenge: bytes,
        *,
        user_id: str | None,
        ip: str | None,
        action: str,
    ) -> Passkey:
        try:
            parsed = parse_authentication_credential_json(credential)
        except Exception as exc:
            await self._fail(action, user_id, ip, "malformed", exc)
            raise PasskeyRefused() from exc
        raw_id = parsed.raw_id
        passkey = await self._store.get(raw_id) if len(raw_id) <= _MAX_ID_LEN else None
        if passkey is None or (user_id is not None and passkey.user_id != user_id):
            await self._fail(action, user_id, ip, "unknown_credential")
            raise PasskeyRefused()
        handle = parsed.response.user_handle
        # Section 7.2 step 6: passwordless, the user handle must be present and name the
        # credential's owner; at a second step, if present, it must name the user too.
        if (user_id is None and handle is None) or (
            handle is not None and handle != passkey.user_id.encode()
        ):
            await self._fail(action, passkey.user_id, ip, "user_handle_mismatch")
            raise PasskeyRefused()
        try:
            verified = verify_authentication_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=self._rp.rp_id,
                expected_origin=list(self._rp.origins),
                credential_public_key=passkey.public_key,
                credential_current_sign_count=0,  # compared below, after the signature
                require_user_verification=user_id is None,
            )
        except Exception as exc:
            await self._fail(action, passkey.user_id, ip, "invalid_assertion", exc)
            raise PasskeyRefused() from exc
        eligible = verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE
        if eligible != passkey.backup_eligible:
            # Section 6.1.3: the BE flag is fixed when a credential is made; an authenticator
            # that reports another value is not the one registered (or is broken).
            await self._fail(action, passkey.user_id, ip, "backup_eligibility_changed")
            raise PasskeyRefused()
        stored, new = passkey.sign_count, verified.new_sign_count
        if (stored or new) and new <= stored:
            await self._audit.record(
                "mfa.passkey.cloned",
                "failure",
                target=passkey.user_id,
                ip=ip,
                details={"stored_count": stored, "received_count": new},
            )
            raise PasskeyRefused()
        now = self._clock.now()
        if not await self._store.record_use(
            passkey.credential_id,
            expected_count=stored,
            new_count=new,
            backup_state=verified.credential_backed_up,
            used_at=now,
        ):
            # A concurrent assertion of the same credential stored its counter first.
            await self._fail(action, passkey.user_id, ip, "concurrent_use")
            raise PasskeyRefused()
        passkey.sign_count = new
        passkey.backup_state = verified.credential_backed_up
        passkey.last_used_at = now
        return passkey

    async def _fail(
        self,
        action: str,
        user_id: str | None,
        ip: str | None,
        reason: str,
        exc: Exception | None = None,
    ) -> None:
        details: dict[str, Any] = {"reason": reason}
        if exc is not None:
            details["error"] = type(exc).__name__
        await self._audit.record(action, "failure", target=user_id, ip=ip, details=details)
