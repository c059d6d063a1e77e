"""`make run` as a newcomer runs it encrypts journeys: `equator run` keeps a master key in
its data directory, Temporal holds no personal value in clear, and the UI's codec
endpoint (the embedded codec server) decodes the journey again."""

from __future__ import annotations

import asyncio
import re
import stat
import sys
import time
import uuid
from pathlib import Path

import httpx
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import History
from temporalio.client import Client

from runtime.codec import ENCODING
from starter.client import event_body
from tests.servers import embedded_stack
from tests.test_encrypted_history import payloads_in
from workflows.journey import journey_id

EMAIL = "wren.unseen@example.net"


async def test_the_embedded_stack_encrypts_and_its_ui_decodes(tmp_path: Path) -> None:
    environment = embedded_stack(tmp_path)
    api = f"http://127.0.0.1:{environment['EQUATOR_INGEST__PORT']}"
    log = tmp_path / "equator.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "starter.cli", "run", "--no-demo",
            env=environment, stdout=output, stderr=output,
        )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=api, timeout=10) as http:
            await _until_ready(http, log)
            http.headers["Authorization"] = f"Bearer {(tmp_path / 'api-key').read_text().strip()}"
            who = f"wren-{uuid.uuid4().hex[:6]}"
            body = event_body(who, "profile_updated", {"email": EMAIL})
            assert (await http.post("/v1/events", json=body)).status_code == 202
            deadline = time.monotonic() + 30
            while not _applied(journey := await http.get(f"/v1/customers/{who}/journey")):
                assert time.monotonic() < deadline, journey.text
                await asyncio.sleep(0.2)
            assert journey.json()["state"]["profile"]["email"] == EMAIL

        key = tmp_path / "master-key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        # Temporal, read without the codec, as anyone with the server's database would.
        plain = await Client.connect(environment["EQUATOR_TEMPORAL_ADDRESS"])
        history = await plain.get_workflow_handle(journey_id(who)).fetch_history()
        raw = History(events=history.events)
        assert EMAIL.encode() not in raw.SerializeToString()
        sealed = [p for _, p in payloads_in(raw) if p.metadata.get("encoding") == ENCODING]
        assert sealed

        # The UI's codec endpoint, as `equator run` printed it, decodes them (on loopback
        # it asks no key: whoever runs the stack holds them all).
        codec = re.search(rb"Codec: +(\S+)", log.read_bytes())
        assert codec is not None
        async with httpx.AsyncClient(timeout=10) as http:
            decoded = await http.post(
                f"{codec[1].decode()}/decode",
                json={"payloads": [json_format.MessageToDict(p) for p in sealed]},
                headers={"X-Namespace": "default"},
            )
        assert decoded.status_code == 200, decoded.text
        payloads = [json_format.ParseDict(p, Payload()) for p in decoded.json()["payloads"]]
        assert any(EMAIL.encode() in payload.data for payload in payloads)
    finally:
        process.terminate()
        await process.wait()


def _applied(journey: httpx.Response) -> bool:
    return journey.status_code == 200 and journey.json()["state"]["events_applied"] == 1


async def _until_ready(http: httpx.AsyncClient, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if (await http.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.25)
    output = await asyncio.to_thread(log.read_text)
    raise AssertionError(f"equator run was not ready within 90 s: {output[-2000:]}")
