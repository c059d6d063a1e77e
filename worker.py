"""The worker: wires journeys and their activities to a task queue. Nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio.client import Client
from temporalio.worker import Worker

from activities.channels import Channels, OutboxChannel
from activities.engagements import EngagementActivities
from activities.erasure import ErasureActivities
from activities.ledger import LedgerActivities
from activities.store import Store
from starter.logging import configure_logging
from starter.settings import Settings
from starter.telemetry import configure_tracing
from starter.temporal import connect
from workflows.journey import CustomerJourney


@asynccontextmanager
async def running_worker(client: Client, settings: Settings) -> AsyncIterator[Worker]:
    store = Store(settings.database_url)
    await store.migrate()
    ledger = LedgerActivities(store)
    engagements = EngagementActivities(store, Channels(default=OutboxChannel()))
    erasure = ErasureActivities(store)
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[CustomerJourney],
        activities=[
            ledger.record_events,
            engagements.send_engagement,
            engagements.record_outcomes,
            erasure.erase_customer,
        ],
    )
    try:
        async with worker:
            yield worker
    finally:
        await store.close()


async def main(settings: Settings) -> None:
    client = await connect(settings)
    async with running_worker(client, settings):
        await asyncio.Event().wait()


if __name__ == "__main__":
    configure_logging()
    configure_tracing(Settings().telemetry)
    asyncio.run(main(Settings()))
