"""The schema revision this code expects, and the one a database is at, without Alembic.

Readiness probes ask this on every call; importing Alembic for it cost a worker 12 MB of
memory. ``HEAD_REVISION`` must name the newest file in ``migrations/versions``; a test compares
it with Alembic's own answer, so adding a migration without updating it fails the suite.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["HEAD_REVISION", "current_revision", "serves_revision"]

HEAD_REVISION = "0018"


def serves_revision(current: str | None) -> bool:
    """Whether this code can serve a database at ``current``: at this release's head, or
    ahead of it. Migrations stay backwards-compatible for one release (ARCHITECTURE.md: expand,
    migrate, contract), so during a rolling upgrade the nodes of the previous release keep
    serving once the new release has migrated; a readiness probe that wanted the exact head
    took every one of them out of the load balancer at that moment. Behind the head (``ostiary
    migrate`` not run yet) or unknown: no. Revisions are four-digit sequence numbers."""
    if current is None:
        return False
    if current == HEAD_REVISION:
        return True
    return current.isdigit() and len(current) == len(HEAD_REVISION) and current > HEAD_REVISION


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision recorded in ``alembic_version``; None for a database never migrated."""
    async with engine.connect() as conn:
        try:
            row = (await conn.execute(text("SELECT version_num FROM alembic_version"))).first()
        except DBAPIError:
            return None  # no alembic_version table yet
    return None if row is None else str(row[0])
