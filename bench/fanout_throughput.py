"""Campaign fan-out rate on the dev server, beside a bare signal loop on the same server.

    .venv/bin/python -m bench.fanout_throughput [--customers 5000] [--existing] [--journeys]

Starts a dev server (in memory). The bare loop: the client signal-with-starts a campaign
to ``customers`` journeys, 100 in flight, nothing else. The fan-out: ``customers`` more
in the single customer view (SQLite), one ``CampaignFanOut`` with no rate limit to
speak of, paging and signalling in activities on a worker of its own. What is measured
is the signalling, as with Temporal's batch signal (50 executions/s by default): no
journey worker runs meanwhile, so both only start and signal journeys. With
``--existing`` every journey exists beforehand and is only signalled (the common case
once customers have journeys); otherwise each signal starts its journey.

With ``--journeys`` a journey worker runs in this process throughout, and each side is
timed end to end: until every journey it reached has decided and filed its contact
(a ``campaign_contact`` row). That is the campaign as customers get it, beside the bare
loop's journeys doing the same work.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from datetime import time as clock

from sqlmodel import func, select
from temporalio.client import Client
from temporalio.worker import Worker

from activities.campaigns import CampaignActivities
from activities.fanout import FanOutActivities
from activities.journeys import signal_with_start
from activities.store import CampaignContactRecord, Customer, Store
from bench.processes import dev_server
from runtime.logging import configure_logging
from runtime.settings import Settings, WorkerSettings
from runtime.worker import WORKFLOW_RUNNER, running_worker
from workflows.calendar import Campaign
from workflows.config import JourneyConfig
from workflows.contact import ContactPolicy
from workflows.fanout import (
    PROGRESS_QUERY,
    CampaignFanOut,
    FanOutInput,
    FanOutPace,
    FanOutProgress,
)
from workflows.journey import CAMPAIGN_SIGNAL

IN_FLIGHT = 100
BATCH_SIGNAL_DEFAULT = 50


def campaign(name: str) -> Campaign:
    now = datetime.now(UTC)
    return Campaign(
        name=name, title=name, starts_at=now, ends_at=now + timedelta(hours=1), content_key=name
    )


async def bench(customers: int, existing: bool, journeys: bool) -> None:
    env = await dev_server()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            task_queue=f"bench-{uuid.uuid4().hex[:6]}",
            database_url=f"sqlite+aiosqlite:///{tmp}/bench.db",
            # Campaigns go out whatever the hour the benchmark runs at.
            journey=JourneyConfig(contact=ContactPolicy(quiet_start=clock(0), quiet_end=clock(0))),
            # Every journey stays cached, as the bare loop's would: what is measured is the
            # work a campaign brings, not replays after evictions.
            worker=WorkerSettings(max_cached_journeys=4 * customers),
        )
        store = Store(settings.database_url)
        await store.migrate()
        now = datetime.now(UTC)
        async with store.transaction() as session:
            session.add_all(
                Customer(customer_id=f"fan-{n:06d}", first_seen_at=now, updated_at=now)
                for n in range(customers)
            )
        await store.close()
        async with env, AsyncExitStack() as stack:
            client = env.client
            if journeys:
                await stack.enter_async_context(running_worker(client, settings))
            bare_ids = [f"bare-{n:06d}" for n in range(customers)]
            fan_ids = [f"fan-{n:06d}" for n in range(customers)]
            if existing:
                warm_up = campaign("warm-up")
                await signal_all(client, settings, warm_up, [*bare_ids, *fan_ids])
                if journeys:
                    await until_filed(settings, warm_up, 2 * customers)
            started = time.perf_counter()
            bare_loop = campaign("bare-loop")
            await signal_all(client, settings, bare_loop, bare_ids)
            if journeys:
                await until_filed(settings, bare_loop, customers)
            bare_seconds = time.perf_counter() - started
            started = time.perf_counter()
            sale = campaign("fan-out")
            progress = await fan_out(client, settings, sale)
            assert progress.started_at is not None
            assert progress.reached_all_at is not None
            fan_out_seconds = (progress.reached_all_at - progress.started_at).total_seconds()
            if journeys:
                await until_filed(settings, sale, customers)
                fan_out_seconds = time.perf_counter() - started

    kind = "existing journeys" if existing else "journeys started by the signal"
    until = ", until every journey filed its contact" if journeys else ""
    print(f"customers={customers} each way, {kind}{until}; bare loop with {IN_FLIGHT} in flight")
    print(f"bare signal loop: {customers / bare_seconds:.0f} journeys/s ({bare_seconds:.1f}s)")
    print(
        f"campaign fan-out: {progress.reached / fan_out_seconds:.0f} journeys/s "
        f"({fan_out_seconds:.1f}s, {progress.pages} pages)"
    )
    print(f"fan-out / bare loop: {bare_seconds / fan_out_seconds:.2f}")
    print(f"Temporal batch signal default: {BATCH_SIGNAL_DEFAULT} executions/s")


async def until_filed(settings: Settings, sale: Campaign, journeys: int) -> None:
    """Wait until ``journeys`` contacts of the campaign are in the store."""
    store = Store(settings.database_url)
    try:
        while True:
            async with store.reading() as session:
                filed = (
                    await session.exec(
                        select(func.count()).where(CampaignContactRecord.campaign == sale.name)
                    )
                ).one()
            if filed >= journeys:
                return
            await asyncio.sleep(0.2)
    finally:
        await store.close()


async def signal_all(
    client: Client, settings: Settings, sale: Campaign, customer_ids: list[str]
) -> None:
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def signal(customer: str) -> None:
        async with gate:
            await signal_with_start(
                client, settings.task_queue, settings.journey, customer, CAMPAIGN_SIGNAL, sale
            )

    await asyncio.gather(*(signal(customer) for customer in customer_ids))


async def fan_out(client: Client, settings: Settings, sale: Campaign) -> FanOutProgress:
    """One fan-out, on a worker that runs only fan-outs (journeys queue for theirs)."""
    store = Store(settings.database_url)
    campaigns = CampaignActivities(store)
    signalling = FanOutActivities(client, settings.task_queue, settings.journey)
    worker = Worker(
        client,
        task_queue="bench-fan-out",
        workflows=[CampaignFanOut],
        activities=[
            campaigns.audience_page,
            campaigns.campaign_results,
            signalling.signal_audience,
        ],
        workflow_runner=WORKFLOW_RUNNER,
    )
    async with worker:
        handle = await client.start_workflow(
            CampaignFanOut.run,
            FanOutInput(campaign=sale, pace=FanOutPace(rate=1_000_000.0, page_size=1_000)),
            id="campaign-bench",
            task_queue="bench-fan-out",
        )
        while True:
            await asyncio.sleep(0.5)
            progress: FanOutProgress = await handle.query(
                PROGRESS_QUERY, result_type=FanOutProgress
            )
            if progress.reached_all_at is not None:
                break
        await handle.terminate()
    await store.close()
    return progress


def main() -> None:
    configure_logging(logging.WARNING)  # a line per journey would be the bottleneck
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--existing", action="store_true", help="journeys exist beforehand")
    parser.add_argument("--journeys", action="store_true", help="a journey worker runs too")
    args = parser.parse_args()
    asyncio.run(bench(args.customers, args.existing, args.journeys))


if __name__ == "__main__":
    main()
