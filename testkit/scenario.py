"""Scenario tests on simulated time: real journeys, a real worker and store, on
Temporal's time-skipping server, so months of a customer's life run in seconds.

    async with scenario(config) as s:
        await s.event("sam", "purchase", day=0, amount=120)
        await s.at(day=31)
        assert [m.name for m in await s.sent("sam")] == ["we miss you"]
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlmodel import select
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.journeys import signal_with_start
from activities.store import Engagement, OutboxMessage, Store
from runtime.settings import Settings
from runtime.temporal import journey_view, send_event
from runtime.worker import running_worker
from starter.devstack import time_skipping_server
from workflows.calendar import Campaign
from workflows.config import JourneyConfig
from workflows.events import CustomerEvent, make_event
from workflows.journey import CAMPAIGN_SIGNAL, journey_id
from workflows.programme import Programme
from workflows.state import JourneyView
from workflows.timeline import TimelineEntry

S = TypeVar("S", bound=BaseModel)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Sent:
    """An engagement as the store recorded it; ``day`` is when the journey sent it, in
    days since the scenario began (None once it has left the bounded timeline).
    ``held_back``: a ghost for a customer in the programme's control group."""

    day: float | None
    cause: str
    name: str
    channel: str
    cost: Decimal
    offer_id: str | None
    outcome: str | None
    key: str
    held_back: bool = False


class Scenario:
    """One worker on its own task queue, and the calls a scenario needs."""

    def __init__(self, env: WorkflowEnvironment, settings: Settings, start: datetime) -> None:
        self.env = env
        self.settings = settings
        # When the scenario began on the server's clock: day 0.
        self.start = start
        self.customers: set[str] = set()

    @property
    def client(self) -> Client:
        return self.env.client

    @property
    def config(self) -> JourneyConfig:
        return self.settings.journey

    def day(self, n: float) -> datetime:
        return self.start + n * DAY

    async def now(self) -> datetime:
        return await self.env.get_current_time()

    async def at(self, day: float) -> None:
        """Move the server's clock on to ``day`` (never back)."""
        remaining = self.day(day) - await self.now()
        if remaining > timedelta(0):
            await self.env.sleep(remaining)

    async def event(
        self,
        customer_id: str,
        type: str,
        day: float | None = None,
        event_id: str | None = None,
        **properties: Any,
    ) -> CustomerEvent:
        """Send an event that happens at ``day`` (now if None), moving the clock there."""
        if day is not None:
            await self.at(day)
        event = make_event(
            event_id or f"ev-{uuid.uuid4().hex[:12]}",
            customer_id,
            type,
            await self.now(),
            properties,
        )
        await self.send(event)
        return event

    async def send(self, event: CustomerEvent) -> WorkflowHandle[Any, Any]:
        """Send an event as it is (its own time), as the ingest API would."""
        handle = await send_event(self.client, self.settings.task_queue, self.config, event)
        self.customers.add(event.customer_id)
        return handle

    async def campaign(self, customer_id: str, campaign: Campaign) -> None:
        """What the fan-out does for one customer: signal-with-start with the campaign."""
        await signal_with_start(
            self.client,
            self.settings.task_queue,
            self.config,
            customer_id,
            CAMPAIGN_SIGNAL,
            campaign,
        )
        self.customers.add(customer_id)

    async def view(self, customer_id: str) -> JourneyView:
        return await journey_view(self.client, customer_id)

    async def state(self, customer_id: str, programme: Programme[S]) -> S | None:
        """A programme's state in the customer's journey (None while it has none)."""
        return programme.state_in((await self.view(customer_id)).state)

    async def timeline(
        self, customer_id: str, programme: str | None = None, kind: str | None = None
    ) -> list[TimelineEntry]:
        entries = (await self.view(customer_id)).state.timeline
        return [
            entry
            for entry in entries
            if (programme is None or entry.programme == programme)
            and (kind is None or entry.kind == kind)
        ]

    async def sent(self, customer_id: str) -> list[Sent]:
        """What went out to the customer (ghosts included), in the order the journey
        sent it."""
        when = {
            entry.engagement: (entry.at - self.start) / DAY
            for entry in await self.timeline(customer_id)
            if entry.engagement and entry.kind in ("engagement_sent", "engagement_held_back")
        }
        found = []
        for row in await engagements(self.settings.database_url, customer_id):
            key = row.idempotency_key.split("/", 2)[2]
            day = when.get(key)
            found.append(
                Sent(
                    day=round(day, 3) if day is not None else None,
                    cause=row.cause,
                    name=row.step_name,
                    channel=row.channel,
                    cost=row.cost,
                    offer_id=row.offer_id,
                    outcome=row.outcome,
                    key=key,
                    held_back=row.held_back,
                )
            )
        return found

    async def end_all(self) -> None:
        """Journeys never end by themselves; a scenario ends its own so that none is
        left waiting for a worker that is gone (the time-skipping server would wait)."""
        for customer_id in self.customers:
            handle = self.client.get_workflow_handle(journey_id(customer_id))
            with contextlib.suppress(RPCError):
                await handle.terminate("scenario over")


async def engagements(database_url: str, customer_id: str) -> list[Engagement]:
    """What the store says was sent to the customer (ghosts included), oldest first."""
    rows = await _customer_rows(database_url, Engagement, customer_id)
    return sorted(rows, key=lambda e: (e.sent_at, e.id or 0))


async def deliveries(database_url: str, customer_id: str) -> list[OutboxMessage]:
    """What the default channel (the outbox) was given for the customer to receive."""
    rows = await _customer_rows(database_url, OutboxMessage, customer_id)
    return sorted(rows, key=lambda m: m.id or 0)


Row = TypeVar("Row", Engagement, OutboxMessage)


async def _customer_rows(database_url: str, table: type[Row], customer_id: str) -> list[Row]:
    store = Store(database_url)
    try:
        async with store.reading() as session:
            rows = await session.exec(select(table).where(table.customer_id == customer_id))
            return list(rows.all())
    finally:
        await store.close()


@asynccontextmanager
async def scenario(
    config: JourneyConfig | None = None,
    database_url: str | None = None,
    env: WorkflowEnvironment | None = None,
) -> AsyncIterator[Scenario]:
    """A scenario: its own time-skipping server unless ``env`` is given, a worker on its
    own task queue, and a store (a fresh SQLite file unless ``database_url`` is given)."""
    async with contextlib.AsyncExitStack() as stack:
        if env is None:
            env = await stack.enter_async_context(time_skipping_server())
        if database_url is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory())
            database_url = f"sqlite+aiosqlite:///{folder}/equator.db"
        settings = Settings(
            task_queue=f"scenario-{uuid.uuid4().hex[:8]}",
            database_url=database_url,
            journey=config or JourneyConfig(),
        )
        await stack.enter_async_context(running_worker(env.client, settings))
        world = Scenario(env, settings, await env.get_current_time())
        try:
            yield world
        finally:
            await world.end_all()
