"""ASGI middleware for the ingest API: a bound on the requests worked on at once, a body
size limit and one log line per request.

Each request's trace span is FastAPI's own (it continues a caller's ``traceparent``)
when a tracer provider is installed; the log line names its trace."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable

import structlog
from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.problems import PROBLEM_MEDIA_TYPE, Problem

log = structlog.get_logger("equator.http")


class _TooLarge(Exception):
    pass


class InFlightLimit:
    """At most ``limit`` requests worked on at once. One that finds no room within
    ``budget`` seconds is answered 429 with a jittered ``Retry-After`` at once, instead
    of queueing behind the rest for tens of seconds while its caller times out and sends
    it again. Health checks and metrics pass: a saturated API still says how it is."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        budget: float,
        retry_after: Callable[[], dict[str, str]],
        exempt: frozenset[str] = frozenset({"/healthz", "/readyz", "/metrics"}),
    ) -> None:
        self.app = app
        self.limit, self.budget = limit, budget
        self.retry_after = retry_after
        self.exempt = exempt
        self._room = asyncio.Semaphore(limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        try:
            async with asyncio.timeout(self.budget):
                await self._room.acquire()
        except TimeoutError:
            log.warning("http.saturated", path=scope["path"], in_flight=self.limit)
            detail = f"{self.limit} requests are being worked on; retry after the pause given"
            problem = Problem(title="Too many requests", status=429, detail=detail)
            await _answer(send, problem, self.retry_after())
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self._room.release()


class BodyLimit:
    """Refuse bodies over ``max_bytes`` with 413: by their Content-Length before the app
    reads anything, and by counting when the length is not declared (chunked).

    The rest of a refused body is read and dropped (up to ``drain_factor`` times the
    limit) before answering: a client still sending when the connection closes would see
    a reset instead of the 413."""

    def __init__(self, app: ASGIApp, max_bytes: int, drain_factor: int = 16) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.drain_bytes = max_bytes * drain_factor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._drain(receive, 0)
            await self._refuse(send)
            return
        received = 0
        more_body = True
        started = False

        async def counting_receive() -> Message:
            nonlocal received, more_body
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                more_body = message.get("more_body", False)
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if started:
                raise
            if more_body:
                await self._drain(receive, received)
            await self._refuse(send)

    async def _drain(self, receive: Receive, received: int) -> None:
        while received <= self.drain_bytes:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
            received += len(message.get("body", b""))

    async def _refuse(self, send: Send) -> None:
        problem = Problem(
            title="Payload too large",
            status=413,
            detail=f"the body may be at most {self.max_bytes} bytes",
        )
        await _answer(send, problem, {"connection": "close"})


async def _answer(send: Send, problem: Problem, headers: dict[str, str]) -> None:
    """A problem answered by the middleware itself, before the app sees the request."""
    body = json.dumps(problem.model_dump()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": problem.status,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                *((name.lower().encode(), value.encode()) for name, value in headers.items()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestLog:
    """One structured line per request: method, path, status, latency, and whatever the
    handler bound (source, customer, event id, outcome). Ids only, never bodies."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=uuid.uuid4().hex[:16])
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            span = trace.get_current_span().get_span_context()
            if span.is_valid:
                structlog.contextvars.bind_contextvars(trace_id=f"{span.trace_id:032x}")
            log.info(
                "http.request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                latency_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()
