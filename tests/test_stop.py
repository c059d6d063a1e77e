"""A clean stop: Ctrl-C on `equator run` (SIGINT to its whole process group, as a
terminal sends it) while the demo's Flash Sale is fanning out stops the demo, the API,
the worker and then the dev server, quickly and without a warning."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

from tests.servers import embedded_stack

# Where the fan-out is in flight: the journeys are filing the campaign's contacts.
FANNING_OUT = b"campaign.contacts_recorded"
NOISE = (b'"level": "warning"', b'"level": "error"', b"WARN", b"Traceback", b"Error")


async def test_ctrl_c_stops_everything_quickly_and_quietly(tmp_path: Path) -> None:
    environment = embedded_stack(tmp_path)
    temporal_port = int(environment["EQUATOR_TEMPORAL_ADDRESS"].rsplit(":", 1)[1])
    # Started with SIGINT ignored, as a script's background job is: Ctrl-C must stop it
    # all the same (CI launched from such a script saw it ignored).
    process = await asyncio.create_subprocess_exec(
        "sh", "-c", f'trap "" INT; exec {sys.executable} -m starter.cli run',
        env=environment, start_new_session=True,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    try:
        async with asyncio.timeout(120):
            while FANNING_OUT not in (line := await process.stderr.readline()):
                assert line, "equator run ended before its demo fanned out"
        began = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)
        after = await _stopped(process, process.stderr, within=30)
        took = time.monotonic() - began
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    assert process.returncode == 0
    assert took < 6, f"the stop took {took:.1f} s"
    noisy = [line for line in after.splitlines() if any(n in line for n in NOISE)]
    assert noisy == []
    # The dev server went too: nothing answers on its port.
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", temporal_port)) != 0


async def _stopped(
    process: asyncio.subprocess.Process, stderr: asyncio.StreamReader, within: float
) -> bytes:
    """What the process wrote until it exited; past ``within``, fail with its last words,
    which say what it was still waiting for."""
    said: list[bytes] = []
    try:
        async with asyncio.timeout(within):
            while line := await stderr.readline():
                said.append(line)
            await process.wait()
    except TimeoutError:
        tail = b"".join(said[-40:]).decode(errors="replace")
        raise AssertionError(f"still running {within} s after Ctrl-C; it said:\n{tail}") from None
    return b"".join(said)
