"""Receipts held in memory while the store is unreachable, written once it returns.

An event is durable once Temporal has it; its receipt only lets the edge answer a resend
as a duplicate without signalling again. So while the store is down the ingest keeps
accepting events for running journeys, holds their receipts here, answers resends from
them, and writes them when a write gets through. Held receipts are lost if the process
stops before the store returns, or beyond ``MAX_HELD``: a resend of such an event is then
signalled again, and the journey's own dedupe (the event ids it has seen) absorbs it.
Edge dedupe degrades; correctness does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta

import structlog
from sqlalchemy.exc import SQLAlchemyError

from workflows.events import CustomerEvent

log = structlog.get_logger(__name__)

Key = tuple[str, str]

# Receipts held at most (a few hundred bytes each): an outage of minutes at thousands of
# events a second. Beyond it the oldest go first.
MAX_HELD = 200_000
# How often a held receipt's write is tried again, and how many go in one write.
RETRY_EVERY = timedelta(seconds=1)
WRITE_AT_MOST = 1_000
# The most a stopping process spends writing what is held.
CLOSE_WITHIN = timedelta(seconds=3)


class HeldReceipts:
    """Events delivered but not yet receipted, by key, oldest first; ``write`` receipts a
    list of them in the store (raising while it is unreachable)."""

    def __init__(
        self,
        write: Callable[[list[CustomerEvent]], Awaitable[object]],
        digest: Callable[[CustomerEvent], str],
        limit: int = MAX_HELD,
        every: timedelta = RETRY_EVERY,
    ) -> None:
        self._write, self._digest = write, digest
        self._limit, self._every = limit, every.total_seconds()
        self._held: OrderedDict[Key, CustomerEvent] = OrderedDict()
        self._writing: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, events: Iterable[CustomerEvent]) -> None:
        for event in events:
            self._held.setdefault((event.customer_id, event.event_id), event)
        dropped = 0
        while len(self._held) > self._limit:
            self._held.popitem(last=False)
            dropped += 1
        if dropped:
            log.warning("ingest.receipts_dropped", dropped=dropped, held=len(self._held))
        if self._held and (self._writing is None or self._writing.done()):
            self._writing = asyncio.create_task(self._write_when_possible())

    def digests(self, keys: Iterable[Key]) -> dict[Key, str]:
        """The digests of those of these events whose receipts are held."""
        return {key: self._digest(self._held[key]) for key in keys if key in self._held}

    async def close(self) -> None:
        """One last write of what is held, then stop trying."""
        if self._writing is not None:
            self._writing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writing
        # Bounded: a store that does not answer must not hold the process's stop.
        with contextlib.suppress(SQLAlchemyError, OSError, TimeoutError):
            async with asyncio.timeout(CLOSE_WITHIN.total_seconds()):
                await self._write_all()
        if self._held:
            log.warning("ingest.receipts_lost", held=len(self._held))

    async def _write_when_possible(self) -> None:
        while self._held:
            await asyncio.sleep(self._every)
            try:
                await self._write_all()
            except (SQLAlchemyError, OSError) as err:
                log.info("ingest.receipts_waiting", held=len(self._held), error=str(err))

    async def _write_all(self) -> None:
        written = 0
        while self._held:
            keys = list(itertools.islice(self._held, WRITE_AT_MOST))
            await self._write([self._held[key] for key in keys])
            for key in keys:
                self._held.pop(key, None)
            written += len(keys)
        if written:
            log.info("ingest.receipts_written", written=written)
