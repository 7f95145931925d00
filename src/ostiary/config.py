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
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ostiary.protocol.destinations import DestinationPolicy

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
    signing_alg: Literal["ES256", "RS256", "EdDSA"]
    jwks_max_age: int


@dataclass(frozen=True, slots=True)
class ThrottleSlice:
    account_failures: int
    ip_failures: int
    window_seconds: int


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
    refresh_token_ttl_days: int = Field(default=30, ge=1, le=3650)
    key_publish_lead_seconds: int = Field(default=600, ge=0)
    signing_alg: Literal["ES256", "RS256", "EdDSA"] = "ES256"
    jwks_max_age_seconds: int = Field(default=300, ge=0, le=86400)

    # A client's jwks_uri may reach loopback, private, link-local and other non-public
    # addresses; may use http for a loopback host. Unset: true in dev mode, false otherwise.
    jwks_uri_allow_private: bool | None = None
    jwks_uri_allow_http_loopback: bool | None = None

    login_account_failures: int = Field(default=10, ge=1)
    login_ip_failures: int = Field(default=100, ge=1)
    login_window_seconds: int = Field(default=900, ge=1)

    shutdown_grace_seconds: int = Field(default=20, ge=0, le=600)

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

    # -- derived values ------------------------------------------------------------------

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
            key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        except (binascii.Error, ValueError) as exc:
            raise ConfigError("OSTIARY_SECRET_KEY is not base64url") from exc
        if len(key) < 32:
            raise ConfigError("OSTIARY_SECRET_KEY must hold at least 32 random bytes")
        return key

    def require_issuer(self) -> str:
        if not self.issuer:
            raise ConfigError("no issuer: set OSTIARY_ISSUER to the public https URL")
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
        longest = max(self.access_token_ttl_seconds, self.id_token_ttl_seconds)
        return TokenSlice(
            access_token_ttl=timedelta(seconds=self.access_token_ttl_seconds),
            id_token_ttl=timedelta(seconds=self.id_token_ttl_seconds),
            refresh_token_ttl=timedelta(days=self.refresh_token_ttl_days),
            max_token_ttl=timedelta(seconds=longest),
            key_publish_lead=timedelta(seconds=self.key_publish_lead_seconds),
            signing_alg=self.signing_alg,
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
    def throttle(self) -> ThrottleSlice:
        return ThrottleSlice(
            account_failures=self.login_account_failures,
            ip_failures=self.login_ip_failures,
            window_seconds=self.login_window_seconds,
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
        where = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        raise ConfigError(f"invalid setting OSTIARY_{where.upper()}: {first['msg']}") from exc
