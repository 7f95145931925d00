"""The model catalog (issue 13, section 1): models as resources with attributes,
deployment-wide and per organization.

- A decision on a model the request names only by id takes its attributes from the catalog:
  the organization's entry over the deployment-wide one (:meth:`ModelCatalog.attributes`), and
  the request's ``properties`` over both (features/policy/decisions.py).
- Attribute names are Cedar identifiers (Cedar policy language, "Entities": attribute names),
  values are strings, integers in Cedar's Long range, booleans, or lists of those (Cedar sets);
  bounded in number and size so that an entry stays a small row.
- Every change is audited with its actor and organization and invalidates the decision caches
  of that organization (every organization for a deployment-wide entry) on every node.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ostiary.features.audit.service import AuditTrail
from ostiary.features.clock import Clock
from ostiary.features.models.models import DEPLOYMENT, AttributeValue, ModelEntry
from ostiary.features.models.ports import CatalogInvalidator, ModelCatalogStore
from ostiary.features.orgs.models import Conflict, InvalidInput, NotFound
from ostiary.features.orgs.service import MAX_PAGE, OrgService

__all__ = [
    "MAX_ATTRIBUTES",
    "ModelCatalog",
    "check_attributes",
    "check_model_id",
    "parse_attribute",
]

MAX_ATTRIBUTES = 50
MAX_STRING = 500
MAX_LIST = 100
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def check_model_id(model_id: str) -> str:
    if not 1 <= len(model_id) <= 200:
        raise InvalidInput("model id must be 1 to 200 characters")
    if any(unicodedata.category(ch).startswith("C") for ch in model_id):
        raise InvalidInput("model id must not contain control characters")
    return model_id


def _scalar(name: str, value: Any) -> str | int | bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not LONG_MIN <= value <= LONG_MAX:
            raise InvalidInput(f"attribute {name!r}: integer out of range")
        return value
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise InvalidInput(f"attribute {name!r}: at most {MAX_STRING} characters")
        return value
    raise InvalidInput(f"attribute {name!r}: a string, integer, boolean or list of those")


def check_attributes(attributes: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """The attributes if every name and value is acceptable; InvalidInput naming the first
    bad one."""
    if len(attributes) > MAX_ATTRIBUTES:
        raise InvalidInput(f"at most {MAX_ATTRIBUTES} attributes")
    checked: dict[str, AttributeValue] = {}
    for name, value in attributes.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidInput(
                f"attribute name {str(name)[:80]!r}: letters, digits and _, not starting "
                "with a digit, at most 64"
            )
        if isinstance(value, list):
            if len(value) > MAX_LIST:
                raise InvalidInput(f"attribute {name!r}: at most {MAX_LIST} items")
            checked[name] = [_scalar(name, item) for item in value]
        else:
            checked[name] = _scalar(name, value)
    return checked


def parse_attribute(pair: str) -> tuple[str, AttributeValue]:
    """``k=v`` from the command line: an integer, ``true``/``false``, a comma-separated list
    (``modalities=text,image``), or else a string."""
    name, sep, raw = pair.partition("=")
    if not sep:
        raise InvalidInput(f"attribute {pair[:80]!r}: expected name=value")
    value: AttributeValue
    if re.fullmatch(r"-?[0-9]{1,19}", raw):
        value = int(raw)
    elif raw in ("true", "false"):
        value = raw == "true"
    elif "," in raw:
        value = [item.strip() for item in raw.split(",") if item.strip()]
    else:
        value = raw
    return name.strip(), value


class ModelCatalog:
    def __init__(
        self,
        store: ModelCatalogStore,
        orgs: OrgService,
        audit: AuditTrail,
        clock: Clock,
        invalidator: CatalogInvalidator,
    ) -> None:
        self._store = store
        self._orgs = orgs
        self._audit = audit
        self._clock = clock
        self._invalidator = invalidator

    async def _level(self, org_id: str | None) -> str:
        if org_id is None:
            return DEPLOYMENT
        return (await self._orgs.get(org_id)).id

    async def _changed(
        self, action: str, level: str, actor: str | None, model_id: str, **details: object
    ) -> None:
        await self._invalidator.decision_data_changed(level)
        await self._audit.record(
            action,
            "success",
            actor=actor,
            target=model_id[:200],
            details={"organization_id": level or None, **details},
        )

    async def create(
        self,
        org_id: str | None,
        model_id: str,
        attributes: Mapping[str, Any],
        *,
        actor: str | None,
    ) -> ModelEntry:
        """A new entry for the organization, or deployment-wide when ``org_id`` is None."""
        level = await self._level(org_id)
        now = self._clock.now()
        entry = ModelEntry(level, check_model_id(model_id), check_attributes(attributes), now, now)
        if not await self._store.add_model(entry):
            raise Conflict(f"model {model_id!r} exists")
        await self._changed(
            "models.create", level, actor, model_id, attributes=sorted(entry.attributes)
        )
        return entry

    async def update(
        self,
        org_id: str | None,
        model_id: str,
        attributes: Mapping[str, Any],
        *,
        actor: str | None,
    ) -> ModelEntry:
        """Replace the attributes of an entry."""
        entry = await self.get(org_id, model_id)
        changed = replace(
            entry, attributes=check_attributes(attributes), updated_at=self._clock.now()
        )
        if not await self._store.update_model(changed):
            raise NotFound(f"no model {model_id[:200]!r}")
        await self._changed(
            "models.update",
            entry.organization_id,
            actor,
            model_id,
            attributes=sorted(changed.attributes),
        )
        return changed

    async def delete(self, org_id: str | None, model_id: str, *, actor: str | None) -> None:
        level = await self._level(org_id)
        if not await self._store.delete_model(level, model_id[:200]):
            raise NotFound(f"no model {model_id[:200]!r}")
        await self._changed("models.delete", level, actor, model_id)

    async def get(self, org_id: str | None, model_id: str) -> ModelEntry:
        level = await self._level(org_id)
        entry = await self._store.get_model(level, model_id[:200])
        if entry is None:
            raise NotFound(f"no model {model_id[:200]!r}")
        return entry

    async def list(
        self, org_id: str | None, *, limit: int = 100, after: str | None = None
    ) -> tuple[list[ModelEntry], str | None]:
        """Entries of one level by model id, paged: (items, the ``after`` of the next page)."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be 1 to {MAX_PAGE}")
        level = await self._level(org_id)
        rows = await self._store.list_models(level, limit + 1, after)
        if len(rows) <= limit:
            return rows, None
        return rows[:limit], rows[limit - 1].model_id

    async def attributes(self, org_id: str, model_id: str) -> dict[str, AttributeValue]:
        """What a decision on ``model_id`` knows of it: the deployment-wide attributes with
        the organization's entry over them ({} when neither exists)."""
        if not 1 <= len(model_id) <= 200:
            return {}
        merged: dict[str, AttributeValue] = {}
        shared = await self._store.get_model(DEPLOYMENT, model_id)
        if shared is not None:
            merged.update(shared.attributes)
        own = await self._store.get_model(org_id, model_id)
        if own is not None:
            merged.update(own.attributes)
        return merged
