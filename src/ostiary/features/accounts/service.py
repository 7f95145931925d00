"""Account use cases: create, authenticate, disable, change password.

Authentication follows OWASP ASVS 4.0 V2.2.1 / 5.0 V6.3.1 (throttling per account and per
address, counted before the password check), the Authentication Cheat Sheet (one generic
message, same work for unknown accounts) and OWASP's device cookies (a browser that signed in
to the account before has a failure bucket of its own, so that guessing cannot lock the owner
out: ``protocol/device_cookies.py``).
"""

from __future__ import annotations

import dataclasses
import functools
import secrets
import uuid
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from ostiary.features.accounts.models import User, normalize_email
from ostiary.features.accounts.passwords import PasswordHasher
from ostiary.features.accounts.ports import AccountListener, LoginThrottle, UserStore
from ostiary.features.audit.service import AuditTrail
from ostiary.features.cache import Generations, UserScopedCache
from ostiary.features.clock import Clock
from ostiary.protocol.claims import ClaimError, validate_claims, validate_name
from ostiary.protocol.device_cookies import (
    issue_device_cookie,
    new_device_id,
    verify_device_cookie,
)
from ostiary.protocol.masking import mask_email
from ostiary.protocol.password_policy import password_weakness

__all__ = [
    "AccountError",
    "AccountService",
    "EmailTaken",
    "InvalidProfile",
    "KnownDevices",
    "LoginThrottled",
    "SignInFailed",
    "UnknownUser",
    "WeakPassword",
]

_EMAIL_MAX = 254  # RFC 5321 section 4.5.3.1.3 path limit, less the angle brackets


class AccountError(Exception):
    """Base of account errors; ``str(err)`` is safe to show to the person concerned."""


class EmailTaken(AccountError):
    def __init__(self) -> None:
        super().__init__("An account with this e-mail address already exists.")


class InvalidEmail(AccountError):
    def __init__(self) -> None:
        super().__init__("Enter a valid e-mail address.")


class WeakPassword(AccountError):
    pass


class InvalidProfile(AccountError):
    """A standard claim that cannot be stored; ``claim`` names the field at fault."""

    def __init__(self, error: ClaimError) -> None:
        super().__init__(str(error))
        self.claim = error.claim


@functools.cache
def _time_zones() -> frozenset[str]:
    """The tz database names this machine knows (zoneinfo reads them once)."""
    return frozenset(zoneinfo.available_timezones())


class UnknownUser(AccountError):
    def __init__(self) -> None:
        super().__init__("No such user.")


class SignInFailed(AccountError):
    def __init__(self) -> None:
        super().__init__("Incorrect e-mail address or password.")


class LoginThrottled(AccountError):
    def __init__(self, retry_after: int) -> None:
        super().__init__("Too many failed sign-in attempts. Try again later.")
        self.retry_after = retry_after


def _valid_email(email: str) -> bool:
    local, at, domain = email.rpartition("@")
    return (
        bool(at and local and domain)
        and len(email) <= _EMAIL_MAX
        and "." in domain
        and not any(ch.isspace() or ord(ch) < 0x20 for ch in email)
    )


@dataclass(frozen=True, slots=True)
class PasswordAttempt:
    """A sign-in in progress (see :meth:`AccountService.authenticate`)."""

    email: str
    ip: str | None
    keys: tuple[str, str]  # (per address, per account or known device); both hold a slot
    attempt: str  # the attempt's id in the throttle's windows
    user: User | None
    password_ok: bool = False
    device_id: str | None = None  # from a valid known-device cookie for this account


@dataclass(frozen=True, slots=True)
class KnownDevices:
    """Known-device cookies: the MAC key and how long a cookie lives after a sign-in."""

    key: bytes
    ttl: timedelta


@dataclass(frozen=True, slots=True)
class SignIn:
    user: User
    amr: tuple[str, ...]
    device_cookie: str | None = None  # to set in the browser (known devices on), with its ttl


class AccountService:
    def __init__(
        self,
        users: UserStore,
        hasher: PasswordHasher,
        throttle: LoginThrottle,
        audit: AuditTrail,
        clock: Clock,
        listener: AccountListener | None = None,
        *,
        cache: UserScopedCache[User] | None = None,
        generations: Generations | None = None,
        known_devices: KnownDevices | None = None,
    ) -> None:
        self._devices = known_devices
        self._listener = listener
        self._cache = cache
        # Unwired (tests, tools): a private counter nobody reads.
        self._generations = generations or Generations()
        self._users = users
        self._hasher = hasher
        self._throttle = throttle
        self._audit = audit
        self._clock = clock

    async def create_user(
        self,
        email: str,
        password: str,
        *,
        name: str = "",
        email_verified: bool = False,
        actor: str | None = None,
        ip: str | None = None,
    ) -> User:
        email = normalize_email(email)
        if not _valid_email(email):
            raise InvalidEmail()
        name = name.strip()[:200]
        weakness = password_weakness(password, [email, email.partition("@")[0], name])
        if weakness:
            raise WeakPassword(weakness)
        if await self._users.get_by_email(email) is not None:
            raise EmailTaken()
        now = self._clock.now()
        user = User(
            id=str(uuid.uuid4()),
            email=email,
            name=name,
            created_at=now,
            updated_at=now,
            password_hash=await self._hasher.hash(password),
            email_verified=email_verified,
        )
        await self._users.add(user)
        await self._audit.record(
            "user.create",
            "success",
            actor=actor,
            target=user.id,
            ip=ip,
            details={"email": mask_email(email)},
        )
        return user

    async def authenticate(
        self, email: str, password: str, *, ip: str | None, device_cookie: str | None = None
    ) -> SignIn:
        """Check a password sign-in; throttled per account and per IP address.

        The three steps are public so that a caller can run the slow, CPU-bound middle one
        (argon2) outside any database transaction: on SQLite a transaction holds the write
        lock, and sign-ins would otherwise queue behind each other's hashing.
        """
        attempt = await self.begin_sign_in(email, ip=ip, device_cookie=device_cookie)
        attempt = await self.check_password(attempt, password)
        return await self.finish_sign_in(attempt, password)

    async def begin_sign_in(
        self, email: str, *, ip: str | None, device_cookie: str | None = None
    ) -> PasswordAttempt:
        """Take the attempt's throttle slots, then look the account up.

        The slots are taken here, atomically, before the password is checked: counting only
        failures, after argon2, let every concurrent guess past a limit none had reached yet.
        Every attempt counts until :meth:`finish_sign_in` sees the right password (and gives
        the slots back), so one that never finishes (an error, a client that went away) counts
        as a failure.

        A valid known-device cookie for this account moves the attempt from the account's
        bucket, shared by everyone, to the device's own (same limit).
        """
        email = normalize_email(email)[:_EMAIL_MAX]
        now = self._clock.now()
        device_id = None
        if self._devices is not None and device_cookie:
            device_id = verify_device_cookie(self._devices.key, device_cookie, email, now)
        keys = (f"ip:{ip or 'unknown'}", f"device:{device_id}" if device_id else f"account:{email}")
        attempt = secrets.token_urlsafe(16)
        wait = await self._throttle.acquire(keys, attempt, now)
        if wait > 0:
            await self._audit.record(
                "login",
                "failure",
                target=None,
                ip=ip,
                details={"reason": "throttled", "email": mask_email(email)},
            )
            raise LoginThrottled(wait)
        user = await self._users.get_by_email(email) if email else None
        return PasswordAttempt(
            email=email, ip=ip, keys=keys, attempt=attempt, user=user, device_id=device_id
        )

    async def check_password(self, attempt: PasswordAttempt, password: str) -> PasswordAttempt:
        """argon2id verification only; touches no store. Unknown accounts verify a dummy hash."""
        user = attempt.user
        ok = await self._hasher.verify(user.password_hash if user else None, password)
        return dataclasses.replace(attempt, password_ok=ok)

    async def finish_sign_in(self, attempt: PasswordAttempt, password: str) -> SignIn:
        """Record the outcome: throttle slots, rehash if parameters changed, audit.

        A failure keeps the slots taken by :meth:`begin_sign_in` (they leave with the window);
        a success gives back its per-address slot and clears the failures of its bucket (the
        account's, or the known device's), and (re)issues the device cookie.
        """
        user, ok, ip = attempt.user, attempt.password_ok, attempt.ip
        if not ok or user is None or user.disabled:
            reason = "disabled" if (ok and user and user.disabled) else "bad_credentials"
            await self._audit.record(
                "login",
                "failure",
                actor=None,
                target=user.id if user else None,
                ip=ip,
                details={"reason": reason, "email": mask_email(attempt.email)},
            )
            raise SignInFailed()
        ip_key, account_key = attempt.keys
        await self._throttle.release((ip_key,), attempt.attempt)
        await self._throttle.clear(account_key)
        if user.password_hash and self._hasher.needs_rehash(user.password_hash):
            user.password_hash = await self._hasher.hash(password)
            user.updated_at = self._clock.now()
            await self._users.update(user)
            self._generations.bump(user.id)
        await self._audit.record(
            "login", "success", actor=user.id, target=user.id, ip=ip, details={"amr": ["pwd"]}
        )
        device_cookie = None
        if self._devices is not None:
            device_cookie = issue_device_cookie(
                self._devices.key,
                attempt.device_id or new_device_id(),
                attempt.email,
                self._clock.now() + self._devices.ttl,
            )
        return SignIn(user=user, amr=("pwd",), device_cookie=device_cookie)

    async def get_by_email(self, email: str) -> User:
        user = await self._users.get_by_email(normalize_email(email))
        if user is None:
            raise UnknownUser()
        return user

    async def get(self, user_id: str) -> User | None:
        return await self._users.get(user_id)

    async def get_cached(self, user_id: str) -> User | None:
        """:meth:`get` through the process-local cache (``features/cache.py``): for pages that
        show the signed-in user. Every change below bumps the user's generation."""
        cache = self._cache
        if cache is None:
            return await self._users.get(user_id)
        user = cache.get(user_id)
        if user is None:
            user = await self._users.get(user_id)
            if user is not None:
                cache.put(user_id, user_id, user)
        return user

    async def list_users(self, limit: int = 100, offset: int = 0) -> list[User]:
        return await self._users.list(limit=limit, offset=offset)

    async def disable(self, email: str, *, actor: str | None = None) -> User:
        """Disable an account. The caller also ends the user's sessions (sessions feature)."""
        user = await self.get_by_email(email)
        if not user.disabled:
            user.disabled = True
            user.updated_at = self._clock.now()
            await self._users.update(user)
        self._generations.bump(user.id)
        if self._listener is not None:
            await self._listener.user_disabled(user.id)
        await self._audit.record("user.disable", "success", actor=actor, target=user.id)
        return user

    async def enable(self, email: str, *, actor: str | None = None) -> User:
        """Enable a disabled account. What the disabling ended stays ended: its revocations
        cover the tokens and sessions issued until then; new sign-ins and tokens work."""
        user = await self.get_by_email(email)
        if user.disabled:
            user.disabled = False
            user.updated_at = self._clock.now()
            await self._users.update(user)
        self._generations.bump(user.id)
        await self._audit.record("user.enable", "success", actor=actor, target=user.id)
        return user

    async def set_password(self, email: str, password: str, *, actor: str | None = None) -> User:
        user = await self.get_by_email(email)
        weakness = password_weakness(
            password, [user.email, user.email.partition("@")[0], user.name]
        )
        if weakness:
            raise WeakPassword(weakness)
        user.password_hash = await self._hasher.hash(password)
        user.updated_at = self._clock.now()
        await self._users.update(user)
        self._generations.bump(user.id)
        await self._audit.record("user.password_change", "success", actor=actor, target=user.id)
        return user

    async def update_profile(
        self,
        user_id: str,
        *,
        name: str | None = None,
        email_verified: bool | None = None,
        claims: Mapping[str, object] | None = None,
        actor: str | None = None,
        ip: str | None = None,
    ) -> User:
        """Change the name, the e-mail's verified flag and standard claims (OIDC Core 5.1).

        Everything is validated before anything is stored (``InvalidProfile``); ``updated_at``
        moves only when a value changed (it is the ``updated_at`` claim, section 5.1); a changed
        phone number loses its verification unless it is set in the same call. The
        audit event names the changed fields, never their values (personal data).
        """
        user = await self._users.get(user_id)
        if user is None:
            raise UnknownUser()
        try:
            new_name = validate_name(name) if name is not None else user.name
            updates = validate_claims(claims or {}, time_zones=_time_zones())
        except ClaimError as exc:
            raise InvalidProfile(exc) from exc
        merged = dict(user.claims)
        phone = updates.get("phone_number", merged.get("phone_number"))
        if phone != merged.get("phone_number") and "phone_number_verified" not in updates:
            updates["phone_number_verified"] = None  # a new number is not verified yet
        for claim, value in updates.items():
            if value is None:
                merged.pop(claim, None)
            else:
                merged[claim] = value
        changed = sorted(
            k for k in set(merged) | set(user.claims) if merged.get(k) != user.claims.get(k)
        )
        if new_name != user.name:
            changed.append("name")
        if email_verified is not None and email_verified != user.email_verified:
            changed.append("email_verified")
        if changed:
            user.name = new_name
            user.claims = merged
            if email_verified is not None:
                user.email_verified = email_verified
            user.updated_at = self._clock.now()
            await self._users.update(user)
            self._generations.bump(user.id)
        await self._audit.record(
            "user.update",
            "success",
            actor=actor,
            target=user.id,
            ip=ip,
            details={"changed": changed},
        )
        return user
