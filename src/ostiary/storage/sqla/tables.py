"""Table definitions (the schema Alembic migrations must match; a test checks they do)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect

__all__ = [
    "api_keys",
    "audit_events",
    "authorization_codes",
    "client_assertions",
    "clients",
    "consents",
    "decision_log",
    "group_members",
    "groups",
    "memberships",
    "metadata",
    "model_catalog",
    "org_invitations",
    "org_preferences",
    "organizations",
    "policy_versions",
    "projects",
    "recovery_codes",
    "refresh_families",
    "refresh_tokens",
    "revocations",
    "role_assignments",
    "role_includes",
    "roles",
    "service_accounts",
    "sessions",
    "signing_keys",
    "totp_factors",
    "users",
    "webauthn_credentials",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("email_verified", Boolean, nullable=False, default=False),
    Column("name", String(200), nullable=False, default=""),
    Column("password_hash", String(255), nullable=True),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # OIDC Core 5.1 standard claims beyond name and e-mail (migration 0007).
    Column("claims", JSON, nullable=False, server_default=text("'{}'")),
)

sessions = Table(
    "sessions",
    metadata,
    Column("sid", String(64), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("auth_time", UtcDateTime, nullable=False),
    Column("last_seen", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("amr", JSON, nullable=False),
    # {"pwd": unix time, "otp": unix time}: when each factor was used (migration 0011)
    Column("factor_times", JSON, nullable=True),
    Column("ip", String(64), nullable=True),
    Column("user_agent", String(512), nullable=True),
    Index("ix_sessions_user_id", "user_id"),
    Index("ix_sessions_expires_at", "expires_at"),  # retention (migration 0008)
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("alg", String(16), nullable=False),
    Column("public_jwk", JSON, nullable=False),
    Column("sealed_private_key", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("activates_at", UtcDateTime, nullable=False),
    # Migration 0006: a key the old single-algorithm switch retired (protocol/keyring.py).
    Column("retired_at", UtcDateTime, nullable=True),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("organization_id", String(36), nullable=True),
    Column("actor", String(64), nullable=True),
    Column("action", String(64), nullable=False),
    Column("target", String(128), nullable=True),
    Column("ip", String(64), nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("details", JSON, nullable=False),
    Column("previous_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_events_actor", "actor"),
    # An organization's slice of the trail, newest first (GET /api/v1/orgs/{org}/audit-events).
    Index("ix_audit_events_organization_seq", "organization_id", "seq"),
)

clients = Table(
    "clients",
    metadata,
    Column("client_id", String(128), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("client_type", String(16), nullable=False),
    Column("token_endpoint_auth_method", String(32), nullable=False),
    Column("redirect_uris", JSON, nullable=False),
    Column("post_logout_redirect_uris", JSON, nullable=False),
    Column("grant_types", JSON, nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("resources", JSON, nullable=False),
    # RFC 7662 section 4: resource servers registered for these token audiences may
    # introspect tokens minted for them (migration 0004).
    Column("introspection_audiences", JSON, nullable=False, server_default=text("'[]'")),
    Column("jwks", JSON, nullable=True),
    Column("jwks_uri", String(2000), nullable=True),
    Column("access_token_ttl", Integer, nullable=True),
    Column("id_token_ttl", Integer, nullable=True),
    Column("refresh_token_ttl", Integer, nullable=True),
    # OpenID Connect Dynamic Client Registration 1.0 section 2 / RFC 9068 practice: the JWS
    # algorithm of the client's ID and access tokens; NULL: the deployment default
    # (migration 0006).
    Column("id_token_signed_response_alg", String(16), nullable=True),
    Column("access_token_signed_response_alg", String(16), nullable=True),
    Column("first_party", Boolean, nullable=False),
    # required | nonce | optional (protocol/pkce.py); the default keeps the previous release's
    # inserts at the behaviour it had (PKCE always).
    Column("pkce", String(16), nullable=False, server_default=text("'required'")),
    # Tokens carry the user's active organization (org_id) and, with the roles scope, its
    # roles and permissions (migration 0015).
    Column("org_scoped", Boolean, nullable=False, server_default=false()),
    Column("disabled", Boolean, nullable=False),
    Column("secret_hash", String(64), nullable=True),
    Column("previous_secret_hash", String(64), nullable=True),
    Column("previous_secret_expires_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

consents = Table(
    "consents",
    metadata,
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "client_id",
        String(128),
        ForeignKey("clients.client_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("scopes", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("claims", JSON, nullable=False, server_default=text("'[]'")),  # migration 0007
)

authorization_codes = Table(
    "authorization_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column(
        "client_id",
        String(128),
        ForeignKey("clients.client_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("sid", String(64), nullable=False),
    Column("redirect_uri", String(2000), nullable=False),
    Column("scope", String(2000), nullable=False),
    Column("resources", JSON, nullable=False),
    Column("nonce", String(512), nullable=True),
    Column("code_challenge", String(128), nullable=True),
    Column("auth_time", UtcDateTime, nullable=False),
    Column("amr", JSON, nullable=False),
    Column("acr", String(64), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("consumed_at", UtcDateTime, nullable=True),
    Column("family_id", String(64), nullable=True),
    Column("access_jti", String(64), nullable=True),
    Column("claims_request", JSON, nullable=True),  # migration 0007
    Column("redirect_uri_sent", Boolean, nullable=False, server_default=false()),
    Index("ix_authorization_codes_expires_at", "expires_at"),  # retention (migration 0008)
    # An org-scoped client's organization (migration 0015).
    Column("org_id", String(36), nullable=True),
)

refresh_families = Table(
    "refresh_families",
    metadata,
    Column("family_id", String(64), primary_key=True),
    Column(
        "client_id",
        String(128),
        ForeignKey("clients.client_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("sid", String(64), nullable=True),
    Column("scope", String(2000), nullable=False),
    Column("resources", JSON, nullable=False),
    Column("auth_time", UtcDateTime, nullable=False),
    Column("amr", JSON, nullable=False),
    Column("acr", String(64), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("revoked_reason", String(64), nullable=True),
    Column("claims_request", JSON, nullable=True),  # migration 0007
    Index("ix_refresh_families_user_client", "user_id", "client_id"),
    Index("ix_refresh_families_sid", "sid"),
    Index("ix_refresh_families_expires_at", "expires_at"),  # retention (migration 0008)
    # An org-scoped client's organization, fixed at the grant (migration 0015).
    Column("org_id", String(36), nullable=True),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column(
        "family_id",
        String(64),
        ForeignKey("refresh_families.family_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
    Index("ix_refresh_tokens_family_id", "family_id"),
)

revocations = Table(
    "revocations",
    metadata,
    Column(
        "id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("kind", String(16), nullable=False),
    Column("value", String(300), nullable=False),
    Column("revoked_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Index("ix_revocations_expires_at", "expires_at"),
)

client_assertions = Table(
    "client_assertions",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("expires_at", UtcDateTime, nullable=False),
    Index("ix_client_assertions_expires_at", "expires_at"),
)

# MFA (migration 0009): one TOTP factor per user, its secret sealed (features/mfa/service.py).
totp_factors = Table(
    "totp_factors",
    metadata,
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("sealed_secret", LargeBinary, nullable=False),
    Column("algorithm", String(8), nullable=False),
    Column("digits", Integer, nullable=False),
    Column("period", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("confirmed_at", UtcDateTime, nullable=True),
    Column("last_used_step", BigInteger, nullable=True),
    # Pending enrollments only, for the purge (features/retention; migration 0012).
    Index(
        "ix_totp_factors_pending_created_at",
        "created_at",
        postgresql_where=text("confirmed_at IS NULL"),
        sqlite_where=text("confirmed_at IS NULL"),
    ),
)

recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("code_hash", String(64), primary_key=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
)

# Passkeys (migration 0010): WebAuthn credential records (features/mfa/passkeys.py).
webauthn_credentials = Table(
    "webauthn_credentials",
    metadata,
    # The credential id is at most 1023 bytes (WebAuthn Level 3 section 5.8.3); it is looked
    # up at every passwordless sign-in, so it is the primary key.
    Column("credential_id", LargeBinary(1023), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("public_key", LargeBinary, nullable=False),
    Column("sign_count", BigInteger, nullable=False),
    Column("transports", JSON, nullable=False),
    Column("aaguid", String(36), nullable=False),
    Column("backup_eligible", Boolean, nullable=False),
    Column("backup_state", Boolean, nullable=False),
    Column("user_verified", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime, nullable=True),
    Index("ix_webauthn_credentials_user_id", "user_id"),
)


# -- organizations and RBAC (issue 12; ARCHITECTURE.md "Tenancy model": every org-owned row
# carries organization_id, and every query on it is scoped by it) ----------------------------

organizations = Table(
    "organizations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("slug", String(63), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # The acr class a sign-in must reach before an org-scoped client gets a code for this
    # organization (protocol/oidc.py ACR classes); NULL: none (migration 0015).
    Column("require_acr", String(64), nullable=True),
    # The operator's name for what the organization bought (free, pro, enterprise...): a
    # ``User`` attribute in Cedar decisions (features/policy); NULL: none (migration 0017).
    Column("plan", String(64), nullable=True),
)

projects = Table(
    "projects",
    metadata,
    Column("id", String(36), primary_key=True),
    Column(
        "organization_id",
        String(36),
        ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("slug", String(63), nullable=False),
    Column("name", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("organization_id", "slug", name="uq_projects_organization_id_slug"),
)

memberships = Table(
    "memberships",
    metadata,
    Column(
        "organization_id",
        String(36),
        ForeignKey("organizations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_memberships_user_id", "user_id"),
)

roles = Table(
    "roles",
    metadata,
    Column("id", String(36), primary_key=True),
    Column(
        "organization_id",
        String(36),
        ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # "" for an organization-level role (a NULL would defeat the unique constraint on
    # PostgreSQL, where NULLs are distinct); the model says None.
    Column("project_id", String(36), nullable=False, default=""),
    Column("name", String(100), nullable=False),
    Column("description", String(500), nullable=False, default=""),
    Column("permissions", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint(
        "organization_id", "project_id", "name", name="uq_roles_organization_id_project_id_name"
    ),
)

role_includes = Table(
    "role_includes",
    metadata,
    Column(
        "organization_id",
        String(36),
        ForeignKey("organizations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("role_id", String(36), ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True),
    Column("included", String(100), primary_key=True),  # a custom role id or a built-in name
)

role_assignments = Table(
    "role_assignments",
    metadata,
    Column(
        "organization_id",
        String(36),
        ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("principal_type", String(20), nullable=False),  # user | group | service_account
    Column("principal_id", String(36), nullable=False),
    Column("role", String(100), nullable=False),  # a custom role id or a built-in name
    # "" for the whole organization (a NULL would defeat the unique constraint on PostgreSQL).
    Column("project_id", String(36), nullable=False, default=""),
    Column("created_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("organization_id", "principal_type", "principal_id", "role", "project_id"),
    Index("ix_role_assignments_organization_id_role", "organization_id", "role"),
)

groups = Table(
    "groups",
    metadata,
    Column("id", String(36), primary_key=True),
    Column(
        "organization_id",
        String(36),
        ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", String(100), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("organization_id", "name", name="uq_groups_organization_id_name"),
)

group_members = Table(
    "group_members",
    metadata,
    Column(
        "organization_id",
        String(36),
        ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("group_id", String(36), ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_group_members_organization_id_user_id", "organization_id", "user_id"),
)


# -- service accounts and API keys (issue 12, section 3) --------------------------------------

service_accounts = Table(
    "service_accounts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column(
        "organization_id",
        String(36),
        ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", String(100), nullable=False),
    Column("description", String(500), nullable=False, default=""),
    Column("project_id", String(36), nullable=True),
    Column("disabled", Boolean, nullable=False, default=False, server_default=false()),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("organization_id", "name", name="uq_service_accounts_organization_id_name"),
)

api_keys = Table(
    "api_keys",
    metadata,
    # The key id part of the key (protocol/api_keys.py): verification finds the row by it.
    Column("id", String(24), primary_key=True),
    Column(
        "organization_id",
        String(36),
        ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("owner_type", String(20), nullable=False),  # user | service_account
    Column("owner_id", String(36), nullable=False),
    Column("name", String(100), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("previous_hash", String(64), nullable=True),
    Column("previous_expires_at", UtcDateTime, nullable=True),
    Column("permissions", JSON, nullable=True),  # NULL: all of the owner's
    Column("models", JSON, nullable=False),
    Column("allowed_ips", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("last_used_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
    Index("ix_api_keys_organization_id_created_at", "organization_id", "created_at"),
    Index("ix_api_keys_organization_id_owner", "organization_id", "owner_type", "owner_id"),
)


# Invitations by e-mail to join an organization (migration 0015). The token is stored as its
# HMAC (protocol/opaque_secrets.py); ``status``: pending | accepted | revoked.
org_invitations = Table(
    "org_invitations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column(
        "organization_id",
        String(36),
        ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("email", String(320), nullable=False),
    Column("roles", JSON, nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("inviter_id", String(36), nullable=True),
    Column("status", String(16), nullable=False),
    Column("mail_status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime, nullable=True),
    Column("accepted_by", String(36), nullable=True),
    Index("ix_org_invitations_organization_id_email", "organization_id", "email"),
    Index("ix_org_invitations_expires_at", "expires_at"),
)

# A user's active organization (one row per user; migration 0015).
org_preferences = Table(
    "org_preferences",
    metadata,
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "organization_id",
        String(36),
        ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("updated_at", UtcDateTime, nullable=False),
)
# Issue 13: the model catalog, Cedar policy versions and the decision log. organization_id is
# "" for deployment-wide rows (catalog entries and policies that apply to every organization);
# no foreign key, so "" needs no organization row. Every query names the organization.
model_catalog = Table(
    "model_catalog",
    metadata,
    Column("organization_id", String(36), primary_key=True),
    Column("model_id", String(200), primary_key=True),
    Column("attributes", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

policy_versions = Table(
    "policy_versions",
    metadata,
    Column("organization_id", String(36), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("policies", Text, nullable=False),
    Column("schema", Text, nullable=False),
    Column("note", String(200), nullable=False),
    Column("actor", String(36), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)

decision_log = Table(
    "decision_log",
    metadata,
    Column(
        "id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("organization_id", String(36), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("request", JSON, nullable=False),
    Column("decision", Boolean, nullable=False),
    Column("reason", String(300), nullable=False),
    Index("ix_decision_log_organization_id_id", "organization_id", "id"),
    Index("ix_decision_log_expires_at", "expires_at"),
)
