"""The client store."""

from __future__ import annotations

from typing import Protocol

from ostiary.features.clients.models import Client

__all__ = ["ClientStore"]


class ClientStore(Protocol):
    async def get(self, client_id: str) -> Client | None: ...

    async def add(self, client: Client) -> None: ...

    async def update(self, client: Client) -> None: ...

    async def delete(self, client_id: str) -> bool: ...

    async def list(self) -> list[Client]: ...
