"""Helpers for scenario tests: run journeys on a real server, send events, read state."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlmodel import select
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.journeys import signal_with_start
from activities.store import Engagement, Store
from runtime.settings import Settings
from runtime.temporal import journey_view, send_event
from runtime.worker import running_worker
from workflows.calendar import Campaign
from workflows.config import JourneyConfig
from workflows.contact import ContactPolicy
from workflows.contracts import EngagementRequest
from workflows.events import CustomerEvent, make_event
from workflows.journey import CAMPAIGN_SIGNAL, journey_id
from workflows.programmes.above_the_line import OffersState
from workflows.programmes.remediation import LadderRun, RemediationState
from workflows.registry import ABOVE_THE_LINE, REMEDIATION
from workflows.state import JourneyView

# Scenarios must not depend on the hour they run at: no quiet hours.
NEVER_QUIET = ContactPolicy(quiet_start=time(0), quiet_end=time(0))


def event(
    customer_id: str, type: str, at: datetime, event_id: str | None = None, **properties: Any
) -> CustomerEvent:
    return make_event(event_id or f"ev-{uuid.uuid4().hex[:12]}", customer_id, type, at, properties)


def engagement_request(
    key: str = "customer-c3/run/silence-1/step-1", customer_id: str = "c3"
) -> EngagementRequest:
    """The first step of a silence ladder, as a journey asks for it."""
    return EngagementRequest(
        idempotency_key=key,
        customer_id=customer_id,
        cause="silence",
        ladder_run_id="silence-1",
        step=1,
        step_name="we miss you",
        channel="email",
        cost=Decimal("0.05"),
    )


def remediation(view: JourneyView) -> RemediationState:
    """The remediation programme's state (always there: it watches for silence)."""
    state = REMEDIATION.state_in(view.state)
    assert state is not None
    return state


def climbing(view: JourneyView) -> LadderRun:
    """The ladder climbing in the journey (there must be one)."""
    run = remediation(view).ladder
    assert run is not None, "no ladder is climbing"
    return run


def offers(view: JourneyView) -> OffersState:
    return ABOVE_THE_LINE.state_in(view.state) or OffersState()


class Journeys:
    """A worker on its own task queue, and the calls a scenario needs."""

    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.customers: set[str] = set()

    @property
    def config(self) -> JourneyConfig:
        return self.settings.journey

    async def send(self, event: CustomerEvent) -> WorkflowHandle[Any, Any]:
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

    async def end_all(self) -> None:
        """Journeys never end by themselves; a scenario ends its own so that none is
        left waiting for a worker that is gone (the time-skipping server would wait)."""
        for customer_id in self.customers:
            handle = self.client.get_workflow_handle(journey_id(customer_id))
            with contextlib.suppress(RPCError):
                await handle.terminate("scenario over")

    async def view(self, customer_id: str) -> JourneyView:
        return await journey_view(self.client, customer_id)


@asynccontextmanager
async def journeys(
    client: Client, database_url: str, config: JourneyConfig | None = None
) -> AsyncIterator[Journeys]:
    settings = Settings(
        task_queue=f"test-{uuid.uuid4().hex[:8]}",
        database_url=database_url,
        journey=config or JourneyConfig(),
    )
    async with running_worker(client, settings):
        world = Journeys(client, settings)
        try:
            yield world
        finally:
            await world.end_all()


async def engagements(db_url: str, customer_id: str) -> list[Engagement]:
    """What the store says was sent to the customer, oldest first."""
    store = Store(db_url)
    try:
        async with store.transaction() as session:
            rows = await session.exec(
                select(Engagement).where(Engagement.customer_id == customer_id)
            )
            return sorted(rows.all(), key=lambda e: e.sent_at)
    finally:
        await store.close()


async def now(env: WorkflowEnvironment) -> datetime:
    return await env.get_current_time()


def days(n: float) -> timedelta:
    return timedelta(days=n)


async def sleep_until(env: WorkflowEnvironment, moment: datetime) -> None:
    """Skip the server's clock forward to ``moment``."""
    remaining = moment - await env.get_current_time()
    if remaining > timedelta(0):
        await env.sleep(remaining)
