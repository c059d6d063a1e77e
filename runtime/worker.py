"""The worker's wiring: journeys, campaign fan-outs and their activities on a task queue,
the courier that delivers the outbox beside them and, with encryption on, the shredder of
erased customers' data keys. Nothing else. ``worker.py`` runs
it as a process; ``equator run`` / ``equator worker``, the tests and the benchmarks run
it in theirs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from functools import partial

import structlog
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.audit import AuditActivities
from activities.campaigns import CampaignActivities
from activities.courier import Courier
from activities.data_keys import KeyShredder
from activities.engagements import EngagementActivities
from activities.erasure import ErasureActivities
from activities.fanout import FanOutActivities
from activities.feed import FeedActivities
from activities.ledger import LedgerActivities
from activities.store import Store
from runtime.codec import EncryptionCodec
from runtime.settings import Settings
from runtime.temporal import connect, journey_run_ended, missing_search_attributes
from workflows.fanout import CampaignFanOut
from workflows.journey import CustomerJourney

log = structlog.get_logger(__name__)

SHUTDOWN_GRACE = timedelta(seconds=10)
# The workflow modules hold no state and do no I/O: pass them through the sandbox whole,
# so that each run uses the same module objects (a module re-imported inside the sandbox
# gets restricted stand-ins for classes such as ZoneInfo).
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows")
)


@asynccontextmanager
async def running_worker(client: Client, settings: Settings) -> AsyncIterator[Worker]:
    # A journey upserting an attribute the namespace lacks would fail its workflow task
    # until someone registers it: refuse to start instead, and say what to do.
    with contextlib.suppress(RPCError):  # a namespace that will not say is not refused
        if missing := await missing_search_attributes(client):
            raise RuntimeError(
                f"search attributes {', '.join(missing)} are not registered in namespace "
                f"{client.namespace!r}: run `equator temporal setup` (README, Configuration)"
            )
    store = Store(settings.database_url)
    await store.migrate()
    ledger = LedgerActivities(store)
    courier = Courier(store, settings.delivery, settings.journey.contact)
    engagements = EngagementActivities(store, settings.worker.offer_seed, courier.wake)
    erasure = ErasureActivities(store)
    audit = AuditActivities(store)
    feed = FeedActivities(store)
    campaigns = CampaignActivities(store)
    fan_out = FanOutActivities(client, settings.task_queue, settings.journey)
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        workflow_runner=WORKFLOW_RUNNER,
        max_cached_workflows=settings.worker.max_cached_journeys,
        # Stopping lets activities in flight finish (they are short writes); a long
        # one (a fan-out's page) stops at once by itself and resumes elsewhere.
        graceful_shutdown_timeout=SHUTDOWN_GRACE,
        workflows=[CustomerJourney, CampaignFanOut],
        activities=[
            ledger.record_events,
            ledger.record_holdouts,
            engagements.send_engagement,
            engagements.record_outcomes,
            engagements.record_attributions,
            engagements.choose_offer,
            erasure.erase_customer,
            audit.record_audit,
            feed.feed_outages,
            campaigns.record_campaign_contacts,
            campaigns.audience_page,
            campaigns.campaign_results,
            fan_out.signal_audience,
        ],
    )
    try:
        # Leaving, the worker stops first, then the courier finishes its round in flight.
        async with courier.running(SHUTDOWN_GRACE), _shredding(client), worker:
            try:
                yield worker
            finally:
                log.info("worker.stopping", grace_seconds=SHUTDOWN_GRACE.total_seconds())
    finally:
        await store.close()


def _shredding(client: Client) -> AbstractAsyncContextManager[None]:
    """With encryption on, erased customers' data keys are shredded once their journey
    has ended (``activities/data_keys.py``)."""
    codec = client.data_converter.payload_codec
    if not isinstance(codec, EncryptionCodec):
        return contextlib.nullcontext()
    return KeyShredder(codec.keys, partial(journey_run_ended, client)).running()


async def run_worker(settings: Settings) -> None:
    """Connect and run a worker until cancelled."""
    client = await connect(settings)
    async with running_worker(client, settings):
        await asyncio.Event().wait()
