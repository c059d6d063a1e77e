"""ASGI middleware for the ingest API: a body size limit and one log line per request.

Each request's trace span is FastAPI's own (it continues a caller's ``traceparent``)
when a tracer provider is installed; the log line names its trace."""

from __future__ import annotations

import json
import time
import uuid

import structlog
from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.problems import PROBLEM_MEDIA_TYPE, Problem

log = structlog.get_logger("equator.http")


class _TooLarge(Exception):
    pass


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
        body = json.dumps(problem.model_dump()).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
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
