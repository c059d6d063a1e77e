"""Running the ingest API inside an asyncio program: its services, then uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import uvicorn

from activities.store import Store
from runtime.settings import Settings
from runtime.temporal import connect
from service.api import Services, create_app
from service.ingest import Ingest


class _Server(uvicorn.Server):
    # The program that embeds the server owns the signals (Ctrl-C, SIGTERM) and stops
    # the server when it stops; uvicorn must not take them over.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _listening_socket(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
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
async def running_api(settings: Settings) -> AsyncIterator[str]:
    """Serve the API until the block ends; yields its base URL (port 0 picks one).

    The socket is bound and the services opened here, before uvicorn starts, so a taken
    port or an unreachable store fails with its own error. Temporal is connected lazily:
    the API starts (and answers 503, and says it is not ready) while Temporal is down."""
    ingest_settings = settings.ingest
    family = socket.AF_INET6 if ":" in ingest_settings.host else socket.AF_INET
    sock = _listening_socket(family, ingest_settings.host, ingest_settings.port)
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
        )
        app = create_app(Services(ingest_settings, client, store, ingest))
        config = uvicorn.Config(app, access_log=False, log_config=None, lifespan="off")
        server = _Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                if task.done():
                    await task
                    raise RuntimeError("the ingest API stopped while starting")
                await asyncio.sleep(0.02)
            host, port = sock.getsockname()[:2]
            yield f"http://{host if family == socket.AF_INET else f'[{host}]'}:{port}"
        finally:
            server.should_exit = True
            await task
    finally:
        sock.close()
        await store.close()
