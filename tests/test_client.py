"""The project's own client honours "not now": a 429 or 503 is tried again after the
wait the API advised, jittered, a bounded number of times, and so is a call the API
dropped; and the API's advice is jittered too. Over real HTTP, against small servers
that refuse or hang up on cue."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from service.dependencies import jittered
from service.serving import listening, served
from starter.client import LONGEST_WAIT, ApiError, EquatorClient, event_body, retry_wait


@pytest.fixture
async def refusing() -> AsyncIterator[tuple[str, list[int]]]:
    """Answers 503 (Retry-After: 1) twice, then 429 once, then takes the event. Yields
    its URL and the statuses it answered."""
    answered: list[int] = []
    app = FastAPI()

    @app.post("/v1/events")
    async def post_event() -> JSONResponse:
        status = {0: 503, 1: 503, 2: 429}.get(len(answered), 202)
        answered.append(status)
        if status == 202:
            body = {"event_id": "e-1", "journey_id": "customer-c1", "duplicate": False}
            return JSONResponse(body, status_code=202)
        problem = {"title": "Unavailable", "status": status, "detail": "not now"}
        return JSONResponse(problem, status_code=status, headers={"Retry-After": "1"})

    sock = listening("127.0.0.1", 0)
    try:
        async with served(app, sock, "a refusing API") as url:
            yield url, answered
    finally:
        sock.close()


async def test_the_client_waits_as_advised_and_tries_again(refusing: tuple[str, list[int]]) -> None:
    url, answered = refusing
    async with EquatorClient(url, "eqk_x") as client:
        accepted = await client.send(event_body("c1", "purchase", {"amount": "1.00"}, "e-1"))
    assert accepted.event_id == "e-1"
    assert answered == [503, 503, 429, 202]


async def test_the_client_gives_up_after_its_retries(refusing: tuple[str, list[int]]) -> None:
    url, answered = refusing
    async with EquatorClient(url, "eqk_x", retries=1) as client:
        with pytest.raises(ApiError) as refused:
            await client.send(event_body("c1", "purchase", {"amount": "1.00"}, "e-1"))
    assert refused.value.problem.status == 503
    assert answered == [503, 503]


@pytest.fixture
async def hanging_up() -> AsyncIterator[tuple[str, list[bytes]]]:
    """Reads each request and hangs up without an answer twice (an API going down mid
    request), then takes the event. Yields its URL and the bodies it read."""
    bodies: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        bodies.append(await reader.readexactly(length))
        if len(bodies) > 2:
            body = {"event_id": "e-1", "journey_id": "customer-c1", "duplicate": False}
            accepted = json.dumps(body).encode()
            writer.write(
                b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(accepted), accepted)
            )
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        host, port = server.sockets[0].getsockname()[:2]
        yield f"http://{host}:{port}", bodies


async def test_the_client_sends_again_when_the_api_hangs_up(
    hanging_up: tuple[str, list[bytes]],
) -> None:
    url, bodies = hanging_up
    event = event_body("c1", "purchase", {"amount": "1.00"}, "e-1")
    async with EquatorClient(url, "eqk_x") as client:
        accepted = await client.send(event)
    assert accepted.event_id == "e-1"
    # The same event each time: the API's dedupe makes the resends safe.
    assert [json.loads(body) for body in bodies] == [event] * 3


async def test_the_client_gives_up_on_an_api_that_keeps_hanging_up(
    hanging_up: tuple[str, list[bytes]],
) -> None:
    url, bodies = hanging_up
    async with EquatorClient(url, "eqk_x", retries=1) as client:
        with pytest.raises(httpx.TransportError):
            await client.send(event_body("c1", "purchase", {"amount": "1.00"}, "e-1"))
    assert len(bodies) == 2


def test_waits_follow_the_advice_jittered_and_capped() -> None:
    waits = [retry_wait("4", 0) for _ in range(200)]
    assert all(2 <= wait <= 6 for wait in waits)
    assert max(waits) - min(waits) > 1  # spread, not one moment for everyone
    assert all(retry_wait("3600", 0) <= LONGEST_WAIT * 1.5 for _ in range(50))
    # No advice: half a second, doubling.
    assert all(2 <= retry_wait(None, 3) <= 6 for _ in range(50))


def test_the_apis_advice_is_jittered_about_the_setting() -> None:
    advised = [jittered(5) for _ in range(200)]
    assert set(advised) <= set(range(2, 9))
    assert len(set(advised)) >= 3
    assert jittered(1) >= 1
