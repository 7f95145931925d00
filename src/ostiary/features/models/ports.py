"""The store the model catalog needs (SQL adapter: storage/sqla/policy_repositories.py).
Every method names the organization ("" for deployment-wide entries) and is scoped by it."""

from __future__ import annotations

from typing import Protocol

from ostiary.features.models.models import ModelEntry

__all__ = ["CatalogInvalidator", "ModelCatalogStore"]


class ModelCatalogStore(Protocol):
    async def add_model(self, entry: ModelEntry) -> bool:
        """Insert; False if the id exists at that level."""
        ...

    async def update_model(self, entry: ModelEntry) -> bool:
        """Replace the attributes; False if there is no such entry."""
        ...

    async def delete_model(self, org_id: str, model_id: str) -> bool: ...

    async def get_model(self, org_id: str, model_id: str) -> ModelEntry | None: ...

    async def list_models(self, org_id: str, limit: int, after: str | None) -> list[ModelEntry]:
        """By model id, after ``after`` (a model id)."""
        ...


class CatalogInvalidator(Protocol):
    """Makes every node forget what it cached for decisions in the organization (every
    organization when ``org_id`` is "": a deployment-wide change), once the change commits."""

    async def decision_data_changed(self, org_id: str) -> None: ...
