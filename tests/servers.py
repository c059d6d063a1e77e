"""Real Temporal servers for tests, from the project's wheels."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from runtime.codec import data_converter
from runtime.settings import Settings
from starter.devstack import DevServerError, installed_binary
from workflows import search

T = TypeVar("T")


def binary(name: str) -> str:
    try:
        return installed_binary(name)
    except DevServerError as err:
        pytest.fail(str(err))


@asynccontextmanager
async def dev_server(
    *dynamic_config: str,
    port: int | None = None,
    db_file: Path | None = None,
    search_attributes: Sequence[SearchAttributeKey[Any]] = search.KEYS,
    settings: Settings | None = None,
) -> AsyncIterator[WorkflowEnvironment]:
    """A dev server; in memory unless ``db_file`` is given (to survive a restart); the
    journeys' search attributes registered unless told otherwise; its client encrypts as
    ``settings`` say."""
    extra_args = [arg for value in dynamic_config for arg in ("--dynamic-config-value", value)]
    if db_file is not None:
        extra_args += ["--db-filename", str(db_file)]
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"),
        dev_server_extra_args=extra_args,
        data_converter=pydantic_data_converter if settings is None else data_converter(settings),
        port=port,
        # Registered as the server starts, so that the first journey can index itself.
        search_attributes=search_attributes,
    )
    async with env:
        yield env


async def equator(*args: str, environment: Mapping[str, str]) -> tuple[int, str, str]:
    """Run the `equator` CLI as a process, with ``environment`` added to this one's;
    returns its exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "starter.cli", *args,
        env={**os.environ, **environment},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def embedded_stack(data: Path) -> dict[str, str]:
    """The environment for an `equator run` of its own: data in ``data``, every port free
    (``EQUATOR_TEMPORAL_ADDRESS``, ``EQUATOR_INGEST__PORT`` say which)."""
    return {
        **os.environ,
        "EQUATOR_DATA_DIR": str(data),
        "EQUATOR_DATABASE_URL": f"sqlite+aiosqlite:///{data / 'equator.db'}",
        "EQUATOR_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "EQUATOR_UI_PORT": str(free_port()),
        "EQUATOR_INGEST__PORT": str(free_port()),
        "EQUATOR_TELEMETRY__METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
        "EQUATOR_CODEC_SERVER__PORT": str(free_port()),
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def eventually(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    within: float = 30.0,
    interval: float = 0.2,
) -> T:
    """Probe until ``done`` holds or the deadline passes; then fail with the last value."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within}s; last value: {value!r}")
        await asyncio.sleep(interval)


class Link:
    """A TCP link to a real server that a test can cut and restore, as a network fault or
    a stopped server looks to a client: the live connections reset, new ones refused."""

    def __init__(self, target: tuple[str, int], port: int | None = None) -> None:
        self.target = target
        self.port = port or free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)

    async def cut(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, upstream_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65_536):
                    sink.write(data)
                    await sink.drain()
            except OSError:
                pass
            finally:
                sink.transport.abort()
                self._writers.discard(sink)

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


@asynccontextmanager
async def cuttable(host: str, port: int) -> AsyncIterator[Link]:
    link = Link((host, port))
    await link.restore()
    try:
        yield link
    finally:
        await link.cut()
