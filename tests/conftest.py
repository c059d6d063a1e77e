"""Shared fixtures: real Temporal servers from the project's wheels, real databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from activities.store import Store
from runtime.credentials import new_key
from runtime.logging import configure_logging
from runtime.worker import running_worker
from testkit import Scenario, scenario, time_skipping_server
from tests.ingest import Ingest, ingest_api, settings_for
from tests.journeys import NEVER_QUIET, NO_HOLDOUTS
from tests.servers import dev_server
from workflows.config import JourneyConfig

# The tests' processes log as the product's do (plain stack traces), not by structlog's
# development default, whose tracebacks with every frame's locals take seconds each, on
# the event loop that the API, the worker and the test share.
configure_logging(json=False)

POSTGRES_ADMIN_DSN = os.environ.get(
    "EQUATOR_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="module")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server (in memory, search attributes registered) shared by a module."""
    async with dev_server() as env:
        yield env


@pytest.fixture
async def dev_world(dev_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Scenario]:
    """A worker on its own task queue against the module's dev server, on SQLite. The
    dev server keeps the wall clock: no quiet hours, or what a test sees would depend on
    the hour it runs at."""
    config = JourneyConfig(holdouts=NO_HOLDOUTS, contact=NEVER_QUIET)
    async with scenario(config, f"sqlite+aiosqlite:///{tmp_path / 'e.db'}", dev_env) as world:
        yield world


@pytest.fixture
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A fresh server per scenario: its own clock and no journeys left from others."""
    async with time_skipping_server() as env:
        yield env


@pytest.fixture
async def kit(
    request: pytest.FixtureRequest, time_skipping_env: WorkflowEnvironment, database_url: str
) -> AsyncIterator[Scenario]:
    """A scenario on its own time-skipping server, on each engine, with the test module's
    ``CONFIG``."""
    config = getattr(request.module, "CONFIG", None)
    async with scenario(config, database_url, time_skipping_env) as s:
        yield s


@asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A fresh database on the machine's PostgreSQL, dropped afterwards. Outside CI a
    missing server skips; in CI it fails, so the suite never passes without it."""
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as err:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI and unreachable: {err}")
        pytest.skip(f"PostgreSQL unreachable: {err}")
    name = f"equator_test_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    host_part = POSTGRES_ADMIN_DSN.split("://", 1)[1].rsplit("/", 1)[0]
    try:
        yield f"postgresql+asyncpg://{host_part}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database on each engine the product supports."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'equator.db'}"
    else:
        async with postgres_database() as url:
            yield url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    store = Store(database_url)
    await store.migrate()
    yield store
    await store.close()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def api(
    request: pytest.FixtureRequest,
    dev_env: WorkflowEnvironment,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Ingest]:
    """The ingest API over real HTTP, with a worker, on the module's dev server, on each
    engine; its sources are ``tests/ingest.py``'s."""
    async with AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('api') / 'equator.db'}"
        else:
            url = await stack.enter_async_context(postgres_database())
        key = new_key()
        settings = settings_for(dev_env.client.service_client.config.target_host, url, key)
        await stack.enter_async_context(running_worker(dev_env.client, settings))
        yield await stack.enter_async_context(ingest_api(settings, key))
