"""A catalog entry: a model id and its attributes (tier, region, modalities, context window,
price class, anything the operator adds), deployment-wide (``organization_id`` "") or for one
organization. Attribute values are what Cedar entity attributes can hold from JSON: strings,
integers, booleans, and lists of those (Cedar sets)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["DEPLOYMENT", "AttributeValue", "ModelEntry"]

DEPLOYMENT = ""  # the organization_id of deployment-wide rows

AttributeValue = str | int | bool | list[Any]


@dataclass(frozen=True, slots=True)
class ModelEntry:
    organization_id: str  # DEPLOYMENT for a deployment-wide entry
    model_id: str
    attributes: dict[str, AttributeValue]
    created_at: datetime
    updated_at: datetime
