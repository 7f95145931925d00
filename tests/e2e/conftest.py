"""End-to-end fixtures: a real ``ostiary dev`` server subprocess per module (and per backend).

``server`` is shared by the tests of one module (they use distinct users, so they do not
interfere); ``server_factory`` starts extra servers with extra ``OSTIARY_*`` settings for one
test. Both are parametrized over the backends of :data:`tests.e2e.harness.BACKENDS`: SQLite
always, PostgreSQL (+ Redis) when ``OSTIARY_TEST_DATABASE_URL`` is set.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from tests.e2e.harness import BACKENDS, Server, ServerFactory, running_server


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One ``ostiary dev`` process for the whole module; SIGTERM at the end."""
    with running_server(backend, tmp_path_factory.mktemp(f"e2e-{backend}")) as srv:
        yield srv


@pytest.fixture
def server_factory(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerFactory]:
    """Start extra servers for one test: ``server_factory(OSTIARY_X="1")``; stopped after it."""
    with ExitStack() as stack:

        def start(**extra_env: str) -> Server:
            workdir = tmp_path_factory.mktemp(f"e2e-{backend}-extra")
            return stack.enter_context(running_server(backend, workdir, extra_env))

        yield start
