"""The feed's outages: stretches in which customers' events could not reach their
journeys, so that a journey does not take an outage for a customer's silence.

Three kinds are known:
- the ingest found Temporal unreachable (its circuit was open: events were refused);
- no ingest process was up (no heartbeat for ``STALE_AFTER``): recorded by the first
  process that starts again, and, while none is up, told to journeys as one not over;
- ops say a source was out (``equator feed outage``): a till export that failed, a
  webhook that was switched off.

A store outage is not one of them: the ingest accepts events for running journeys
through it (``service/ingest.py``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, or_, update
from sqlmodel import col, select
from temporalio import activity

from activities.store import FeedOutage, IngestHeartbeat, Store, utcnow
from workflows.contracts import FEED_OUTAGES, FeedOutages, FeedOutagesRequest
from workflows.contracts import FeedOutage as Outage

# How often each ingest process says it is up, and how long without any such word
# means none is.
HEARTBEAT_EVERY = timedelta(seconds=30)
STALE_AFTER = HEARTBEAT_EVERY * 3
NO_INGEST = "no ingest process was up"


class FeedActivities:
    def __init__(self, store: Store) -> None:
        self._store = store

    @activity.defn(name=FEED_OUTAGES)
    async def feed_outages(self, request: FeedOutagesRequest) -> FeedOutages:
        """The outages that overlap the time since ``request.since``, oldest first, and,
        while no ingest process is up, one that is not over."""
        return FeedOutages(outages=await outages_since(self._store, request.since))


async def outages_since(store: Store, since: datetime) -> list[Outage]:
    async with store.reading() as session:
        rows = await session.exec(
            select(FeedOutage)
            .where(or_(col(FeedOutage.ended_at).is_(None), col(FeedOutage.ended_at) > since))
            .order_by(col(FeedOutage.started_at))
        )
        found = [
            Outage(started_at=row.started_at, ended_at=row.ended_at, cause=row.cause)
            for row in rows.all()
        ]
    since_up = await no_ingest_since(store)
    if since_up is not None:
        found.append(Outage(started_at=since_up, cause=NO_INGEST))
    return found


async def no_ingest_since(store: Store) -> datetime | None:
    """When an ingest process was last heard of, if that is longer ago than
    ``STALE_AFTER`` (no process was up since); None if one was heard of lately, or none
    ever was."""
    async with store.reading() as session:
        last = (await session.exec(select(func.max(IngestHeartbeat.seen_at)))).one()
    return last if last is not None and utcnow() - last > STALE_AFTER else None


class Feed:
    """What the ingest writes of the feed: its heartbeat, and the outages it sees."""

    def __init__(self, store: Store, process_id: str) -> None:
        self._store, self._process_id = store, process_id

    async def beat(self) -> None:
        now = utcnow()
        statement = (
            self._store.insert(IngestHeartbeat)
            .values(process_id=self._process_id, seen_at=now)
            .on_conflict_do_update(index_elements=["process_id"], set_={"seen_at": now})
        )
        async with self._store.transaction() as session:
            await (await session.connection()).execute(statement)

    async def began(
        self, started_at: datetime, cause: str, ended_at: datetime | None = None
    ) -> int:
        """Record an outage (over, with ``ended_at``); returns its id."""
        row = FeedOutage(started_at=started_at, ended_at=ended_at, cause=cause)
        async with self._store.transaction() as session:
            session.add(row)
            await session.flush()
            assert row.id is not None
            return row.id

    async def ended(self, outage_id: int, ended_at: datetime) -> None:
        statement = (
            update(FeedOutage).where(col(FeedOutage.id) == outage_id).values(ended_at=ended_at)
        )
        async with self._store.transaction() as session:
            await (await session.connection()).execute(statement)
