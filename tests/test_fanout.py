"""A campaign's fan-out to 500 customers on the dev server: each reached once, at the
configured rate, through a worker restart in the middle of a page, with counts that add
up."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import select
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.fanout import IN_FLIGHT
from activities.store import CampaignContactRecord, Customer, Engagement, Store
from runtime.settings import Settings
from runtime.temporal import journey_view
from runtime.worker import running_worker
from tests.journeys import NEVER_QUIET, NO_HOLDOUTS
from tests.servers import eventually
from workflows.calendar import Campaign
from workflows.config import JourneyConfig
from workflows.contracts import SIGNAL_AUDIENCE
from workflows.fanout import (
    PROGRESS_QUERY,
    CampaignFanOut,
    FanOutInput,
    FanOutPace,
    FanOutProgress,
)

pytestmark = pytest.mark.devserver

AUDIENCE = 500
PAGE = 250
RATE = 100.0


async def seed(store: Store, count: int) -> None:
    """The single customer view: ``count`` customers, none with a journey yet."""
    at = datetime.now(UTC)
    async with store.transaction() as session:
        session.add_all(
            Customer(customer_id=f"fan-{n:04d}", first_seen_at=at, updated_at=at)
            for n in range(count)
        )


async def test_a_fan_out_reaches_each_customer_once_through_a_worker_restart(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    client = dev_env.client
    settings = Settings(
        task_queue=f"fanout-{uuid.uuid4().hex[:8]}",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'e.db'}",
        journey=JourneyConfig(holdouts=NO_HOLDOUTS, contact=NEVER_QUIET),
    )
    store = Store(settings.database_url)
    await store.migrate()
    await seed(store, AUDIENCE)
    await store.close()
    start = datetime.now(UTC)
    campaign = Campaign(
        name="flash-sale",
        title="Flash Sale",
        starts_at=start,
        ends_at=start + timedelta(hours=1),
        content_key="flash-sale",
    )
    fan_out = FanOutInput(
        campaign=campaign,
        pace=FanOutPace(rate=RATE, page_size=PAGE, results_every=timedelta(seconds=1)),
        pages_per_run=1,
    )

    async def progress(handle: WorkflowHandle[Any, Any]) -> FanOutProgress:
        """The fan-out's progress; on a busy worker a query may wait behind the journeys'
        work: a slow answer counts as none yet."""
        try:
            found: FanOutProgress = await handle.query(
                PROGRESS_QUERY, result_type=FanOutProgress, rpc_timeout=timedelta(seconds=5)
            )
        except RPCError:
            return FanOutProgress()
        return found

    async def heartbeated(handle: WorkflowHandle[CampaignFanOut, FanOutProgress]) -> bool:
        """Whether the first page is being signalled and has heartbeated its place."""
        described = await handle.describe()
        return any(
            pending.activity_type.name == SIGNAL_AUDIENCE and pending.HasField("heartbeat_details")
            for pending in described.raw_description.pending_activities
        )

    async with running_worker(client, settings):
        handle = await client.start_workflow(
            CampaignFanOut.run, fan_out, id=f"campaign-{uuid.uuid4().hex[:8]}",
            task_queue=settings.task_queue,
        )  # fmt: skip
        await eventually(lambda: heartbeated(handle), bool, within=60)
    # The first worker stopped mid-page; a new one carries on from the last heartbeat.
    async with running_worker(client, settings):
        # A page a run: the fan-out continues as new on the way; the id finds the latest.
        latest = client.get_workflow_handle(handle.id)
        done = await eventually(
            lambda: progress(latest),
            lambda p: p.results.decided == AUDIENCE,
            within=240,
            interval=1,
        )
        first_run = client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
        history = await first_run.fetch_history()  # the stop was in the first run
        assert (await latest.describe()).run_id != handle.first_execution_run_id
        await latest.terminate("test over")
        # The page in flight was handed over mid-way: the stopping worker's attempt
        # failed where its heartbeat was, and the retry started from there, so the
        # journeys signalled before the stop were not signalled again (bar the calls
        # still open at the stop).
        [stopped_at] = [
            int(started.last_failure.message.split()[3])
            for event in history.events
            if (started := event.activity_task_started_event_attributes).attempt > 1
            and started.last_failure.message.startswith("worker stopping")
        ]
        assert 0 < stopped_at < PAGE
        again = [
            (await journey_view(client, f"fan-{n:04d}")).state.duplicates_ignored
            for n in range(stopped_at)
        ]
        assert sum(again) < stopped_at  # from the start again, each would count one
        assert sum(again) <= IN_FLIGHT

    assert done.reached == AUDIENCE
    assert done.pages == AUDIENCE // PAGE
    assert done.results.sent == AUDIENCE
    assert done.results.suppressed == {}
    assert done.reached_all_at is not None
    assert done.started_at is not None
    # The rate held: 500 journeys at 100 a second take 5 seconds at the least.
    assert done.reached_all_at - done.started_at >= timedelta(seconds=(AUDIENCE - 20) / RATE)
    store = Store(settings.database_url)
    async with store.transaction() as session:
        per_customer = await session.exec(
            select(Engagement.customer_id, func.count())
            .where(Engagement.ladder_run_id == "campaign-flash-sale")
            .group_by(Engagement.customer_id)
        )
        sends = dict(per_customer.all())
        filed = await session.exec(select(func.count()).select_from(CampaignContactRecord))
        contacts = filed.one()
    await store.close()
    assert len(sends) == AUDIENCE
    assert set(sends.values()) == {1}
    assert contacts == AUDIENCE
