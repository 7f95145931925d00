"""Composition root: settings -> adapters -> services. Used by the app and by the CLI.

Keys derived from the deployment secret (RFC 5869 HKDF, one ``info`` per purpose):
``session-token`` (HMAC pepper of session cookies), ``csrf`` (CSRF token MAC),
``signing-key-encryption`` (AES-256-GCM key that seals private signing keys),
``authorize-proof`` (MAC of /authorize's sign-in markers, web/sign_in_proofs.py),
``login-throttle-keys`` (names of the sign-in throttle's Redis keys, storage/throttle.py),
``mfa-secret-encryption`` (AES-256-GCM key of TOTP secrets at rest), ``recovery-code-hmac``
(HMAC key of stored recovery codes), ``second-step`` (MAC of the ticket between a sign-in's
password and its second factor, web/second_step.py), ``webauthn-ceremony`` (MAC of a passkey
ceremony's challenge state, web/webauthn_state.py), ``invitation`` (HMAC key of stored
invitation tokens, features/invitations), ``email-verification`` (MAC of the links that
verify a changed e-mail address, web/email_links.py), ``api-key-hmac`` (HMAC key of stored API
keys, features/apikeys), ``api-cursor`` (MAC of the management API's paging cursors,
protocol/api_cursors.py).

Mail (features/mail): SMTP when OSTIARY_SMTP_HOST is set; otherwise, in dev mode, an in-memory
outbox (``dev_outbox``, shown at /dev/mail); otherwise none, and inviting by e-mail is refused.
An invitation is created and committed first, its mail sent with no transaction open, and the
outcome recorded in a second transaction (``Runtime.invite``).

Effective permissions (features/rbac), decisions' subjects (features/policy), verified API
key rows (features/apikeys) and organizations by id or slug (features/orgs) are cached per node
(``permission_cache``, ``decision_cache``, ``api_key_cache``, ``org_cache``); a change
invalidates what it touches on every node through the revocation fan-out
(``Unit._invalidate``): a row of kind ``rbac``, ``policy``, ``api_key_row`` or ``org`` in the
``revocations`` table (the poll) and, once the change has committed, a pub/sub message.
Publishing only after the commit matters: a node told earlier could read the old rows again
and cache them as current.
"""

from __future__ import annotations

import asyncio
import html
import random
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload
from urllib.parse import urlencode

import structlog

from ostiary.config import Settings
from ostiary.features.accounts.models import User
from ostiary.features.accounts.passwords import PasswordHasher
from ostiary.features.accounts.ports import LoginThrottle
from ostiary.features.accounts.service import AccountService, KnownDevices, UnknownUser
from ostiary.features.apikeys.cache import KeyCache, org_mark, owner_mark
from ostiary.features.apikeys.callers import KnownCallers
from ostiary.features.apikeys.service import KEEP_ENDED_KEYS, ApiKeyService
from ostiary.features.apikeys.verification import KeyVerifier, UsageMarks
from ostiary.features.audit.service import AuditTrail
from ostiary.features.cache import Generations, UserScopedCache
from ostiary.features.clients.assertions import ClientAssertionVerifier
from ostiary.features.clients.service import ClientCache, ClientService
from ostiary.features.clock import Clock, SystemClock
from ostiary.features.invitations.models import Invitation, IssuedInvitation
from ostiary.features.invitations.service import InvitationService
from ostiary.features.keys.service import KeyService, SignerCache
from ostiary.features.mail.models import MailError, MailMessage, MailNotConfigured
from ostiary.features.mail.ports import Mailer
from ostiary.features.mfa.passkeys import PasskeyService, RelyingParty
from ostiary.features.mfa.service import MfaKeys, MfaService
from ostiary.features.models.service import ModelCatalog
from ostiary.features.oauth.access_tokens import AccessTokens
from ostiary.features.oauth.directory import AccountDirectory
from ostiary.features.oauth.grants import GrantContext
from ostiary.features.oauth.grants.base import OAuthPolicy
from ostiary.features.oauth.models import Consent, RevocationKind
from ostiary.features.oauth.revocation import RevocationService, RevocationSet
from ostiary.features.oauth.service import OAuthService
from ostiary.features.oauth.tokens import TokenMinter
from ostiary.features.oauth.verified import VerifiedTokens
from ostiary.features.orgs.cache import OrgCache
from ostiary.features.orgs.models import TenancyError
from ostiary.features.orgs.service import OrgService
from ostiary.features.policy.cache import DecisionCache, KnownUsers
from ostiary.features.policy.callers import CallerCache
from ostiary.features.policy.decision_log import DecisionLogBuffer
from ostiary.features.policy.models import ApiKeySubject, LogEntry
from ostiary.features.policy.service import DecisionLogPolicy, PolicyService
from ostiary.features.rbac.cache import PermissionCache, invalidation_key
from ostiary.features.rbac.claims import OrgClaims
from ostiary.features.rbac.models import Principal
from ostiary.features.rbac.service import EffectivePermissions, RbacService
from ostiary.features.retention.service import RetentionRule, RetentionService
from ostiary.features.sessions.models import Session
from ostiary.features.sessions.ports import SessionStore
from ostiary.features.sessions.service import SessionPolicy, SessionService
from ostiary.protocol.masking import mask_email
from ostiary.protocol.sealing import derive_key
from ostiary.storage.http_jwks import HttpJwksFetcher
from ostiary.storage.mail.outbox import DevOutbox
from ostiary.storage.mail.smtp import SmtpMailer, SmtpSettings
from ostiary.storage.sqla.apikey_repositories import SqlApiKeyStore, SqlServiceAccountStore
from ostiary.storage.sqla.engine import (
    ExternalWrites,
    WalCheckpointer,
    create_engine,
    is_sqlite,
    pool_capacity,
    unit_engine,
)
from ostiary.storage.sqla.invitation_repositories import SqlInvitationStore
from ostiary.storage.sqla.mfa_repositories import (
    SqlPasskeyStore,
    SqlRecoveryCodeStore,
    SqlTotpStore,
)
from ostiary.storage.sqla.oauth_repositories import (
    SqlAssertionReplayStore,
    SqlAuthorizationCodeStore,
    SqlClientStore,
    SqlConsentStore,
    SqlRefreshTokenStore,
    SqlRevocationStore,
)
from ostiary.storage.sqla.org_repositories import SqlOrgStore, SqlRbacStore
from ostiary.storage.sqla.policy_repositories import (
    SqlDecisionLogStore,
    SqlModelCatalogStore,
    SqlPolicyStore,
)
from ostiary.storage.sqla.repositories import (
    SqlAuditStore,
    SqlSessionStore,
    SqlSigningKeyStore,
    SqlUserStore,
)
from ostiary.storage.sqla.retention import SqlExpiredRows
from ostiary.storage.sqla.tables import (
    api_keys,
    authorization_codes,
    client_assertions,
    decision_log,
    org_invitations,
    refresh_families,
    revocations,
    sessions,
    totp_factors,
)
from ostiary.storage.sqla.uow import Connection, LazyConnection, connection_gate
from ostiary.storage.throttle import MemoryLoginThrottle, RedisLoginThrottle
from ostiary.web.email_links import EmailLinks
from ostiary.web.second_step import SecondStepTickets
from ostiary.web.webauthn_state import CeremonyStates

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from sqlalchemy import Table

    from ostiary.storage.redis.revocations import RedisRevocationBus

__all__ = ["AccountView", "InviteResult", "Runtime", "Unit"]

# What the account page lists for a user: sessions (newest first) and consents.
AccountView = tuple[list[Session], list[Consent]]

log = structlog.get_logger("ostiary.runtime")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class InviteResult:
    """An invitation just issued: its accept link (to show when no mail went out) and what
    became of its message: ``sent``, ``failed`` (``error`` says why; re-send it) or
    ``not_sent`` (the caller asked for none)."""

    invitation: Invitation
    link: str
    mail: str
    error: str | None = None


def build_mailer(settings: Settings, clock: Clock) -> tuple[Mailer | None, DevOutbox | None]:
    """SMTP when a host is set; the dev outbox in dev mode; otherwise none."""
    if settings.smtp_host:
        return (
            SmtpMailer(
                SmtpSettings(
                    host=settings.smtp_host,
                    port=settings.smtp_port,
                    sender=settings.smtp_from,
                    security=settings.smtp_security,
                    username=settings.smtp_username,
                    password=settings.smtp_password,
                    timeout=float(settings.smtp_timeout_seconds),
                )
            ),
            None,
        )
    if settings.dev_mode:
        outbox = DevOutbox(clock)
        return outbox, outbox
    return None, None


class Runtime:
    """Long-lived objects of one process: engine, Redis client, keys, caches."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        db = settings.db
        self.database_url = db.url
        self.engine = create_engine(db.url, echo=db.echo, pool_size=db.pool_size)
        self.unit_engine = unit_engine(self.engine)  # what units of work check out (uow.py)
        self.connection_gate = connection_gate(pool_capacity(self.engine))
        # Run by the server (web/app.py lifespan); CLI commands leave checkpoints to SQLite.
        self.wal_checkpointer = WalCheckpointer.for_engine(self.engine)
        redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
        # Redis modules are imported only when Redis is configured (6 MB a SQLite worker saves).
        self.redis: Redis | None = None
        self.redis_sessions: SessionStore | None = None
        self.revocation_bus: RedisRevocationBus | None = None
        if redis_url:
            from redis.asyncio import Redis

            from ostiary.storage.redis.revocations import RedisRevocationBus
            from ostiary.storage.redis.sessions import RedisSessionStore

            self.redis = Redis.from_url(redis_url)
            self.redis_sessions = RedisSessionStore(self.redis)
            self.revocation_bus = RedisRevocationBus(self.redis)
        secret = settings.secret_key_bytes()
        self.session_pepper = derive_key(secret, "ostiary/session-token")
        self.csrf_key = derive_key(secret, "ostiary/csrf")
        self.kek = derive_key(secret, "ostiary/signing-key-encryption")
        self.authorize_proof_key = derive_key(secret, "ostiary/authorize-proof")
        self.second_step = SecondStepTickets(derive_key(secret, "ostiary/second-step"))
        self.webauthn_states = CeremonyStates(derive_key(secret, "ostiary/webauthn-ceremony"))
        self.invitation_pepper = derive_key(secret, "ostiary/invitation")
        self.email_links = EmailLinks(derive_key(secret, "ostiary/email-verification"))
        self.mailer, self.dev_outbox = build_mailer(settings, self.clock)
        self.api_cursor_key = derive_key(secret, "ostiary/api-cursor")
        webauthn = settings.webauthn
        # None: passkeys are off (settings.webauthn_off says why; the pages say so).
        self.relying_party = (
            RelyingParty(webauthn.rp_id, webauthn.rp_name, webauthn.origins) if webauthn else None
        )
        self.mfa_keys = MfaKeys(
            seal=derive_key(secret, "ostiary/mfa-secret-encryption"),
            pepper=derive_key(secret, "ostiary/recovery-code-hmac"),
        )
        device_ttl = settings.throttle.known_device_ttl
        self.known_devices = (
            KnownDevices(derive_key(secret, "ostiary/known-device"), device_ttl)
            if device_ttl
            else None
        )
        self.hasher = PasswordHasher()
        throttle = settings.throttle
        self.throttle_redis: Redis | None = None
        self.throttle: LoginThrottle
        if redis_url:
            from redis.asyncio import BlockingConnectionPool, Redis

            # A pool of its own that queues rather than fails: a flood of sign-ins (an attack,
            # typically) waits its turn instead of taking the connections sessions need.
            pool = BlockingConnectionPool.from_url(redis_url, max_connections=32, timeout=10)
            self.throttle_redis = Redis(connection_pool=pool)
            self.throttle = RedisLoginThrottle(
                self.throttle_redis,
                account_failures=throttle.account_failures,
                ip_failures=throttle.ip_failures,
                window_seconds=throttle.window_seconds,
                key_secret=derive_key(secret, "ostiary/login-throttle-keys"),
            )
        else:
            self.throttle = MemoryLoginThrottle(
                account_failures=throttle.account_failures,
                ip_failures=throttle.ip_failures,
                window_seconds=throttle.window_seconds,
            )
        self.signers = SignerCache()
        self.verified_tokens = VerifiedTokens()
        self.clients_cache = ClientCache()
        self.jwks_fetcher = HttpJwksFetcher(settings.jwks_uri)
        self.revoked = RevocationSet()
        self.permission_cache = PermissionCache()
        # Decisions (features/policy/cache.py) cache subjects built from roles and groups: an
        # RBAC change moves both caches; a policy or catalog change moves the decision cache.
        self.decision_cache = DecisionCache()
        self.revoked.observers["rbac"] = self.rbac_changed
        self.revoked.observers["policy"] = self.decision_cache.invalidate
        # Organizations by id or slug (features/orgs/cache.py): ``org`` messages name one.
        self.org_cache = OrgCache()
        self.revoked.observers["org"] = self.org_cache.invalidate
        # The decision API's callers, verified (features/policy/callers.py): valid under the
        # stamps of the caches above, the key list and the revocation set, so never told.
        self.decision_callers = CallerCache()
        # The API-key seam (features/policy/ports.py): the apikeys feature replaces it.
        self.decision_log_policy = DecisionLogPolicy(
            settings.decision_log,
            settings.decision_log_sample_rate,
            timedelta(days=settings.decision_log_days),
        )
        # Decisions are logged in batches off the request path while the server runs it
        # (web/app.py); elsewhere (the CLI) inline.
        self.decision_log_buffer = DecisionLogBuffer(self._write_decisions)
        self.token_pepper = derive_key(secret, "ostiary/token-hmac")
        self.api_key_pepper = derive_key(secret, "ostiary/api-key-hmac")
        self.api_key_usage = UsageMarks()  # when this node last wrote each key's last_used_at
        self.api_key_cache = KeyCache()  # verified key rows (features/apikeys/cache.py)
        # Gateways' own keys (features/apikeys/callers.py): valid under the key cache's and the
        # permission cache's stamps and the clock, so never told.
        self.api_key_callers = KnownCallers()
        self.revoked.observers["api_key_row"] = self.api_key_cache.invalidate
        self.revoked.observers["user_row"] = self.user_row_changed
        tokens = settings.tokens
        self.oauth_policy = OAuthPolicy(
            issuer=settings.issuer or "http://127.0.0.1:8000",
            access_token_ttl=tokens.access_token_ttl,
            id_token_ttl=tokens.id_token_ttl,
            refresh_token_ttl=tokens.refresh_token_ttl,
            client_token_ttl_max=tokens.max_token_ttl,
            id_token_alg=tokens.id_token_alg,
            access_token_alg=tokens.access_token_alg,
            api_key_token_ttl=timedelta(seconds=settings.api_key_token_ttl_seconds),
        )
        s = settings.sessions
        self.session_policy = SessionPolicy(
            s.idle_timeout, s.absolute_timeout, s.touch_interval, s.max_per_user
        )
        # Browser hot path (features/cache.py): sessions by cookie, users, account page lists.
        self.user_generations = Generations()
        self.session_cache = UserScopedCache[Session](
            self.user_generations, max_age=max(1.0, s.touch_interval.total_seconds())
        )
        self.user_cache = UserScopedCache[User](self.user_generations)
        # Decision subjects named by user id (features/policy/cache.py): entries live less
        # than half the token horizon, for which a ``user`` revocation hides them.
        self.known_users = KnownUsers(
            self.user_generations,
            max_age=min(30.0, settings.tokens.max_token_ttl.total_seconds() / 2),
        )
        self.account_views = UserScopedCache[AccountView](self.user_generations)
        self.external_writes = ExternalWrites(self.engine) if is_sqlite(db.url) else None
        self._caught_up_version: int | None = None

    async def _write_decisions(self, entries: Sequence[LogEntry]) -> None:
        async with self.unit() as unit:
            await SqlDecisionLogStore(unit.conn).append_many(entries)

    def user_row_changed(self, user_id: str) -> None:
        self.known_users.discard(user_id)
        self.decision_cache.invalidate("*")

    def rbac_changed(self, key: str) -> None:
        self.permission_cache.invalidate(key)
        self.decision_cache.invalidate(key)

    def unit(self) -> UnitScope:
        """One transaction and the services bound to it (``async with rt.unit() as unit``);
        commits if the block succeeds."""
        return UnitScope(self)

    def rolled_back(self, unit: Unit) -> None:
        """Entries cached from a transaction's reads may describe writes that are being rolled
        back: drop them all (rare, and only costs misses)."""
        self.user_generations.clear()
        if unit.after_commit:
            self.permission_cache.clear()
            self.decision_cache.clear()
            self.api_key_cache.clear()
            self.org_cache.clear()

    def session_ended(self, session: Session) -> bool:
        """Revoked by id, or its user disabled after it started (on any node)."""
        return self.revoked.session_ended(session.sid, session.user_id, session.created_at)

    async def catch_up(self, unit: Unit) -> None:
        """Before answering from in-process state, take in what other processes committed.

        SQLite: when ``PRAGMA data_version`` moved (the CLI or another process wrote), drop
        the per-user caches and load new revocations, in the caller's transaction (a second
        unit could wait forever on the pool of one). PostgreSQL + Redis: nothing to do here;
        pub/sub and the poll keep the revocation set current.
        """
        probe = self.external_writes
        if probe is None:
            return
        version = probe.version()
        if version is not None and version == self._caught_up_version:
            return
        self.user_generations.clear()
        self.clients_cache.clear()
        self.api_key_cache.clear()
        self.org_cache.clear()
        await unit.revocation.sync()
        self._caught_up_version = version

    async def sync_revocations_forever(self, interval: float = 1.0) -> None:
        """Catch up with revocations written by other processes (CLI, replicas)."""
        while True:
            try:
                async with self.unit() as unit:
                    if self.external_writes is not None:
                        await self.catch_up(unit)  # a pragma; a query only after changes
                    else:
                        await unit.revocation.sync()
                self.revoked.prune(self.clock.now())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may blip; keep trying
                log.warning("revocation_sync_failed", error=type(exc).__name__)
            await asyncio.sleep(interval)

    async def purge_expired(self, *, max_batches: int = 1_000) -> dict[str, int]:
        """Delete expired records (features/retention), one transaction a batch, until none
        is left or ``max_batches`` ran (a backlog is finished by the next runs)."""
        total: dict[str, int] = {}
        pending: frozenset[str] | None = None  # the kinds that may have more
        for _ in range(max_batches):
            async with self.unit() as unit:
                deleted, more = await unit.retention.purge_batch(pending)
            for kind, count in deleted.items():
                total[kind] = total.get(kind, 0) + count
            if not more:
                break
            pending = frozenset(kind for kind, count in deleted.items() if count >= Unit.batch)
        return total

    async def purge_forever(self, interval: float) -> None:
        """Every ``interval`` seconds (after a random first wait, so replicas started together
        do not purge together), delete expired records."""
        await asyncio.sleep(random.uniform(0, interval))  # noqa: S311 (spreading, not secrecy)
        while True:
            try:
                deleted = await self.purge_expired()
                if any(deleted.values()):
                    log.info("expired_records_purged", **deleted)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may blip; the next run catches up
                log.warning("purge_failed", error=type(exc).__name__)
            await asyncio.sleep(interval)

    def invitation_link(self, token: str) -> str:
        return f"{self.oauth_policy.issuer}/invitations/{token}"

    async def invite(
        self,
        org_id: str,
        email: str,
        roles: list[str],
        *,
        actor: str | None,
        send: bool = True,
        authorized: bool = False,
    ) -> InviteResult:
        """Invite ``email`` (features/invitations) and mail the link: the invitation commits
        first, the mail goes out with no transaction open, and its outcome is recorded (and
        audited) in a second one. ``send=False`` (the CLI without a mailer) only issues the
        link. With ``send`` and no mailer, ``MailNotConfigured`` before anything is written."""
        if send and self.mailer is None:
            raise MailNotConfigured(
                "no mail server is configured (OSTIARY_SMTP_HOST): cannot send invitations"
            )
        async with self.unit() as unit:
            issued = await unit.invitations.create(
                org_id, email, roles, actor=actor, authorized=authorized
            )
        return await self._deliver(issued, actor=actor, send=send)

    async def resend_invitation(
        self,
        org_id: str,
        invitation_id: str,
        *,
        actor: str | None,
        send: bool = True,
        authorized: bool = False,
    ) -> InviteResult:
        """A new link for a pending invitation (the old one stops working), mailed again."""
        if send and self.mailer is None:
            raise MailNotConfigured(
                "no mail server is configured (OSTIARY_SMTP_HOST): cannot send invitations"
            )
        async with self.unit() as unit:
            issued = await unit.invitations.reissue(
                org_id, invitation_id, actor=actor, authorized=authorized
            )
        return await self._deliver(issued, actor=actor, send=send)

    async def _deliver(
        self, issued: IssuedInvitation, *, actor: str | None, send: bool
    ) -> InviteResult:
        invitation = issued.invitation
        link = self.invitation_link(issued.token)
        if not send or self.mailer is None:
            return InviteResult(invitation, link, "not_sent")
        async with self.unit() as unit:
            org = await unit.orgs.get(invitation.organization_id)
            inviter = None
            if actor is not None:
                user = await unit.accounts.get(actor)
                inviter = (user.name or None) if user is not None else None
        message = InvitationService.message(issued, org, link, inviter=inviter)
        error: str | None = None
        try:
            await self.mailer.send(message)
        except MailError as exc:
            error = str(exc)
            log.warning("invitation_mail_failed", invitation_id=invitation.id, error=error)
        async with self.unit() as unit:
            await unit.invitations.mail_sent(invitation, actor=actor, error=error)
        return InviteResult(invitation, link, "failed" if error else "sent", error)

    async def send_email_verification(self, user_id: str, email: str) -> str:
        """Mail ``email`` a link that verifies it (web/email_links.py), with no transaction
        open; the outcome is audited. ``sent``, ``failed`` or ``not_sent`` (no mailer)."""
        if self.mailer is None:
            return "not_sent"
        token = self.email_links.issue(user_id, email, self.clock.now())
        link = f"{self.oauth_policy.issuer}/account/email/verify?{urlencode({'token': token})}"
        message = MailMessage(
            to=email,
            subject="Confirm your e-mail address",
            text=(
                "Open this link, signed in to your account, to confirm that this address is "
                f"yours:\n{link}\n\nThe link works for 24 hours. If you did not change your "
                "e-mail address, ignore this message and check your account.\n"
            ),
            html=(
                "<p>Open this link, signed in to your account, to confirm that this address "
                f'is yours:</p><p><a href="{html.escape(link)}">Confirm my e-mail address</a>'
                "</p><p>The link works for 24 hours. If you did not change your e-mail "
                "address, ignore this message and check your account.</p>"
            ),
        )
        error: str | None = None
        try:
            await self.mailer.send(message)
        except MailError as exc:
            error = str(exc)
            log.warning("email_verification_mail_failed", error=error)
        async with self.unit() as unit:
            await unit.audit.record(
                "account.email.verification_mail",
                "failure" if error else "success",
                actor=user_id,
                target=user_id,
                details={"email": mask_email(email), **({"reason": error} if error else {})},
            )
        return "failed" if error else "sent"

    async def ensure_signing_key(self, interval: float = 1.0) -> None:
        """Create a first signing key for each enabled algorithm that has no usable one
        (issue 9, item 6: a fresh production database must issue tokens without a manual
        step; issue 10: one key per algorithm, OSTIARY_SIGNING_ALGS).

        Run by the server at start. Retries while the database is unreachable or not yet
        migrated (``ostiary migrate`` may run after the replicas start); returns once every
        algorithm has a key. Replicas starting together create exactly one key per algorithm
        (``KeyService.ensure_key``).
        """
        last_error = None
        while True:
            try:
                async with self.unit() as unit:
                    keys = await unit.keys.ensure_keys(actor="system")
                for key in keys:
                    log.info("signing_key_created", kid=key.kid, alg=key.alg)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # not reachable or not migrated yet: keep trying
                if type(exc).__name__ != last_error:  # one line per kind of failure, not per try
                    last_error = type(exc).__name__
                    log.warning("signing_key_bootstrap_failed", error=last_error)
            await asyncio.sleep(interval)

    async def close(self) -> None:
        self.hasher.close()
        if self.wal_checkpointer is not None:
            self.wal_checkpointer.close()
        await self.engine.dispose()
        if self.redis is not None:
            await self.redis.aclose()
        if self.throttle_redis is not None:
            await self.throttle_redis.aclose()


class PolicyKeys:
    """policy.ApiKeyDirectory over the API-key feature of one unit of work."""

    def __init__(self, keys: ApiKeyService) -> None:
        self._keys = keys

    async def api_key(self, org_id: str, key_id: str) -> ApiKeySubject | None:
        found = await self._keys.principal_of(org_id, key_id)
        if found is None:
            return None
        return ApiKeySubject(
            found.key_id, found.organization_id, found.owner_type, found.owner_id, found.permissions
        )

    async def service_account_active(self, org_id: str, account_id: str) -> bool:
        return await self._keys.service_account_active(org_id, account_id)


def _ended(
    conn: Connection, kind: str, table: Table, column: str, keep: timedelta
) -> RetentionRule:
    """Rows of ``table`` (keyed by ``id``) deleted ``keep`` after ``column`` was set (NULL: the
    row has not ended)."""
    only = table.c[column].is_not(None)
    return RetentionRule(
        kind, SqlExpiredRows(conn, table, key="id", expires_at=column, only=only), keep
    )


S = TypeVar("S")


class service(Generic[S]):  # lower case: a decorator, as functools.cached_property
    """A unit's service, built on its first use and kept in the unit's ``__dict__`` (which then
    answers every later read: a non-data descriptor is not consulted once the instance holds
    the name).

    ``functools.cached_property`` does the same, but on Python 3.11 takes a re-entrant lock on
    every first access; a unit is built per request and lives on one event loop, so each of
    its services is a first access and the lock was 28 % of building ``Unit.oauth``.
    """

    __slots__ = ("_build", "_name")

    def __init__(self, build: Callable[[Any], S]) -> None:
        self._build = build
        self._name = build.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> service[S]: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> S: ...

    def __get__(self, instance: object | None, owner: type | None = None) -> S | service[S]:
        if instance is None:
            return self
        value = self._build(instance)
        instance.__dict__[self._name] = value
        return value


class UnitScope:
    """``Runtime.unit()``: a :class:`Unit` over a lazily opened transaction (storage/sqla/uow.py,
    as ``transaction`` does), committed if the block succeeds and rolled back if it raises;
    then, after a commit, the unit's ``after_commit`` actions in order. A class rather than two
    nested generator-based context managers: every request enters one, and the generators'
    frames cost a few percent of the fastest endpoints."""

    __slots__ = ("_rt", "_unit")

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self._unit: Unit | None = None

    async def __aenter__(self) -> Unit:
        rt = self._rt
        self._unit = unit = Unit(rt, LazyConnection(rt.unit_engine, rt.connection_gate))
        return unit

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        unit = self._unit
        assert unit is not None
        self._unit = None
        conn = unit.conn
        if exc_type is not None:
            try:
                if conn.opened:
                    self._rt.rolled_back(unit)
            finally:
                unit.release()
                await conn.finish(commit=False)
            return
        unit.release()
        await conn.finish(commit=True)
        for action in unit.after_commit:
            await action()


class Unit:
    """Services over one transaction; built lazily so a request pays only for what it uses."""

    def __init__(self, runtime: Runtime, conn: LazyConnection) -> None:
        self._rt = runtime
        self.conn = conn
        self.settings = runtime.settings
        # Run by ``Runtime.unit`` once the transaction has committed, in order.
        self.after_commit: list[Callable[[], Awaitable[None]]] = []

    def release(self) -> None:
        """Drop the services built for this unit.

        Services that report back to the unit (``listener=self``) make each request's object
        graph a reference cycle, which only the cyclic GC would free: a refresh grant left
        about 25 such objects behind, and collecting them was most of the 3-4 ms GC pauses
        under load. Dropping the cached services breaks the cycle, so reference counting frees
        them when the unit ends. A service kept past the unit by its caller stays usable.
        """
        cached = self.__dict__
        for name in _SERVICES.intersection(cached):  # the few built, not all 20
            del cached[name]

    async def attempt(
        self,
        work: Callable[[], Awaitable[T]],
        *,
        action: str,
        actor: str | None = None,
        details: dict[str, object] | None = None,
    ) -> T | TenancyError:
        """Run a tenancy or RBAC use case so that a refusal leaves nothing of the attempt.

        ``work`` runs in a savepoint; a ``TenancyError`` rolls it back, is audited as a failure
        of ``action`` with its stable code (and the actor and organization when known), and is
        returned rather than raised, so that the unit still commits the audit event. Shared by
        the CLI (cli/_common.py ``run_tenancy``) and the management API (web/management.py).
        ``details`` (e.g. the organization, once ``work`` has resolved it) are read when the
        refusal is recorded.
        """
        try:
            async with self.conn.begin_nested():
                return await work()
        except TenancyError as exc:
            recorded: dict[str, object] = {**(details or {}), "code": exc.code}
            recorded["reason"] = exc.message[:200]
            await self.audit.record(action, "failure", actor=actor, details=recorded)
            return exc

    @service
    def audit(self) -> AuditTrail:
        return AuditTrail(SqlAuditStore(self.conn), self._rt.clock)

    @service
    def accounts(self) -> AccountService:
        rt = self._rt
        return AccountService(
            SqlUserStore(self.conn),
            rt.hasher,
            rt.throttle,
            self.audit,
            rt.clock,
            listener=self,
            cache=rt.user_cache,
            generations=rt.user_generations,
            known_devices=rt.known_devices,
        )

    @service
    def session_store(self) -> SessionStore:
        if self._rt.redis_sessions is not None:
            return self._rt.redis_sessions
        return SqlSessionStore(self.conn)

    @service
    def sessions(self) -> SessionService:
        rt = self._rt
        return SessionService(
            self.session_store,
            rt.session_pepper,
            rt.session_policy,
            self.audit,
            rt.clock,
            listener=self,
            cache=rt.session_cache,
            generations=rt.user_generations,
            ended=rt.session_ended,
        )

    async def user_disabled(self, user_id: str) -> None:
        """A disabled user's sessions, refresh families and access tokens end at once."""
        await self.sessions.revoke_all(user_id, actor="system", reason="user_disabled")
        await self.oauth.user_disabled(user_id)
        await self.api_keys_changed([owner_mark("user", user_id)])  # the user's API keys

    async def user_changed(self, user_id: str) -> None:
        """accounts.AccountListener: a user's e-mail address changed. Decisions' subjects carry
        it (``principal.email``), in every organization: on every node, the user's entry in
        ``known_users`` goes and every decision subject is rebuilt (``user_row`` kind)."""
        await self._invalidate("user_row", [user_id], self._rt.user_row_changed)

    async def end_user_sessions(
        self, user_id: str, *, actor: str | None, reason: str
    ) -> tuple[int, int]:
        """End every session of a user and every refresh family, offline ones included, with
        the access tokens issued so far (ASVS 5.0 V7.4.3, V7.4.5): (sessions, families)."""
        families = await self.oauth.end_user_grants(user_id, reason)  # first: counts them all
        removed = await self.sessions.revoke_all(user_id, actor=actor, reason=reason)
        await self.audit.record(
            "user.end_sessions",
            "success",
            actor=actor,
            target=user_id,
            details={"sessions": len(removed), "refresh_families": families, "reason": reason},
        )
        return len(removed), families

    async def sessions_ended(self, sids: list[str]) -> None:
        """Sessions ended on purpose: their refresh families and access tokens die with them."""
        await self.oauth.sessions_ended(sids)

    @service
    def mfa(self) -> MfaService:
        rt = self._rt
        return MfaService(
            SqlTotpStore(self.conn),
            SqlRecoveryCodeStore(self.conn),
            SqlPasskeyStore(self.conn),
            rt.mfa_keys,
            rt.throttle,
            self.audit,
            rt.clock,
            issuer_name=rt.settings.mfa_issuer_name,
            enrollment_ttl=timedelta(seconds=rt.settings.mfa_enrollment_seconds),
        )

    @service
    def passkeys(self) -> PasskeyService:
        """Passkeys; ceremonies raise ``PasskeysOff`` when ``runtime.relying_party`` is None."""
        rt = self._rt
        return PasskeyService(
            SqlPasskeyStore(self.conn), rt.relying_party, rt.throttle, self.audit, rt.clock
        )

    @service
    def spent_tickets(self) -> SqlAssertionReplayStore:
        """Second-step tickets already used (web/second_step.py): the single-use table of
        client assertion ids, with its own key prefix, expiry and retention rule."""
        return SqlAssertionReplayStore(self.conn)

    @service
    def clients(self) -> ClientService:
        rt = self._rt
        return ClientService(
            SqlClientStore(self.conn),
            rt.token_pepper,
            self.audit,
            rt.clock,
            rt.clients_cache,
            jwks_uri_policy=rt.settings.jwks_uri,
            token_ttl_max=rt.settings.tokens.max_token_ttl,
            signing_algs=rt.settings.tokens.signing_algs,
        )

    @service
    def client_assertions(self) -> ClientAssertionVerifier:
        rt = self._rt
        issuer = rt.oauth_policy.issuer
        return ClientAssertionVerifier(
            audiences=(f"{issuer}/token", issuer),
            replay=SqlAssertionReplayStore(self.conn),
            clock=rt.clock,
            fetcher=rt.jwks_fetcher,
        )

    @service
    def revocation(self) -> RevocationService:
        rt = self._rt
        return RevocationService(
            SqlRevocationStore(self.conn),
            rt.revoked,
            rt.clock,
            horizon=rt.settings.tokens.max_token_ttl,
            bus=rt.revocation_bus,
        )

    @service
    def oauth(self) -> OAuthService:
        rt = self._rt

        def context() -> GrantContext:  # when a grant (or a refresh token) needs it
            return GrantContext(
                codes=SqlAuthorizationCodeStore(self.conn),
                refresh=SqlRefreshTokenStore(self.conn),
                revocation=self.revocation,
                minter=TokenMinter(self.keys, rt.oauth_policy.issuer),
                users=AccountDirectory(self),
                policy=rt.oauth_policy,
                pepper=rt.token_pepper,
                clock=rt.clock,
                orgs=self,
                api_keys=lambda: self.api_keys,
            )

        return OAuthService(
            context,
            SqlConsentStore(self.conn),
            self.keys,
            generations=rt.user_generations,
            access_tokens=self.access_tokens,
        )

    @service
    def access_tokens(self) -> AccessTokens:
        """Our JWTs checked, without the grant machinery of :attr:`oauth` (bearer-only routes)."""
        rt = self._rt
        return AccessTokens(
            self.keys, rt.revoked, rt.clock, rt.oauth_policy.issuer, rt.verified_tokens
        )

    @service
    def orgs(self) -> OrgService:
        rt = self._rt
        return OrgService(
            SqlOrgStore(self.conn),
            self.audit,
            rt.clock,
            listener=self,
            cache=rt.org_cache,
            invalidator=self,
        )

    @service
    def invitations(self) -> InvitationService:
        rt = self._rt
        return InvitationService(
            SqlInvitationStore(self.conn),
            self.orgs,
            self.rbac,
            self.audit,
            rt.clock,
            pepper=rt.invitation_pepper,
            ttl=timedelta(seconds=rt.settings.invitation_ttl_seconds),
        )

    @service
    def permissions(self) -> EffectivePermissions:
        """Effective permissions alone (the unit's ``rbac`` shares this reader)."""
        return EffectivePermissions(SqlRbacStore(self.conn), self._rt.permission_cache)

    @service
    def rbac(self) -> RbacService:
        rt = self._rt
        return RbacService(
            SqlRbacStore(self.conn),
            self.orgs,
            self.audit,
            rt.clock,
            rt.permission_cache,
            self,
            self.permissions,
        )

    async def org_claims(
        self, org_id: str, user_id: str, *, roles: bool, amr: list[str]
    ) -> dict[str, Any] | None:
        """oauth.OrgDirectory (org-scoped clients' tokens): built only when a grant needs it,
        so other grants pay nothing for organizations."""
        return await OrgClaims(self.orgs, self.rbac).org_claims(
            org_id, user_id, roles=roles, amr=amr
        )

    @service
    def models(self) -> ModelCatalog:
        return ModelCatalog(
            SqlModelCatalogStore(self.conn), self.orgs, self.audit, self._rt.clock, self
        )

    @service
    def policies(self) -> PolicyService:
        rt = self._rt
        # The services as functions: a decision answered from the caches builds none of them.
        return PolicyService(
            SqlPolicyStore(self.conn),
            SqlDecisionLogStore(self.conn),
            lambda: self.orgs,
            lambda: self.rbac,
            lambda: self.models,
            self,
            lambda: PolicyKeys(self.api_keys),
            lambda: self.audit,
            rt.clock,
            rt.decision_cache,
            self,
            rt.decision_log_policy,
            rt.decision_log_buffer,
        )

    async def find_user(self, ref: str) -> tuple[str, str] | None:
        """policy.UserDirectory: an enabled user by id or e-mail address. By id, through the
        node's ``known_users`` (features/policy/cache.py says why a disabled user is still
        refused at once); by e-mail address always read (an address can change hands)."""
        if "@" in ref:
            try:
                user = await self.accounts.get_by_email(ref)
            except UnknownUser:
                return None
        elif len(ref) <= 36:
            known = self._rt.known_users
            # A user revocation (a disabling, maybe not committed yet): read, never cache.
            unsure = self._rt.revoked.holds("user", ref)
            if unsure:
                known.discard(ref)
            else:
                hit = known.get(ref)
                if hit is not None:
                    return hit
            stamp = known.stamp(ref)
            found = await self.accounts.get(ref)
            if found is None or found.disabled:
                known.discard(ref)
                return None
            if not unsure:
                known.put(ref, (found.id, found.email), stamp)
            return found.id, found.email
        else:
            return None
        return None if user.disabled else (user.id, user.email)

    async def decision_data_changed(self, org_id: str) -> None:
        """models/policy invalidator: the decision cache of every node (``policy`` kind).
        ``org_id`` "" (a deployment-wide change) moves every organization."""
        rt = self._rt
        await self._invalidate(
            "policy", [f"{org_id}|*" if org_id else "*"], rt.decision_cache.invalidate
        )

    async def api_keys_changed(self, marks: Sequence[str]) -> None:
        """apikeys.KeyChanges: the key rows cached on every node that depend on ``marks``
        (features/apikeys/cache.py; ``api_key_row`` kind)."""
        await self._invalidate("api_key_row", marks, self._rt.api_key_cache.invalidate)

    async def _invalidate(
        self, kind: RevocationKind, keys: Sequence[str], apply: Callable[[str], None]
    ) -> None:
        """An in-process cache's entries are stale on every node: a ``revocations`` row per key
        now (read by other nodes' poll once committed), this node's entries dropped now and
        again after the commit (an entry computed meanwhile from the old rows), the other nodes
        told by pub/sub after the commit. Publishing only after the commit matters: a node told
        earlier could read the old rows again and cache them as current."""
        rt = self._rt
        now = rt.clock.now()
        expires = now + rt.settings.tokens.max_token_ttl  # every node polls well within it
        store = SqlRevocationStore(self.conn)
        for key in keys:
            await store.add(kind, key, now, expires)
            apply(key)

        async def announce() -> None:
            for key in keys:
                apply(key)
            bus = rt.revocation_bus
            if bus is None:
                return
            try:
                for key in keys:
                    await bus.publish(kind, key, now, expires)
            except Exception as exc:  # the poll of the revocations table still carries it
                log.warning(
                    "cache_invalidation_publish_failed", kind=kind, error=type(exc).__name__
                )

        self.after_commit.append(announce)

    async def organization_changed(self, org_id: str) -> None:
        """orgs.OrgInvalidator: the organization cache of every node (``org`` kind), and its
        decisions' subjects, which carry the organization's plan (``policy`` kind)."""
        await self._invalidate("org", [org_id], self._rt.org_cache.invalidate)
        await self.decision_data_changed(org_id)

    async def member_leaving(self, org_id: str, user_id: str, *, actor: str | None) -> None:
        """orgs.MembershipListener: RBAC drops the member's roles and groups (or refuses to
        lose the last owner); the member's API keys in the organization are revoked."""
        await self.rbac.member_leaving(org_id, user_id, actor=actor)
        await self.api_keys.owner_removed(org_id, ("user", user_id), actor=actor)

    @service
    def api_keys(self) -> ApiKeyService:
        rt = self._rt
        return ApiKeyService(
            SqlServiceAccountStore(self.conn),
            SqlApiKeyStore(self.conn),
            self.orgs,
            self.rbac,
            self,
            self.audit,
            rt.clock,
            pepper=rt.api_key_pepper,
            verifier=self.api_key_verifier,
            exchanged=self,
            changes=self,
        )

    @service
    def api_key_verifier(self) -> KeyVerifier:
        """Verification of presented keys alone: what the verify route, the management API
        and AuthZEN need of the feature (features/apikeys/verification.py)."""
        rt = self._rt
        return KeyVerifier(
            SqlApiKeyStore(self.conn),
            self.permissions,
            rt.clock,
            pepper=rt.api_key_pepper,
            usage=rt.api_key_usage,
            cache=rt.api_key_cache,
            callers=rt.api_key_callers,
        )

    async def api_keys_stopped(self, key_ids: Sequence[str]) -> None:
        """apikeys.ExchangedTokens: the access tokens exchanged for these keys are revoked
        on every node (introspection, userinfo)."""
        for key_id in key_ids:
            await self.revocation.revoke("api_key", key_id)

    async def user_active(self, user_id: str) -> bool:
        """apikeys.UserStatus: the user exists and is not disabled (read, not cached: a
        disabled user's keys stop at once on every node)."""
        user = await self.accounts.get(user_id)
        return user is not None and not user.disabled

    async def project_deleting(self, org_id: str, project_id: str, *, actor: str | None) -> None:
        """orgs.MembershipListener: the project's service accounts are deleted (their keys
        revoked), then RBAC drops the project's roles and assignments."""
        await self.api_keys.project_deleting(org_id, project_id, actor=actor)
        await self.rbac.project_deleting(org_id, project_id, actor=actor)

    async def organization_deleting(self, org_id: str, *, actor: str | None) -> None:
        """orgs.MembershipListener: every node forgets the organization's permissions and its
        cached API keys (the rows go with the organization, through their foreign keys)."""
        await self.rbac.organization_deleting(org_id, actor=actor)
        await self.api_keys_changed([org_mark(org_id)])

    async def permissions_changed(
        self, org_id: str, principals: Collection[Principal] | None
    ) -> None:
        """rbac.PermissionInvalidator: the permission and decision caches of every node, for
        what the change touches (``rbac`` kind)."""
        keys = (
            [invalidation_key(org_id, None)]
            if principals is None
            else sorted({invalidation_key(org_id, p) for p in principals})
        )
        await self._invalidate("rbac", keys, self._rt.rbac_changed)

    batch = 1_000  # rows a retention batch deletes of each kind, in one transaction

    @service
    def retention(self) -> RetentionService:
        """What expires, and how long past expiry each kind still guards something
        (features/retention/service.py)."""
        conn = self.conn
        replay_window = self._rt.settings.tokens.max_token_ttl
        rules = [
            RetentionRule("revocations", SqlExpiredRows(conn, revocations, key="id")),
            RetentionRule(
                "authorization_codes",
                SqlExpiredRows(conn, authorization_codes, key="code_hash"),
                replay_window,
            ),
            RetentionRule(
                "refresh_families",
                SqlExpiredRows(conn, refresh_families, key="family_id"),
                replay_window,
            ),
            RetentionRule("client_assertions", SqlExpiredRows(conn, client_assertions, key="key")),
            RetentionRule("decision_log", SqlExpiredRows(conn, decision_log, key="id")),
            # Authenticator apps set up and never confirmed: their time runs from created_at
            # (features/mfa/service.py, OSTIARY_MFA_ENROLLMENT_SECONDS).
            RetentionRule(
                "totp_enrollments",
                SqlExpiredRows(
                    conn,
                    totp_factors,
                    key="user_id",
                    expires_at="created_at",
                    only=totp_factors.c.confirmed_at.is_(None),
                ),
                timedelta(seconds=self._rt.settings.mfa_enrollment_seconds),
            ),
        ]
        # Invitations: a week after they expired (pending) or were accepted or revoked, so
        # that a link opened late still gets "expired" or "already used", not "unknown".
        rules.append(
            RetentionRule(
                "invitations",
                SqlExpiredRows(
                    conn,
                    org_invitations,
                    key="id",
                    only=org_invitations.c.status == "pending",
                ),
                timedelta(days=7),
            )
        )
        rules.append(
            _ended(conn, "ended_invitations", org_invitations, "ended_at", timedelta(days=7))
        )
        # API keys: KEEP_ENDED_KEYS after they were revoked or expired, listed as such meanwhile
        # (the audit trail keeps their story after that).
        rules.append(_ended(conn, "revoked_api_keys", api_keys, "revoked_at", KEEP_ENDED_KEYS))
        rules.append(_ended(conn, "expired_api_keys", api_keys, "expires_at", KEEP_ENDED_KEYS))
        if self._rt.redis_sessions is None:  # Redis expires its own sessions
            rules.append(RetentionRule("sessions", SqlExpiredRows(conn, sessions, key="sid")))
        return RetentionService(rules, self._rt.clock, batch=self.batch)

    @service
    def keys(self) -> KeyService:
        rt = self._rt
        tokens = rt.settings.tokens
        return KeyService(
            SqlSigningKeyStore(self.conn),
            rt.kek,
            rt.clock,
            max_token_ttl=tokens.max_token_ttl,
            publish_lead=tokens.key_publish_lead,
            signers=rt.signers,
            audit=self.audit,
            algs=tokens.signing_algs,
        )


# The services a unit builds and caches (what ``Unit.release`` drops).
_SERVICES = frozenset(name for name, value in vars(Unit).items() if isinstance(value, service))
