"""Running an HTTP app inside an asyncio program (the ingest API, the codec server): the
socket bound first, then the app's services, then uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import structlog
import uvicorn

from activities.store import Store
from runtime.credentials import LEGACY_SCOPES, Source
from runtime.settings import Settings
from runtime.temporal import connect
from service.api import create_app
from service.dependencies import Services
from service.ingest import Ingest

log = structlog.get_logger(__name__)


class _Server(uvicorn.Server):
    # The program that embeds the server owns the signals (Ctrl-C, SIGTERM) and stops
    # the server when it stops; uvicorn must not take them over.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listening(host: str, port: int) -> socket.socket:
    """A socket bound and listening, before anything else starts: a taken port fails
    with its own error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP stated explicitly: asyncio sets TCP_NODELAY only on connections whose
    # socket says so, and without it every answer waits out a 40 ms delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


@asynccontextmanager
async def served(app: Any, sock: socket.socket, what: str) -> AsyncIterator[str]:
    """uvicorn serving ``app`` on ``sock`` until the block ends; yields its base URL."""
    server = _Server(uvicorn.Config(app, access_log=False, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                await task
                raise RuntimeError(f"{what} stopped while starting")
            await asyncio.sleep(0.02)
        host, port = sock.getsockname()[:2]
        yield f"http://{host if sock.family == socket.AF_INET else f'[{host}]'}:{port}"
    finally:
        log.info("serving.stopping", what=what)
        server.should_exit = True
        await task


@asynccontextmanager
async def running_api(settings: Settings) -> AsyncIterator[str]:
    """Serve the API until the block ends; yields its base URL (port 0 picks one).

    The socket is bound and the services opened here, before uvicorn starts, so a taken
    port or an unreachable store fails with its own error. Temporal is connected lazily:
    the API starts (and answers 503, and says it is not ready) while Temporal is down."""
    ingest_settings = settings.ingest
    warn_of_unscoped_keys(ingest_settings.sources)
    sock = listening(ingest_settings.host, ingest_settings.port)
    store = Store(settings.database_url)
    try:
        await store.migrate()
        client = await connect(settings, patience=ingest_settings.temporal_timeout)
        ingest = Ingest(
            client,
            store,
            settings.task_queue,
            settings.journey,
            ingest_settings.temporal_timeout,
            settings.encryption.key_cache_ttl,
        )
        app = create_app(Services(ingest_settings, client, store, ingest))
        await ingest.start()
        try:
            async with served(app, sock, "the ingest API") as url:
                yield url
        finally:
            await ingest.close()
    finally:
        sock.close()
        await store.close()


def warn_of_unscoped_keys(sources: Sequence[Source]) -> None:
    """A source configured before scopes existed keeps what its keys could do then: say
    so, once per start, with the entry that narrows it."""
    legacy = json.dumps(sorted(scope.value for scope in LEGACY_SCOPES))
    for source in sources:
        if source.key_hashes and source.scopes is None:
            log.warning(
                "auth.unscoped_source",
                source=source.name,
                advice=f'keys without scopes are deprecated: add "scopes": {legacy} to the '
                f"{source.name} entry of EQUATOR_INGEST__SOURCES, less what it does not use "
                '(a source that only sends events needs ["events:write"])',
            )
