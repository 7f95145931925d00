"""Organizations resolved by id or slug are cached per node (features/orgs/cache.py); a rename
(new slug) or a deletion on one node reaches the others through the revocation fan-out: Redis
pub/sub, or the poll of the ``revocations`` table (and SQLite's catch-up). Two runtimes on one
database stand for two replicas, as in test_permission_nodes.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from ostiary.features.orgs.models import NotFound, Organization
from ostiary.web.runtime import Runtime
from tests.conftest import Backend, make_settings
from tests.web.nodes import PATHS, hear, node_settings, two_nodes
from tests.web.test_revocation_nodes import _stop, _until


async def _resolve(rt: Runtime, ref: str) -> Organization | None:
    async with rt.unit() as unit:
        try:
            return await unit.orgs.resolve(ref)
        except NotFound:
            return None


async def _rename(unit: Any, org_id: str) -> None:
    await unit.orgs.update(org_id, slug="renamed", actor=None)


async def _delete(unit: Any, org_id: str) -> None:
    await unit.orgs.delete(org_id, actor=None)


CHANGES: dict[str, Callable[[Any, str], Awaitable[None]]] = {
    "rename": _rename,
    "delete": _delete,
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("change", list(CHANGES))
async def test_a_rename_or_deletion_on_node_a_reaches_node_b(
    backend: Backend, tmp_path: Path, change: str, path: str
) -> None:
    settings = node_settings(backend, tmp_path, path)
    background: asyncio.Task[None] | None = None
    async with two_nodes(settings) as (node_a, node_b):
        async with node_a.unit() as unit:
            org = await unit.orgs.create("Acme", slug="acme", actor=None)
        background = await hear(path, node_a, node_b)
        try:
            for ref in ("acme", org.id):  # cached on node B under both references
                found = await _resolve(node_b, ref)
                assert found is not None and found.slug == "acme"
            assert len(node_b.org_cache) == 2
            async with node_a.unit() as unit:
                await CHANGES[change](unit, org.id)
            assert await _resolve(node_a, "acme") is None
            if path == "poll":
                # Nothing told node B yet: it still answers from its cache.
                assert await _resolve(node_b, "acme") is not None
                background = asyncio.create_task(node_b.sync_revocations_forever(interval=0.01))

            async def arrived() -> bool:
                return await _resolve(node_b, "acme") is None

            await _until(arrived)
            by_id = await _resolve(node_b, org.id)
            if change == "delete":
                assert by_id is None
            else:
                assert by_id is not None and by_id.slug == "renamed"
                assert await _resolve(node_b, "renamed") == by_id
        finally:
            await _stop(background)


async def test_a_unit_that_renamed_reads_past_the_cache_and_a_rollback_leaves_nothing(
    backend: Backend, tmp_path: Path
) -> None:
    settings = make_settings(backend, tmp_path)
    async with two_nodes(settings) as (node, _):
        async with node.unit() as unit:
            org = await unit.orgs.create("Acme", slug="acme", actor=None)
        assert await _resolve(node, "acme") is not None

        class Abort(Exception):
            pass

        async def rename_then_fail() -> None:
            async with node.unit() as unit:
                await unit.orgs.update(org.id, slug="renamed", actor=None)
                assert (await unit.orgs.resolve("renamed")).slug == "renamed"  # its own write
                with pytest.raises(NotFound):
                    await unit.orgs.resolve("acme")
                raise Abort

        with pytest.raises(Abort):
            await rename_then_fail()
        assert len(node.org_cache) == 0  # nothing of the rolled-back unit was kept
        found = await _resolve(node, "acme")
        assert found is not None and found.id == org.id
        assert await _resolve(node, "renamed") is None
