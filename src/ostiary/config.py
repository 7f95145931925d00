"""Settings: one pydantic-settings object read from ``OSTIARY_*`` variables and ``.env``.

Nothing here is built at import time; :func:`load_settings` is called by the CLI and by
``create_app``. Secrets are ``SecretStr`` so that they never print by accident.

Flat environment names are the contract scripts rely on (``OSTIARY_DATA_DIR``,
``OSTIARY_DATABASE_URL``, ``OSTIARY_REDIS_URL``, ``OSTIARY_SECRET_KEY``, ``OSTIARY_ISSUER``);
the slices group them for the code that uses them.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ostiary.protocol.destinations import DestinationPolicy, is_loopback_host
from ostiary.protocol.jose import SUPPORTED_ALGS, Alg

__all__ = ["ConfigError", "Settings", "load_settings"]

SECRET_KEY_FILE = "secret.key"  # noqa: S105 (a file name, not a secret)


class ConfigError(ValueError):
    """The configuration cannot run a server; the message is one line for the operator."""


@dataclass(frozen=True, slots=True)
class DatabaseSlice:
    url: str
    echo: bool
    pool_size: int


@dataclass(frozen=True, slots=True)
class SessionSlice:
    idle_timeout: timedelta
    absolute_timeout: timedelta
    touch_interval: timedelta
    max_per_user: int
    cookie_name: str
    cookie_secure: bool


@dataclass(frozen=True, slots=True)
class TokenSlice:
    access_token_ttl: timedelta
    id_token_ttl: timedelta
    refresh_token_ttl: timedelta
    max_token_ttl: timedelta
    key_publish_lead: timedelta
    signing_algs: tuple[Alg, ...]
    id_token_alg: Alg
    access_token_alg: Alg
    jwks_max_age: int


@dataclass(frozen=True, slots=True)
class WebAuthnSlice:
    """The relying party passkeys are made for (WebAuthn Level 3 section 5.4.2, 7.1 step 9)."""

    rp_id: str  # a registrable domain, never an IP address
    rp_name: str
    origins: tuple[str, ...]  # the exact values clientDataJSON.origin may hold


@dataclass(frozen=True, slots=True)
class ThrottleSlice:
    account_failures: int
    ip_failures: int
    window_seconds: int
    known_device_ttl: timedelta | None  # None: no known-device cookies
    device_cookie_name: str


class Settings(BaseSettings):
    """Every setting of a deployment. Field ``x`` is read from ``OSTIARY_X``."""

    model_config = SettingsConfigDict(
        env_prefix="OSTIARY_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Path("./ostiary-data")
    issuer: str | None = None
    secret_key: SecretStr | None = None
    database_url: SecretStr | None = None
    database_echo: bool = False
    # Connections a worker's requests hold at once (PostgreSQL; SQLite uses one). Requests
    # beyond it wait their turn, first come first served: size it to what the database's
    # cores serve, not to the number of concurrent clients.
    database_pool_size: int = Field(default=10, ge=1, le=500)
    redis_url: SecretStr | None = None
    dev_mode: bool = False

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = True
    access_log: bool = True  # one JSON line per HTTP request, at level info

    session_idle_minutes: int = Field(default=60 * 24, ge=1)
    session_absolute_hours: int = Field(default=24 * 14, ge=1)
    session_touch_seconds: int = Field(default=60, ge=1)
    session_max_per_user: int = Field(default=50, ge=1, le=10_000)

    access_token_ttl_seconds: int = Field(default=300, ge=30, le=86400)
    id_token_ttl_seconds: int = Field(default=3600, ge=30, le=86400)
    # Access tokens issued by the API-key token exchange (RFC 8693): short, never past the
    # key's own expiry, and never past client_token_ttl_max_seconds.
    api_key_token_ttl_seconds: int = Field(default=300, ge=30, le=86400)
    # The longest access or ID token lifetime a client may be registered with (`clients create
    # --access-token-ttl/--id-token-ttl`), or the global one if longer; tokens of clients
    # registered with more before it was lowered get that. So it bounds every token's life
    # (max_token_ttl), hence how long revocations are kept and retired keys stay in JWKS.
    client_token_ttl_max_seconds: int = Field(default=86400, ge=30, le=86400)
    refresh_token_ttl_days: int = Field(default=30, ge=1, le=3650)
    key_publish_lead_seconds: int = Field(default=600, ge=0)
    # The JWS algorithms tokens are signed with, comma-separated: each has a key of its own,
    # created at start, rotated with `ostiary keys rotate` and published in JWKS.
    signing_algs: str = ",".join(SUPPORTED_ALGS)
    # Defaults for clients registered without `--id-token-alg` / `--access-token-alg`. ID
    # tokens: RS256, the one algorithm every relying party accepts (OpenID Connect Core 1.0
    # section 15.1; several accept nothing else). Access tokens: ES256, cheaper to sign and
    # verified by our own resource servers against JWKS.
    id_token_signing_alg: Alg = "RS256"  # noqa: S105 (an algorithm name)
    access_token_signing_alg: Alg = "ES256"  # noqa: S105
    # Deprecated (one algorithm for every token): when set, the default of both the above.
    signing_alg: Alg | None = None
    jwks_max_age_seconds: int = Field(default=300, ge=0, le=86400)

    # A client's jwks_uri may reach loopback, private, link-local and other non-public
    # addresses; may use http for a loopback host. Unset: true in dev mode, false otherwise.
    jwks_uri_allow_private: bool | None = None
    jwks_uri_allow_http_loopback: bool | None = None

    login_account_failures: int = Field(default=10, ge=1)
    login_ip_failures: int = Field(default=100, ge=1)
    login_window_seconds: int = Field(default=900, ge=1)
    # A browser that signed in to an account holds a signed cookie for this long (refreshed at
    # each sign-in) and is throttled apart from the account's shared bucket; 0 turns it off.
    login_known_device_days: int = Field(default=90, ge=0, le=3650)
    # Peers whose X-Forwarded-For / X-Forwarded-Proto are believed (comma-separated IPs or
    # CIDRs; empty: none). Loopback by default, as uvicorn's own default: a reverse proxy on
    # the same host works out of the box, and nobody else can reach a loopback address. A load
    # balancer elsewhere must be listed, or every user shares its address's throttle bucket.
    forwarded_allow_ips: str = "127.0.0.1,::1"

    shutdown_grace_seconds: int = Field(default=20, ge=0, le=600)
    # `ostiary serve` worker processes; 0: one per core the process may run on when Redis is
    # configured, else one (cli/server.py says why a shared store is needed for more).
    workers: int = Field(default=0, ge=0, le=256)

    # The name authenticator apps show beside a TOTP entry (the otpauth:// URI's issuer).
    mfa_issuer_name: str = Field(default="Ostiary", min_length=1, max_length=64)
    # Every user needs a second factor: one without is sent to set it up after the password,
    # and /authorize issues nothing for a session signed in without one.
    mfa_required: bool = False
    # Sensitive changes (second factors on /account/security, the password, the e-mail
    # address) need a sign-in at most this old; an older one is asked to sign in again first
    # (issue 11 section 4, ASVS 5.0 V6.2 re-authentication; web/reauth.py).
    reauth_seconds: int = Field(default=600, ge=0, le=86400)
    # Deprecated name of the above (it covered second factors only); still honoured when
    # OSTIARY_REAUTH_SECONDS is not set.
    mfa_reauth_seconds: int | None = Field(default=None, ge=0, le=86400)
    # An authenticator app set up but not confirmed with a code within this time cannot be
    # confirmed any more (the user starts again), and the purge deletes it.
    mfa_enrollment_seconds: int = Field(default=900, ge=60, le=86400)

    # Passkeys (WebAuthn): the relying party id (a domain: default the issuer's host), the
    # origins a ceremony may run on (comma-separated; default the issuer's origin) and the name
    # authenticators show (default OSTIARY_MFA_ISSUER_NAME). When the issuer cannot carry
    # passkeys (an IP address, or plain http on a name that is not localhost) and neither of
    # the first two is set, passkeys are off and the pages say so.
    webauthn_rp_id: str | None = Field(default=None, max_length=253)
    webauthn_origins: str | None = None
    webauthn_rp_name: str | None = Field(default=None, min_length=1, max_length=64)

    # Every node deletes expired revocations, codes, refresh families, sessions and assertion
    # ids this often (features/retention); 0: never (run `ostiary purge` from a scheduler).
    purge_interval_seconds: int = Field(default=900, ge=0, le=86400)

    # Outgoing mail (invitations): an SMTP server. Unset host: `ostiary dev` keeps messages
    # in an in-memory outbox shown at /dev/mail; production refuses to invite by e-mail.
    smtp_host: str | None = Field(default=None, max_length=253)
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    # starttls (RFC 3207, port 587), tls (implicit TLS, RFC 8314, port 465) or none (a local
    # relay only).
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_from: str = Field(default="Ostiary <no-reply@localhost>", max_length=320)
    smtp_timeout_seconds: int = Field(default=20, ge=1, le=300)
    # How long an invitation's link can be used (default 7 days).
    invitation_ttl_seconds: int = Field(default=7 * 86400, ge=300, le=90 * 86400)
    # AuthZEN decisions (issue 13) go to the decision log: "full" (every one), "sampled" (every
    # deny, as OWASP ASVS 4.0 V7.2.2 asks, and a share of the permits,
    # OSTIARY_DECISION_LOG_SAMPLE_RATE) or "off". Logged decisions are kept this
    # many days (the purge deletes older ones); `policies dry-run` replays them.
    decision_log: Literal["off", "sampled", "full"] = "full"
    decision_log_sample_rate: float = Field(default=0.1, ge=0.0, le=1.0)
    decision_log_days: int = Field(default=7, ge=1, le=365)

    # `ostiary serve` refuses an http:// issuer on a host that is not loopback (passwords,
    # codes and tokens in clear text, RFC 9700 section 2.6 / OAuth 2.1 section 1.5) unless
    # this is set, e.g. for a closed test network.
    allow_insecure_issuer: bool = False

    # Swagger UI at /docs (its scripts come from a CDN, pinned with SRI, under a CSP): unset,
    # on in dev mode only. /openapi.json is served either way.
    api_docs: bool | None = None
    # Who may read /metrics: comma-separated addresses or CIDRs (e.g. "127.0.0.1,10.0.0.0/8"),
    # matched against the client address (after trusted proxy headers). Unset: anyone.
    metrics_allow_ips: str | None = None

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _forwarded_allow_ips_are_addresses(cls, value: str) -> str:
        # uvicorn takes a malformed entry as a literal that never matches: refuse it here
        # rather than silently trusting nobody (or, for "*", everybody).
        # Strict (no host bits): uvicorn parses entries strictly too.
        _networks(value, strict=True, hint=" (write 0.0.0.0/0,::/0 to trust every peer)")
        return ",".join(entry.strip() for entry in value.split(",") if entry.strip())

    @field_validator("signing_algs")
    @classmethod
    def _signing_algs_are_supported(cls, value: str) -> str:
        algs = [entry.strip() for entry in value.split(",") if entry.strip()]
        unknown = [alg for alg in algs if alg not in SUPPORTED_ALGS]
        if unknown or not algs:
            raise ValueError(f"list one or more of {', '.join(SUPPORTED_ALGS)}")
        return ",".join(dict.fromkeys(algs))

    @model_validator(mode="after")
    def _deprecated_reauth_name(self) -> Settings:
        if self.mfa_reauth_seconds is not None and "reauth_seconds" not in self.model_fields_set:
            self.reauth_seconds = self.mfa_reauth_seconds
        return self

    @model_validator(mode="after")
    def _default_algs_are_enabled(self) -> Settings:
        if self.signing_alg is not None:
            for name in ("id_token_signing_alg", "access_token_signing_alg"):
                if name not in self.model_fields_set:
                    setattr(self, name, self.signing_alg)
        enabled = self.signing_algs.split(",")
        for name in ("id_token_signing_alg", "access_token_signing_alg"):
            if getattr(self, name) not in enabled:
                raise ValueError(
                    f"OSTIARY_{name.upper()}={getattr(self, name)} is not in OSTIARY_SIGNING_ALGS"
                )
        return self

    @field_validator("issuer")
    @classmethod
    def _issuer_is_https_or_local(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("issuer must be an absolute http(s) URL")
        if parts.query or parts.fragment:
            # OpenID Connect Discovery 1.0 section 3: no query or fragment in the issuer.
            raise ValueError("issuer must not have a query or fragment")
        return value.rstrip("/")

    @field_validator("webauthn_rp_id")
    @classmethod
    def _rp_id_is_a_domain(cls, value: str | None) -> str | None:
        if value is None:
            return None
        problem = _rp_id_problem(value.strip().lower())
        if problem:
            raise ValueError(problem)
        return value.strip().lower()

    @field_validator("webauthn_origins")
    @classmethod
    def _origins_are_secure(cls, value: str | None) -> str | None:
        if value is None:
            return None
        origins = [entry.strip() for entry in value.split(",") if entry.strip()]
        if not origins:
            raise ValueError("list one or more origins, e.g. https://id.example.com")
        for origin in origins:
            problem = _origin_problem(origin)
            if problem:
                raise ValueError(f"{origin!r}: {problem}")
        return ",".join(dict.fromkeys(o.rstrip("/") for o in origins))

    @model_validator(mode="after")
    def _origins_belong_to_rp_id(self) -> Settings:
        # Only settings an operator wrote are refused; defaults derived from an issuer that
        # cannot carry passkeys turn them off instead (the ``webauthn`` property).
        if self.webauthn_rp_id is None and self.webauthn_origins is None:
            return self
        rp = _relying_party(self)
        if isinstance(rp, str):
            raise ValueError(f"OSTIARY_WEBAUTHN_ORIGINS / OSTIARY_WEBAUTHN_RP_ID: {rp}")
        return self

    @field_validator("metrics_allow_ips")
    @classmethod
    def _metrics_networks_parse(cls, value: str | None) -> str | None:
        if value is not None:
            _networks(value)  # ValueError names the entry that is not an address or CIDR
        return value

    # -- derived values ------------------------------------------------------------------

    @property
    def api_docs_enabled(self) -> bool:
        return self.dev_mode if self.api_docs is None else self.api_docs

    @cached_property
    def metrics_networks(self) -> tuple[IPNetwork, ...] | None:
        """The networks allowed to read /metrics; None: no restriction."""
        return None if self.metrics_allow_ips is None else _networks(self.metrics_allow_ips)

    def effective_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'ostiary.db').resolve()}"

    def secret_key_bytes(self) -> bytes:
        """The deployment secret: from ``OSTIARY_SECRET_KEY`` or ``DATA_DIR/secret.key``."""
        raw: str | None = None
        if self.secret_key is not None:
            raw = self.secret_key.get_secret_value()
        else:
            path = self.data_dir / SECRET_KEY_FILE
            if path.is_file():
                raw = path.read_text(encoding="ascii").strip()
        if not raw:
            raise ConfigError(
                "no secret key: set OSTIARY_SECRET_KEY or create it with `ostiary dev`"
            )
        try:
            # Leniently, as ever: an operator's key may be padded (`ostiary dev` writes it so),
            # in the standard alphabet (`openssl rand -base64 32`) or not canonical (typed by
            # hand); signed values are strict (protocol/signed_fields.py), a setting need not be.
            key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        except (binascii.Error, ValueError) as exc:
            raise ConfigError("OSTIARY_SECRET_KEY is not base64url") from exc
        if len(key) < 32:
            raise ConfigError("OSTIARY_SECRET_KEY must hold at least 32 random bytes")
        return key

    def require_issuer(self) -> str:
        """The issuer a production server may run with: https, or http on a loopback host."""
        if not self.issuer:
            raise ConfigError("no issuer: set OSTIARY_ISSUER to the public https URL")
        parts = urlsplit(self.issuer)
        if (
            parts.scheme == "http"
            and not is_loopback_host(parts.hostname or "")
            and not self.allow_insecure_issuer
        ):
            raise ConfigError(
                f"OSTIARY_ISSUER {self.issuer} is plain http on a host that is not loopback: "
                "use https, or set OSTIARY_ALLOW_INSECURE_ISSUER=true"
            )
        return self.issuer

    @cached_property
    def db(self) -> DatabaseSlice:
        return DatabaseSlice(
            url=self.effective_database_url(),
            echo=self.database_echo,
            pool_size=self.database_pool_size,
        )

    @cached_property
    def sessions(self) -> SessionSlice:
        secure = bool(self.issuer and self.issuer.startswith("https://"))
        return SessionSlice(
            idle_timeout=timedelta(minutes=self.session_idle_minutes),
            absolute_timeout=timedelta(hours=self.session_absolute_hours),
            touch_interval=timedelta(seconds=self.session_touch_seconds),
            max_per_user=self.session_max_per_user,
            # RFC 6265bis section 4.1.3.2: __Host- needs Secure, Path=/ and no Domain.
            cookie_name="__Host-ostiary_session" if secure else "ostiary_session",
            cookie_secure=secure,
        )

    @cached_property
    def tokens(self) -> TokenSlice:
        # Every access and ID token lives at most this long: a global TTL, or a client's own,
        # which registration refuses and minting clamps above this (grants/base.OAuthPolicy).
        longest = max(
            self.access_token_ttl_seconds,
            self.id_token_ttl_seconds,
            self.client_token_ttl_max_seconds,
        )
        return TokenSlice(
            access_token_ttl=timedelta(seconds=self.access_token_ttl_seconds),
            id_token_ttl=timedelta(seconds=self.id_token_ttl_seconds),
            refresh_token_ttl=timedelta(days=self.refresh_token_ttl_days),
            max_token_ttl=timedelta(seconds=longest),
            key_publish_lead=timedelta(seconds=self.key_publish_lead_seconds),
            signing_algs=tuple(a for a in SUPPORTED_ALGS if a in self.signing_algs.split(",")),
            id_token_alg=self.id_token_signing_alg,
            access_token_alg=self.access_token_signing_alg,
            jwks_max_age=self.jwks_max_age_seconds,
        )

    @cached_property
    def jwks_uri(self) -> DestinationPolicy:
        """Where a client's ``jwks_uri`` may point (checked at registration and fetch)."""
        private, http_loopback = self.jwks_uri_allow_private, self.jwks_uri_allow_http_loopback
        return DestinationPolicy(
            allow_private=self.dev_mode if private is None else private,
            allow_http_loopback=self.dev_mode if http_loopback is None else http_loopback,
        )

    @cached_property
    def webauthn(self) -> WebAuthnSlice | None:
        """The passkeys' relying party; None when passkeys are off (:attr:`webauthn_off`)."""
        rp = _relying_party(self)
        return None if isinstance(rp, str) else rp

    @cached_property
    def webauthn_off(self) -> str | None:
        """Why passkeys are off (for the operator's log), or None when they are on."""
        rp = _relying_party(self)
        return rp if isinstance(rp, str) else None

    @cached_property
    def throttle(self) -> ThrottleSlice:
        return ThrottleSlice(
            account_failures=self.login_account_failures,
            ip_failures=self.login_ip_failures,
            window_seconds=self.login_window_seconds,
            known_device_ttl=(
                timedelta(days=self.login_known_device_days)
                if self.login_known_device_days
                else None
            ),
            device_cookie_name=(
                "__Host-ostiary_device" if self.sessions.cookie_secure else "ostiary_device"
            ),
        )

    def masked(self) -> dict[str, Any]:
        """Effective settings for display; secrets and URL passwords masked."""
        shown: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                shown[name] = "**********" if value.get_secret_value() else ""
            elif isinstance(value, Path):
                shown[name] = str(value)
            else:
                shown[name] = value
        shown["effective_database_url"] = _mask_url(self.effective_database_url())
        shown["redis_url"] = (
            _mask_url(self.redis_url.get_secret_value()) if self.redis_url else None
        )
        shown["database_url"] = (
            _mask_url(self.database_url.get_secret_value()) if self.database_url else None
        )
        return shown


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(value: str, *, strict: bool = False, hint: str = "") -> tuple[IPNetwork, ...]:
    """Comma-separated addresses or CIDRs (blank entries skipped); ValueError names a bad one."""
    networks: list[IPNetwork] = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=strict))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or CIDR{hint}") from None
    return tuple(networks)


_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def _rp_id_problem(host: str) -> str | None:
    """Why ``host`` cannot be a WebAuthn RP ID (a valid domain; section 5.4.2), or None."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return "an IP address cannot be a WebAuthn relying party id; use a domain name"
    labels = host.split(".")
    if not host or len(host) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        return "not a domain name"
    return None


def _origin_problem(origin: str) -> str | None:
    """Why ``origin`` cannot run passkey ceremonies, or None. Browsers offer WebAuthn in secure
    contexts only: https, or http on localhost (W3C Secure Contexts section 3.1)."""
    parts = urlsplit(origin.rstrip("/"))
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        return "not an http(s) origin"
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        return "an origin is scheme://host[:port] only"
    if parts.scheme == "http" and host != "localhost":
        return "plain http is a secure context on localhost only; use https"
    return _rp_id_problem(host)


def _relying_party(settings: Settings) -> WebAuthnSlice | str:
    """The relying party from the settings (issuer-derived defaults), or why there is none."""
    issuer = settings.issuer or ""
    parts = urlsplit(issuer)
    if settings.webauthn_origins is not None:
        origins = tuple(settings.webauthn_origins.split(","))
    elif parts.scheme and parts.netloc:
        origins = (f"{parts.scheme}://{parts.netloc.lower()}",)
    else:
        return "no issuer and no OSTIARY_WEBAUTHN_ORIGINS"
    rp_id = settings.webauthn_rp_id or (parts.hostname or "").lower()
    problem = _rp_id_problem(rp_id) or next(filter(None, map(_origin_problem, origins)), None)
    if problem:
        return problem
    for origin in origins:
        host = (urlsplit(origin).hostname or "").lower()
        if host != rp_id and not host.endswith(f".{rp_id}"):
            # WebAuthn section 5.1.3 / 5.1.4.1: the RP ID is the origin's host or a suffix.
            return f"the host of {origin} is not {rp_id} or a subdomain of it"
    name = settings.webauthn_rp_name or settings.mfa_issuer_name
    return WebAuthnSlice(rp_id=rp_id, rp_name=name, origins=origins)


def _mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":****@")
        return parts._replace(netloc=netloc).geturl()
    return url


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; raise :class:`ConfigError` with one line if invalid."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        if not where:  # a check across settings names them in its message
            raise ConfigError(f"invalid settings: {first['msg']}") from exc
        raise ConfigError(f"invalid setting OSTIARY_{where.upper()}: {first['msg']}") from exc
