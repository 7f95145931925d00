"""One transaction per unit of work (a request, a CLI command)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["transaction"]


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """Commit if the block succeeds, roll back if it raises.

    The transaction begins at the first statement (SQLAlchemy autobegin), so a request served
    from caches alone (a client_credentials grant with a cached client) costs no database
    round trip at all.
    """
    async with engine.connect() as conn:
        try:
            yield conn
        except BaseException:
            await conn.rollback()
            raise
        await conn.commit()
