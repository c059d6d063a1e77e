"""Group commit: writes that arrive while one is in flight go together in the next
transaction.

A store pays for a transaction (begin, commit, on SQLite a sync to disk, and the
round trips in between) whatever it holds. Journeys record their events one small
batch each, many at once, and on SQLite every writer of a process takes its turn; so
the ledger's writes queue behind each other. Grouped, the queue is written in one
transaction: the first write goes out at once, those that arrive meanwhile wait for
it and go out together next. No timer, so an idle store adds no latency.

Reads that many callers make at once (the ingest's receipt lookups) are grouped the same
way, in a session that only reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

from activities.store import Store, unreachable

Request = TypeVar("Request")
Result = TypeVar("Result")

# At most this many writes in one transaction: a bound on how long a transaction holds
# SQLite's write lock, and on what one failure sends back to be written one by one.
MOST_IN_A_GROUP = 128


class GroupCommit(Generic[Request, Result]):
    """``write`` writes a group of requests in the session's transaction and returns
    their results in order; with ``reading``, it reads them in a read-only session. A
    group holds requests whose ``size`` adds up to ``most`` (one at least): by default
    ``MOST_IN_A_GROUP`` requests."""

    def __init__(
        self,
        store: Store,
        write: Callable[[AsyncSession, Sequence[Request]], Awaitable[list[Result]]],
        *,
        reading: bool = False,
        size: Callable[[Request], int] = lambda _: 1,
        most: int = MOST_IN_A_GROUP,
    ) -> None:
        self._session = store.reading if reading else store.transaction
        self._write = write
        self._size, self._most = size, most
        self._waiting: list[tuple[Request, asyncio.Future[Result]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, request: Request) -> Result:
        """Write ``request`` in a transaction of its group; returns once it is committed."""
        done: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((request, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_groups())
        # A caller that gives up (its activity cancelled) may still see its write
        # committed, as a timed-out call may anyway: writes are retried idempotently.
        return await done

    async def _write_groups(self) -> None:
        while self._waiting:
            taken, total = 1, self._size(self._waiting[0][0])
            while taken < len(self._waiting):
                total += self._size(self._waiting[taken][0])
                if total > self._most:
                    break
                taken += 1
            group = self._waiting[:taken]
            del self._waiting[:taken]
            try:
                results = await self._in_one_transaction([request for request, _ in group])
            except Exception as err:
                if len(group) == 1 or unreachable(err):
                    # Alone, each would only wait out the same outage again.
                    for _, done in group:
                        _fail(done, err)
                    continue
                # Whatever failed must not fail the rest: each goes on its own.
                for request, done in group:
                    try:
                        (result,) = await self._in_one_transaction([request])
                    except Exception as own:
                        _fail(done, own)
                    else:
                        _resolve(done, result)
            else:
                for (_, done), result in zip(group, results, strict=True):
                    _resolve(done, result)

    async def _in_one_transaction(self, requests: list[Request]) -> list[Result]:
        async with self._session() as session:
            return await self._write(session, requests)


def _resolve(done: asyncio.Future[Result], result: Result) -> None:
    if not done.cancelled():
        done.set_result(result)


def _fail(done: asyncio.Future[Result], error: Exception) -> None:
    if not done.cancelled():
        done.set_exception(error)
