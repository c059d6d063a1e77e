"""A circuit breaker for Temporal: fail at once while it is known to be unreachable.

Without it, every request during an outage waits out the client's retries (seconds)
before its 503, and holds its connection, its slot and its caller that long. The circuit
opens on the first call that could not reach Temporal. While open, callers are told at
once; a probe (a health check) tries once a second, and the first that gets through
closes it, so recovery is noticed within a second without any caller paying for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog

log = structlog.get_logger(__name__)

PROBE_EVERY = timedelta(seconds=1)


class Circuit:
    def __init__(
        self,
        probe: Callable[[], Awaitable[object]],
        every: timedelta = PROBE_EVERY,
        opened: Callable[[], None] = lambda: None,
        closed: Callable[[], None] = lambda: None,
    ) -> None:
        self._probe, self._every = probe, every.total_seconds()
        self._opened, self._closed = opened, closed
        self._probing: asyncio.Task[None] | None = None

    @property
    def open(self) -> bool:
        return self._probing is not None and not self._probing.done()

    def trip(self, error: str) -> None:
        """A call could not reach Temporal: open, unless already open."""
        if not self.open:
            log.warning("circuit.opened", error=error)
            self._probing = asyncio.create_task(self._probe_until_through())
            self._opened()

    async def close(self) -> None:
        """Stop probing (the process is stopping)."""
        if self._probing is not None:
            self._probing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probing

    async def _probe_until_through(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                await self._probe()
            except Exception:  # still unreachable, whatever the form of the failure
                continue
            log.info("circuit.closed")
            self._closed()
            return
