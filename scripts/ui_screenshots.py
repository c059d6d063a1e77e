"""Look at the product as ops do: start the embedded stack with its demo, wait for the
demo's journeys to fall below the line, and photograph the Temporal UI in headless
Chromium: the journey list filtered by a search attribute, one journey's details,
search attributes and history (decoded by the codec server, and as Temporal holds it,
encrypted), the campaign Schedules and the demo Flash Sale's fan-out.

    make screenshots        # writes docs/screenshots/*.png

Chromium is driven over its DevTools protocol, so each picture is taken once the page
shows what it is meant to show (the UI streams history, and never goes idle).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import websockets
from temporalio.client import Client
from temporalio.service import RPCError

from runtime.settings import Settings
from runtime.temporal import connect, journey_view
from starter.devstack import with_local_master_key
from tests.servers import free_port
from workflows.fanout import PROGRESS_QUERY, FanOutProgress
from workflows.journey import journey_id
from workflows.registry import REMEDIATION

OUT = Path("docs/screenshots")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")
FILTER = "LinePosition = 'below'"
SUBJECT = "lapsing-lena"
# The UI's own codec setting, kept in the browser: an endpoint that overrides the server's.
_CODEC_IN_BROWSER = (
    'localStorage.setItem("endpoint", JSON.stringify("{endpoint}"));'
    'localStorage.setItem("overrideRemoteCodecConfiguration", "true")'
)


class Page:
    """One Chromium tab, over the DevTools protocol."""

    def __init__(self, socket: websockets.ClientConnection) -> None:
        self._socket = socket
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        await self._socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(await self._socket.recv())
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    async def photograph(
        self,
        url: str,
        showing: str,
        path: Path,
        height: int = 1000,
        within: float = 30,
        width: int = 1600,
    ) -> None:
        """Open ``url`` in a ``width`` by ``height`` window, wait until its text includes
        ``showing``, save a PNG."""
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        await self.call("Page.navigate", url=url)
        deadline = time.monotonic() + within
        while True:
            found = await self.call(
                "Runtime.evaluate",
                expression=f"document.body && document.body.innerText.includes({showing!r})",
            )
            if found["result"].get("value") is True:
                break
            if time.monotonic() > deadline:
                shot = await self.call("Page.captureScreenshot", format="png")
                await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))
                raise TimeoutError(f"{url} never showed {showing!r}")
            await asyncio.sleep(0.5)
        await asyncio.sleep(3)  # let the rest of the page (and its frames) settle
        shot = await self.call("Page.captureScreenshot", format="png")
        await asyncio.to_thread(path.write_bytes, base64.b64decode(shot["data"]))
        print(f"saved {path}", flush=True)


@asynccontextmanager
async def chromium_page() -> AsyncIterator[Page]:
    binary = shutil.which("chromium")
    if binary is None:
        raise SystemExit("chromium is not installed: `make screenshots` installs it")
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        binary, *CHROMIUM_FLAGS, f"--remote-debugging-port={port}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(100):
                try:
                    tabs = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.2)
            else:
                raise RuntimeError("chromium did not open its DevTools port")
        tab = next(tab for tab in tabs if tab["type"] == "page")
        async with websockets.connect(tab["webSocketDebuggerUrl"], max_size=None) as socket:
            yield Page(socket)
    finally:
        process.terminate()
        await process.wait()


async def main() -> None:
    data = Path(tempfile.mkdtemp(prefix="equator-screenshots-"))
    settings = Settings(
        temporal_address=f"127.0.0.1:{free_port()}",
        ui_port=free_port(),
        data_dir=data,
        database_url=f"sqlite+aiosqlite:///{data / 'equator.db'}",
    )
    environment = {
        **os.environ,
        "EQUATOR_TEMPORAL_ADDRESS": settings.temporal_address,
        "EQUATOR_UI_PORT": str(settings.ui_port),
        "EQUATOR_DATA_DIR": str(data),
        "EQUATOR_DATABASE_URL": settings.database_url,
        "EQUATOR_INGEST__PORT": str(free_port()),
        "EQUATOR_TELEMETRY__METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
        "EQUATOR_CODEC_SERVER__PORT": str(free_port()),
    }
    stack = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "starter.cli", "run",
        env=environment, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = await _connected(settings)
        # The demo's silence ladder has sent its first step: a journey worth reading.
        deadline = time.monotonic() + 120
        while True:
            try:
                view = await journey_view(client, SUBJECT)
                remediation = REMEDIATION.state_in(view.state)
                if remediation and remediation.ladder and remediation.ladder.spent > 0:
                    break
            except RPCError:  # not started yet
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{SUBJECT}'s ladder never started")
            await asyncio.sleep(1)
        run_id = (await client.get_workflow_handle(journey_id(SUBJECT)).describe()).run_id
        ui = f"http://127.0.0.1:{settings.ui_port}/namespaces/{settings.temporal_namespace}"
        await asyncio.to_thread(OUT.mkdir, parents=True, exist_ok=True)
        async with chromium_page() as page:
            await page.photograph(
                f"{ui}/workflows?query={quote(FILTER)}",
                journey_id(SUBJECT),
                OUT / "journeys-below-the-line.png",
            )
            journey = f"{ui}/workflows/{journey_id(SUBJECT)}/{run_id}"
            # Its summary and current details (markdown, rendered in a frame of their own)
            # sit under "User Metadata".
            await page.photograph(
                f"{journey}/user-metadata", "Current Details", OUT / "journey-details.png"
            )
            # Its search attributes: what the list queries filter by.
            await page.photograph(
                f"{journey}/metadata", "LinePosition", OUT / "journey-search-attributes.png"
            )
            # Its history reads as a story: activities and timers carry summaries.
            await page.photograph(
                f"{journey}/history", "response window", OUT / "journey-history.png", 2400
            )
            # The same journey as Temporal holds it, to a browser whose codec endpoint does
            # not answer (an empty one would fall back to the server's).
            nowhere = f"http://127.0.0.1:{free_port()}"
            await page.call(
                "Runtime.evaluate", expression=_CODEC_IN_BROWSER.format(endpoint=nowhere)
            )
            await page.photograph(
                f"{journey}/history", "could not connect", OUT / "journey-history-encrypted.png"
            )
            await page.call("Runtime.evaluate", expression="localStorage.clear()")
            # The demo's Flash Sale: its Schedule, and its fan-out once every journey in
            # the audience has decided.
            fan_out_id, fan_out_run = await _fan_out_done(client)
            await page.photograph(f"{ui}/schedules", "campaign-", OUT / "campaign-schedules.png")
            await page.photograph(
                f"{ui}/workflows/{fan_out_id}/{fan_out_run}/user-metadata",
                "Current Details",
                OUT / "campaign-fan-out.png",
            )
    finally:
        stack.terminate()
        await stack.wait()
        shutil.rmtree(data, ignore_errors=True)


async def _fan_out_done(client: Client) -> tuple[str, str]:
    """The Flash Sale's fan-out, once it has reached everyone and all have decided."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        async for found in client.list_workflows("WorkflowType = 'CampaignFanOut'"):
            handle = client.get_workflow_handle(found.id, run_id=found.run_id)
            progress = await handle.query(PROGRESS_QUERY, result_type=FanOutProgress)
            if progress.reached and progress.results.decided == progress.reached:
                return found.id, found.run_id
        await asyncio.sleep(1)
    raise TimeoutError("the Flash Sale never finished fanning out")


async def _connected(settings: Settings) -> Client:
    """A client of the stack, once it is up: by then it keeps its master key."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return await connect(with_local_master_key(settings, create=False))
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


if __name__ == "__main__":
    asyncio.run(main())
