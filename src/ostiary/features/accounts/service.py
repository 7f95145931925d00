"""Account use cases: create, authenticate, disable, change password, change e-mail.

Authentication follows OWASP ASVS 4.0 V2.2.1 / 5.0 V6.3.1 (throttling per account and per
address, counted before the password check), the Authentication Cheat Sheet (one generic
message, same work for unknown accounts) and OWASP's device cookies (a browser that signed in
to the account before has a failure bucket of its own, so that guessing cannot lock the owner
out: ``protocol/device_cookies.py``).

A signed-in user's own password or e-mail change asks for the current password (ASVS 5.0
V6.2.3, ASVS 4.0 V2.1.5), checked like a sign-in: the same throttle buckets, argon2 between
two transactions (:meth:`AccountService.begin_confirmation`, ``check_password``, then
:meth:`~AccountService.change_password` or :meth:`~AccountService.change_email`). A new address
is not verified (``email_verified`` becomes false) until the link the web layer mails it
(web/email_links.py) is opened by the account's owner.
"""

from __future__ import annotations

import dataclasses
import functools
import secrets
import uuid
import zoneinfo
from collections.abc import Mapping, Sequence
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
    "EmailUnavailable",
    "InvalidEmail",
    "InvalidProfile",
    "KnownDevices",
    "LoginThrottled",
    "PasswordAttempt",
    "SameEmail",
    "SignInFailed",
    "UnknownUser",
    "WeakPassword",
    "WrongPassword",
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


class EmailUnavailable(AccountError):
    """A signed-in user's new address is another account's (says no more than that)."""

    def __init__(self) -> None:
        super().__init__("That e-mail address is not available. Choose another one.")


class WeakPassword(AccountError):
    pass


class WrongPassword(AccountError):
    """The current password given to confirm a change is not the account's."""

    def __init__(self) -> None:
        super().__init__("The current password is not correct.")


class SameEmail(AccountError):
    def __init__(self) -> None:
        super().__init__("That is already your e-mail address.")


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


def _user_inputs(email: str, name: str) -> list[str]:
    """What a password must not be built from: the address, its local part, the name."""
    return [email, email.partition("@")[0], name]


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
        weakness = password_weakness(password, _user_inputs(email, name))
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
        attempt = await self._take_slots("login", email, ip, device_cookie, target=None)
        user = await self._users.get_by_email(email) if email else None
        return dataclasses.replace(attempt, user=user)

    async def begin_confirmation(
        self, user_id: str, *, action: str, ip: str | None, device_cookie: str | None = None
    ) -> PasswordAttempt:
        """First step of a change confirmed with the current password (``action`` names it in
        the audit trail): throttled as a sign-in to the account is, in the same buckets, so
        guesses made here count towards the sign-in limit and the other way round."""
        user = await self._users.get(user_id)
        if user is None:
            raise UnknownUser()
        attempt = await self._take_slots(action, user.email, ip, device_cookie, target=user.id)
        return dataclasses.replace(attempt, user=user)

    async def _take_slots(
        self,
        action: str,
        email: str,
        ip: str | None,
        device_cookie: str | None,
        *,
        target: str | None,
    ) -> PasswordAttempt:
        now = self._clock.now()
        device_id = None
        if self._devices is not None and device_cookie:
            device_id = verify_device_cookie(self._devices.key, device_cookie, email, now)
        keys = (f"ip:{ip or 'unknown'}", f"device:{device_id}" if device_id else f"account:{email}")
        attempt = secrets.token_urlsafe(16)
        wait = await self._throttle.acquire(keys, attempt, now)
        if wait > 0:
            await self._audit.record(
                action,
                "failure",
                target=target,
                ip=ip,
                details={"reason": "throttled", "email": mask_email(email)},
            )
            raise LoginThrottled(wait)
        return PasswordAttempt(
            email=email, ip=ip, keys=keys, attempt=attempt, user=None, device_id=device_id
        )

    async def check_password(self, attempt: PasswordAttempt, password: str) -> PasswordAttempt:
        """argon2id verification only; touches no store. Unknown accounts verify a dummy hash."""
        user = attempt.user
        ok = await self._hasher.verify(user.password_hash if user else None, password)
        return dataclasses.replace(attempt, password_ok=ok)

    async def finish_sign_in(
        self, attempt: PasswordAttempt, password: str, *, second_step: bool = False
    ) -> SignIn:
        """Record the outcome: throttle slots, rehash if parameters changed, audit.

        A failure keeps the slots taken by :meth:`begin_sign_in` (they leave with the window);
        a success gives back its per-address slot and clears the failures of its bucket (the
        account's, or the known device's), and (re)issues the device cookie.

        ``second_step``: the account has a second factor, so the right password does not sign
        in yet: the audit trail says ``login.password`` (success), and ``login`` success comes
        when the second factor starts the session (:meth:`record_sign_in`).
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
            "login.password" if second_step else "login",
            "success",
            actor=user.id,
            target=user.id,
            ip=ip,
            details={"amr": ["pwd"], "second_step": "pending"} if second_step else {"amr": ["pwd"]},
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

    async def record_sign_in(
        self, user_id: str, amr: tuple[str, ...] | list[str], *, ip: str | None
    ) -> None:
        """Audit a sign-in completed by its second factor (``login`` success, with the methods
        used, RFC 8176): the session starts now."""
        await self._audit.record(
            "login", "success", actor=user_id, target=user_id, ip=ip, details={"amr": list(amr)}
        )

    # -- changes confirmed with the current password -----------------------------------------

    def check_new_password(self, user: User, password: str) -> None:
        """The password policy (protocol/password_policy.py, with the user's own details as
        inputs the password must not be built from); raises :class:`WeakPassword`."""
        weakness = password_weakness(password, _user_inputs(user.email, user.name))
        if weakness:
            raise WeakPassword(weakness)

    async def hash_password(self, password: str) -> str:
        """argon2id of a new password; touches no store (run it outside any transaction)."""
        return await self._hasher.hash(password)

    async def change_password(
        self, attempt: PasswordAttempt, new_hash: str | None, *, ip: str | None
    ) -> User:
        """Store ``new_hash`` (from :meth:`hash_password`) if the attempt proved the current
        password; audited as ``account.password.changed``. The caller ends the user's other
        sessions."""
        user = await self._confirmed(attempt, "account.password.changed")
        if new_hash is None:
            raise ValueError("no new password hash for a confirmed change")
        user.password_hash = new_hash
        user.updated_at = self._clock.now()
        await self._users.update(user)
        self._generations.bump(user.id)
        await self._audit.record(
            "account.password.changed", "success", actor=user.id, target=user.id, ip=ip
        )
        return user

    def check_new_email(self, user: User, email: str) -> str:
        """The normalized new address, validated as :meth:`create_user` does."""
        email = normalize_email(email)
        if not _valid_email(email):
            raise InvalidEmail()
        if email == user.email:
            raise SameEmail()
        return email

    async def change_email(self, attempt: PasswordAttempt, email: str, *, ip: str | None) -> User:
        """Move the account to ``email`` (from :meth:`check_new_email`) if the attempt proved the
        current password; the new address is not verified yet. Audited as
        ``account.email.changed`` with both addresses masked.

        Whether an address is taken is told only after the password was proven (and only as
        "not available"), so a stolen session alone cannot probe for accounts.
        """
        user = await self._confirmed(attempt, "account.email.changed")
        old = user.email
        masked = {"from": mask_email(old), "to": mask_email(email)}
        user.email = email
        user.email_verified = False
        user.updated_at = self._clock.now()
        try:
            if await self._users.get_by_email(email) is not None:
                raise EmailTaken()
            await self._users.update_email(user)
        except EmailTaken:
            await self._audit.record(
                "account.email.changed",
                "failure",
                actor=user.id,
                target=user.id,
                ip=ip,
                details={"reason": "taken", **masked},
            )
            raise EmailUnavailable() from None
        self._generations.bump(user.id)
        if self._listener is not None:
            await self._listener.user_changed(user.id)  # e.g. decisions' ``principal.email``
        await self._audit.record(
            "account.email.changed", "success", actor=user.id, target=user.id, ip=ip, details=masked
        )
        return user

    async def _confirmed(self, attempt: PasswordAttempt, action: str) -> User:
        """The account, if the attempt proved its current password and the password has not
        changed since; otherwise audit the failure (the throttle slots stay taken) and raise."""
        stored = await self._users.get(attempt.user.id) if attempt.user else None
        ok = (
            attempt.password_ok
            and attempt.user is not None
            and stored is not None
            and not stored.disabled
            and stored.password_hash == attempt.user.password_hash
        )
        if not ok or stored is None:
            await self._audit.record(
                action,
                "failure",
                actor=stored.id if stored else None,
                target=stored.id if stored else None,
                ip=attempt.ip,
                details={"reason": "bad_password"},
            )
            raise WrongPassword()
        ip_key, account_key = attempt.keys
        await self._throttle.release((ip_key,), attempt.attempt)
        await self._throttle.clear(account_key)
        return stored

    async def get_by_email(self, email: str) -> User:
        user = await self._users.get_by_email(normalize_email(email))
        if user is None:
            raise UnknownUser()
        return user

    async def get(self, user_id: str) -> User | None:
        return await self._users.get(user_id)

    async def get_many(self, user_ids: Sequence[str]) -> dict[str, User]:
        """The existing users among ``user_ids``, by id (one query: listings avoid N+1)."""
        return {user.id: user for user in await self._users.get_many(user_ids)}

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
        weakness = password_weakness(password, _user_inputs(user.email, user.name))
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
