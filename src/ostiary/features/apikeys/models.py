"""Service accounts and API keys of an organization (issue 12, section 3).

A service account is a non-human principal of one organization (optionally tied to one of its
projects), holding roles like a member does (RBAC principal ``("service_account", id)``). An
API key belongs to a user who is a member of the organization, or to a service account; its
secret is shown once and stored as an HMAC only (protocol/api_keys.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

__all__ = [
    "OWNER_TYPES",
    "ApiKey",
    "ApiKeyPrincipal",
    "IssuedKey",
    "KeyInUse",
    "OwnerType",
    "ServiceAccount",
    "Verification",
]

OwnerType = Literal["user", "service_account"]
OWNER_TYPES: tuple[OwnerType, ...] = ("user", "service_account")


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    id: str
    organization_id: str
    name: str
    description: str
    project_id: str | None
    disabled: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str  # the key id part of the key (not secret)
    organization_id: str
    owner_type: OwnerType
    owner_id: str
    name: str
    secret_hash: str
    # Rotation: the secret before the last rotation, accepted until ``previous_expires_at``.
    previous_hash: str | None
    previous_expires_at: datetime | None
    # None: all of the owner's permissions (always within the owner's current ones).
    permissions: frozenset[str] | None
    models: tuple[str, ...]  # empty: any model
    allowed_ips: tuple[str, ...]  # CIDR ranges; empty: any address
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def owner(self) -> tuple[OwnerType, str]:
        return self.owner_type, self.owner_id


@dataclass(frozen=True, slots=True)
class KeyInUse:
    """A key as verification reads it: with its owner's standing, in one lookup."""

    key: ApiKey
    owner_active: bool
    project_id: str | None


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key or a rotated one: the record and the key itself, shown once."""

    key: ApiKey
    secret: str


@dataclass(frozen=True, slots=True)
class ApiKeyPrincipal:
    """Who a valid key speaks for, and what it may do now (the recorded permissions within
    the owner's current ones)."""

    key_id: str
    organization_id: str
    owner_type: OwnerType
    owner_id: str
    project_id: str | None
    permissions: frozenset[str]
    models: tuple[str, ...]
    allowed_ips: tuple[str, ...]
    expires_at: datetime | None

    @property
    def owner(self) -> tuple[OwnerType, str]:
        return self.owner_type, self.owner_id


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of checking a key. ``principal`` None: invalid, whatever the kind (no
    reason given). With a principal, ``reason`` says why the key may still not be used here:
    ``ip_not_allowed`` or ``model_not_allowed`` (the address or model named is outside the
    key's allowlist)."""

    principal: ApiKeyPrincipal | None
    reason: str | None = None

    @property
    def valid(self) -> bool:
        return self.principal is not None and self.reason is None
