"""The ingest's part in knowing the feed's outages (``activities/feed.py``): a heartbeat
while it runs; the gap before it, when it is the first process up after none was; and
the stretches in which its circuit to Temporal was open. What the store cannot take at
the moment (it may be down too) is written at the next beat."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy.exc import SQLAlchemyError

from activities.feed import HEARTBEAT_EVERY, NO_INGEST, Feed, no_ingest_since
from activities.store import Store, utcnow

log = structlog.get_logger(__name__)

TEMPORAL_UNREACHABLE = "Temporal unreachable from the ingest"


@dataclass
class _Stretch:
    started_at: datetime
    ended_at: datetime | None = None
    id: int | None = None
    end_written: bool = False


class FeedWatch:
    def __init__(self, store: Store) -> None:
        process = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        self._store = store
        self._feed = Feed(store, process[-64:])
        self._unwritten: list[_Stretch] = []
        self._beating: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def start(self) -> None:
        """Record the gap if no process was up before this one, then beat."""
        with contextlib.suppress(SQLAlchemyError, OSError):
            since = await no_ingest_since(self._store)
            if since is not None:
                await self._feed.began(since, NO_INGEST, ended_at=utcnow())
                log.warning("feed.outage_recorded", cause=NO_INGEST, since=since.isoformat())
        self._beating = asyncio.create_task(self._beat())

    async def close(self) -> None:
        if self._beating is not None:
            self._beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beating
        # Bounded: a store that does not answer must not hold the process's stop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3):
                await self._write()

    def temporal_lost(self) -> None:
        """The circuit to Temporal opened: events are refused from now."""
        self._unwritten.append(_Stretch(started_at=utcnow()))
        self._wake.set()

    def temporal_back(self) -> None:
        if self._unwritten and self._unwritten[-1].ended_at is None:
            self._unwritten[-1].ended_at = utcnow()
        self._wake.set()

    async def _beat(self) -> None:
        """Beat every ``HEARTBEAT_EVERY``, and write the circuit's stretches at once."""
        while True:
            await self._write()
            try:
                await self._feed.beat()
            except (SQLAlchemyError, OSError) as err:
                log.info("feed.heartbeat_failed", error=str(err))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HEARTBEAT_EVERY.total_seconds()):
                    await self._wake.wait()
            self._wake.clear()

    async def _write(self) -> None:
        """The circuit's stretches not yet (wholly) in the store, oldest first."""
        try:
            for stretch in list(self._unwritten):
                if stretch.id is None:
                    stretch.id = await self._feed.began(
                        stretch.started_at, TEMPORAL_UNREACHABLE, stretch.ended_at
                    )
                    stretch.end_written = stretch.ended_at is not None
                elif stretch.ended_at is not None and not stretch.end_written:
                    await self._feed.ended(stretch.id, stretch.ended_at)
                    stretch.end_written = True
                if stretch.end_written:
                    self._unwritten.remove(stretch)
        except (SQLAlchemyError, OSError) as err:
            log.info("feed.outage_unwritten", error=str(err), waiting=len(self._unwritten))
